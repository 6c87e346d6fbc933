"""Start-up to a first answer: import kvschema and validate one small CacheGroupsConfig JSON
document, against importing pydantic, defining one model and validating the same document.

Both as whole processes (`python -c`), several runs taken in turn, median.  Target: <= 1.1x.
Run: python benchmarks/startup.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import precompile, table, time_process, time_processes

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


def main(runs: int = 25) -> list[list[str]]:
    precompile()
    python = sys.executable
    time_process([python, "-c", OURS], 1)  # warm the file cache
    times = time_processes(
        {
            "bare": [python, "-c", "pass"],
            "theirs": [python, "-c", BASELINE],
            "ours": [python, "-c", OURS],
        },
        runs,
    )
    bare, theirs, ours = times["bare"], times["theirs"], times["ours"]
    return [
        ["process", "median ms", "ratio"],
        ["python -c pass", f"{bare * 1000:.1f}", ""],
        ["pydantic: one model, one document", f"{theirs * 1000:.1f}", "1.00"],
        ["kvschema: import, one document", f"{ours * 1000:.1f}", f"{ours / theirs:.2f}"],
        [f"target <= {TARGET}x", "", ""],
    ]


if __name__ == "__main__":
    print(table(main()))
