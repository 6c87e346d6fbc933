"""Start-up to a first answer: import kvschema and validate one small CacheGroupsConfig JSON
document, against importing pydantic, defining one model and validating the same document.

Both as whole processes (`python -c`), several runs taken in turn, median.  Target: <= 1.1x.
Run: python benchmarks/startup.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import measure_main, precompile, table, time_process, time_processes

DOCUMENT = (
    '{"num_pages": 64, "kv_cache_groups": [{"kv_cache_spec": {"kind": "full_attention", '
    '"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"}}]}'
)
OURS = f"import kvschema; kvschema.CacheGroupsConfig.model_validate_json({DOCUMENT!r})"
BASELINE = f"""
from pydantic import BaseModel
class Spec(BaseModel):
    kind: str
    page_size: int
    num_kv_heads: int
    head_size: int
    dtype: str
class Group(BaseModel):
    kv_cache_spec: Spec
    layer_names: list[str] | None = None
class Config(BaseModel):
    num_pages: int
    kv_cache_groups: list[Group]
Config.model_validate_json({DOCUMENT!r})
"""
TARGET = 1.1


def measure(runs: int = 25) -> dict[str, float]:
    """Process -> median milliseconds."""
    precompile()
    python = sys.executable
    time_process([python, "-c", OURS], 1)  # warm the file cache
    times = time_processes(
        {
            "python -c pass": [python, "-c", "pass"],
            "pydantic: one model, one document": [python, "-c", BASELINE],
            "kvschema: import, one document": [python, "-c", OURS],
        },
        runs,
    )
    return {name: seconds * 1000 for name, seconds in times.items()}


def main(runs: int = 25) -> list[list[str]]:
    times = measure(runs)
    theirs = times["pydantic: one model, one document"]
    rows = [["process", "median ms", "ratio"]]
    for name, ms in times.items():
        rows.append([name, f"{ms:.1f}", "" if name == "python -c pass" else f"{ms / theirs:.2f}"])
    rows.append([f"target <= {TARGET}x", "", ""])
    return rows


if __name__ == "__main__" and not measure_main(
    lambda: {f"{k} (ms)": v for k, v in measure().items()}
):
    print(table(main()))
