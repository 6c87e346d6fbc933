"""The commands people run, as whole processes: `kvschema plan --hf-config`, `kvschema fit`
(one model, one GPU) and `kvschema validate` of one file.

Targets: plan and fit <= 0.2 s each; validate of one file <= 1.1x `check-jsonschema
--version` (the baseline tool's start-up alone).  `python -c pass` and a bare pydantic
program (one model, one document) are timed beside them, every process in turn, several
rounds, median.  kvschema runs as users run it: its console script.
Run: python benchmarks/commands.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, measure_main, precompile, table, time_process, time_processes

PLAN_TARGET_S = 0.2
VALIDATE_TARGET = 1.1
HF_CONFIG = ROOT / "tests" / "fixtures" / "hf" / "gemma3-27b.json"
FIT_CONFIG = ROOT / "examples" / "fit" / "qwen3-14b.json"
DEPLOY_FILE = ROOT / "examples" / "valid" / "gemma3-sliding-hybrid.yaml"
PYDANTIC = """
from pydantic import BaseModel
class Config(BaseModel):
    num_pages: int
Config.model_validate_json('{"num_pages": 64}')
"""


def measure(runs: int = 15) -> dict[str, float]:
    """Process -> median milliseconds."""
    precompile()
    kvschema = shutil.which("kvschema") or sys.exit("kvschema is not on PATH")
    python = sys.executable
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "pydantic: one model, one document": [python, "-c", PYDANTIC],
        "kvschema plan --hf-config (Gemma 3 27B)": [
            kvschema,
            "plan",
            "--hf-config",
            str(HF_CONFIG),
            "--memory",
            "40GiB",
        ],
        "kvschema fit (Qwen3-14B, H100)": [
            kvschema,
            "fit",
            "--hf-config",
            str(FIT_CONFIG),
            "--gpu",
            "H100",
        ],
        "kvschema validate (one file)": [kvschema, "validate", str(DEPLOY_FILE)],
    }
    baseline = shutil.which("check-jsonschema")
    if baseline is not None:
        commands["check-jsonschema --version"] = [baseline, "--version"]
    for argv in commands.values():
        time_process(argv, 1)  # warm the file cache; each must succeed
    return {name: s * 1000 for name, s in time_processes(commands, runs).items()}


def main(runs: int = 15) -> list[list[str]]:
    times = measure(runs)
    pydantic = times["pydantic: one model, one document"]
    rows = [["process", "median ms", "vs pydantic program", "against its target"]]
    for name, ms in times.items():
        if name.startswith(("kvschema plan", "kvschema fit")):
            note = f"{ms / 1000 / PLAN_TARGET_S:.2f}x of {PLAN_TARGET_S} s"
        elif name.startswith("kvschema validate") and "check-jsonschema --version" in times:
            ratio = ms / times["check-jsonschema --version"]
            note = f"{ratio:.2f}x check-jsonschema --version (target <= {VALIDATE_TARGET}x)"
        else:
            note = ""
        rows.append([name, f"{ms:.1f}", f"{ms / pydantic:.2f}", note])
    return rows


if __name__ == "__main__" and not measure_main(
    lambda: {f"{k} (ms)": v for k, v in measure().items()}
):
    print(table(main()))
