"""Every benchmark from one entry point: python benchmarks/run.py (see docs/performance.md).

Needs the bench extra for the baselines: pip install -e ".[bench]".

``--before REV`` compares the working tree with the kvschema of git revision REV, in one run:
each section measures both, in turn, twice (before, after, before, after), and prints each
figure before and after with their ratio (the median of the two runs of each; a run that takes
over a second per call is timed once).  The benchmarks themselves are this tree's.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli_validate
import commands
import planner
import startup
import sweep
import throughput
from common import ROOT, table

HERE = Path(__file__).resolve().parent
SECTIONS = [
    ("Start-up to a first answer", startup),
    ("Validation throughput", throughput),
    ("Commands as whole processes", commands),
    ("kvschema validate on 200 files vs check-jsonschema", cli_validate),
    ("Planning", planner),
    ("fit --sweep over 1,248 choices of a 94-layer hybrid", sweep),
]


def _export(rev: str, folder: Path) -> Path:
    """The kvschema package of ``rev``, unpacked under ``folder`` and compiled."""
    archive = folder / "kvschema.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev, "kvschema"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    compileall.compile_dir(folder / "kvschema", quiet=1)
    return folder


def _measure(module: str, tree: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(HERE)])}
    done = subprocess.run(
        [sys.executable, str(HERE / f"{module}.py"), "--measure"],
        cwd=tree,  # `python -c` children put the working directory first on sys.path
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(rev: str, rounds: int = 2) -> None:
    """Print each section's figures for ``rev`` and for this tree, measured in turn."""
    with tempfile.TemporaryDirectory() as folder:
        before_tree = _export(rev, Path(folder))
        for title, module in SECTIONS:
            name = module.__name__
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for _ in range(rounds):
                runs["before"].append(_measure(name, before_tree))
                runs["after"].append(_measure(name, ROOT))
            rows = [["figure", f"before ({rev})", "after", "after / before"]]
            for key in runs["after"][0]:
                before = statistics.median(run[key] for run in runs["before"])
                after = statistics.median(run[key] for run in runs["after"])
                rows.append([key, f"{before:.4g}", f"{after:.4g}", f"{after / before:.2f}"])
            print(f"\n## {title}\n")
            print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="compare with kvschema at git REV")
    args = parser.parse_args()
    if args.before:
        compare(args.before)
    else:
        for title, module in SECTIONS:
            print(f"\n## {title}\n")
            print(table(module.main()))
