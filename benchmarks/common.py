"""Timing helpers shared by the benchmarks: medians of whole-process runs, and a table."""

from __future__ import annotations

import compileall
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def precompile() -> None:
    """Write the bytecode of the kvschema that is imported, as an installed wheel has it (an
    editable checkout run with PYTHONDONTWRITEBYTECODE would otherwise compile every module on
    every start)."""
    spec = importlib.util.find_spec("kvschema")
    for folder in (spec and spec.submodule_search_locations) or [ROOT / "kvschema"]:
        compileall.compile_dir(folder, quiet=1)


def measure_main(measure: Callable[[], Mapping[str, float]]) -> bool:
    """With ``--measure``: print ``measure()`` as JSON (for ``run.py --before``) and say so."""
    if "--measure" not in sys.argv[1:]:
        return False
    print(json.dumps(measure()))
    return True


def time_process(argv: Sequence[str], runs: int, *, expect: int | None = 0) -> list[float]:
    """Wall seconds of ``runs`` runs of a whole process (output discarded)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        times.append(time.perf_counter() - start)
        if expect is not None and done.returncode != expect:
            raise SystemExit(f"{argv[0]} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return times


def time_processes(
    commands: Mapping[str, Sequence[str]], runs: int, *, expect: int | None = 0
) -> dict[str, float]:
    """Median wall seconds of each ``name -> argv`` whole process, the runs taken in turn.

    Each round runs every command once, so a change in the machine's load falls on all of
    them alike and their ratios hold (output discarded).
    """
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].extend(time_process(argv, 1, expect=expect))
    return {name: median(times) for name, times in samples.items()}


def time_call(call: Callable[[], object], runs: int, inner: int = 1) -> list[float]:
    """Seconds per call of ``call``: ``runs`` samples, each the mean of ``inner`` calls."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(inner):
            call()
        samples.append((time.perf_counter() - start) / inner)
    return samples


def time_interleaved(
    calls: Mapping[str, tuple[Callable[[], object], int]], runs: int
) -> dict[str, float]:
    """Median seconds per call of each ``name -> (call, inner)``, the samples taken in turn.

    Each round times every call once (``inner`` calls, averaged), so a change in the
    machine's load falls on all of them alike and their ratios hold.
    """
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, (call, inner) in calls.items():
            start = time.perf_counter()
            for _ in range(inner):
                call()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: median(times) for name, times in samples.items()}


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def table(rows: Sequence[Sequence[str]]) -> str:
    """A plain text table with a header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
