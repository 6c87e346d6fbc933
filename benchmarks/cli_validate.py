"""`kvschema validate` on 200 deploy files against check-jsonschema on the same files.

The baseline is check-jsonschema at its fastest: ruamel.yaml with its C extension, our exported
schema as --schemafile.  Both run as whole processes (start-up included), several times.
Target: kvschema <= 0.3x the baseline's wall time.  kvschema runs as users run it (one worker
process per core, each with 32 files or more); the single-process time (-j 1) is printed too.
Run: python benchmarks/cli_validate.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import measure_main, median, precompile, table, time_process, time_processes
from deploy_files import write_files

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "cache-groups-config.schema.json"
TARGET = 0.3


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _ruamel_c() -> bool:
    try:
        import _ruamel_yaml  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def measure(runs: int = 5) -> dict[str, float]:
    """Tool -> median seconds over the 200 files (each tool a whole process, in turn)."""
    precompile()
    kvschema = shutil.which("kvschema") or sys.exit("kvschema is not on PATH")
    baseline = shutil.which("check-jsonschema")
    with tempfile.TemporaryDirectory() as folder:
        files = [str(p) for p in write_files(Path(folder))]
        commands = {
            f"kvschema validate ({os.cpu_count()} cores)": [kvschema, "validate", "-q", *files],
            "kvschema validate -j 1": [kvschema, "validate", "-q", "-j", "1", *files],
        }
        if baseline is not None:
            commands["check-jsonschema"] = [baseline, "--schemafile", str(SCHEMA), *files]
        times = time_processes(commands, runs)
    times["kvschema --version (start-up)"] = median(time_process([kvschema, "--version"], runs))
    return times


def main(runs: int = 5) -> list[list[str]]:
    """Time both tools; return table rows (name, median seconds, ratio)."""
    print(
        f"kvschema {_version('kvschema')} (PyYAML {_version('PyYAML')} with libyaml); "
        f"check-jsonschema {_version('check-jsonschema')} "
        f"(ruamel.yaml {_version('ruamel.yaml')}, C extension: {_ruamel_c()})"
    )
    times = measure(runs)
    ours, serial = (
        times[f"kvschema validate ({os.cpu_count()} cores)"],
        times["kvschema validate -j 1"],
    )
    rows = [
        ["200 deploy files", "median s", "ratio"],
        [f"kvschema validate ({os.cpu_count()} cores)", f"{ours:.3f}", "1.00"],
        ["kvschema validate -j 1", f"{serial:.3f}", f"{serial / ours:.2f}"],
    ]
    theirs = times.get("check-jsonschema")
    if theirs is None:
        print("check-jsonschema is not installed: pip install 'kvschema[bench]'")
    else:
        rows.append(["check-jsonschema", f"{theirs:.3f}", f"{theirs / ours:.2f}"])
        rows.append(["kvschema / baseline", f"{ours / theirs:.2f}x", f"target <= {TARGET}x"])
        rows.append(["kvschema -j 1 / baseline", f"{serial / theirs:.2f}x", ""])
    version = times["kvschema --version (start-up)"]
    rows.append(["kvschema --version (start-up)", f"{version:.3f}", "imports no pydantic"])
    return rows


if __name__ == "__main__" and not measure_main(
    lambda: {f"{k} (s)": v for k, v in measure().items()}
):
    print(table(main()))
