"""`kvschema fit --sweep` over 1,248 choices of a 94-layer hybrid: the Python API and the process.

Target: <= 1 s for 1,000 choices (GPUs x TP x PP x KV dtype x lengths).  No shipped config has
94 layers, so the model is Qwen3-Next's (kvschema/serve/configs/qwen3-next-80b.json, the page's
complete config: gated delta-net layers with a full-attention layer in four, 512 experts) grown
to 94 layers, its weights given (160 GB, as --weights-bytes).  The choices: the whole GPU catalogue (13) x TP 1, 2, 4, 8 x PP 1, 2, 4 x KV
dtype auto, fp8 x max_model_len 4,096, 32,768, 131,072 and auto (1,248; the catalogue's
Blackwell and ROCm GPUs are rows that say what to pass, as the command prints them).

Two figures, medians of several rounds taken in turn:
- "API": a FitModel read from the config and `sweep()` over every choice, as `fit --sweep`
  runs them (nothing memoized beforehand);
- "process": `python -m kvschema fit --sweep ... -o json` as a whole process (start-up,
  imports and the JSON output included).
Run: python benchmarks/sweep.py
"""

from __future__ import annotations

import inspect
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, measure_main, median, precompile, table, time_process

TARGET_S = 1.0
LAYERS = 94
WEIGHTS = 160 * 10**9
SOURCE = ROOT / "kvschema" / "serve" / "configs" / "qwen3-next-80b.json"
TPS, PPS, DTYPES = (1, 2, 4, 8), (1, 2, 4), ("auto", "fp8")
LENGTHS: tuple[int | str, ...] = (4096, 32768, 131072, "auto")


def config() -> dict[str, Any]:
    """Qwen3-Next's config with 94 decoder layers (a full-attention layer in every four)."""
    hybrid: dict[str, Any] = json.loads(SOURCE.read_text())
    hybrid["num_hidden_layers"] = LAYERS
    return hybrid


def api_sweep(hybrid: dict[str, Any]) -> int:
    """What `fit --sweep` runs: one FitModel, then every choice; returns the row count."""
    from kvschema.planning.fitmodel import FitModel
    from kvschema.planning.solvers import sweep

    model = FitModel(hybrid, weights_bytes=WEIGHTS)
    choices: dict[str, Any] = {
        "tensor_parallel_sizes": TPS,
        "pipeline_parallel_sizes": PPS,
        "kv_cache_dtypes": DTYPES,
    }
    if "max_model_lens" in inspect.signature(sweep).parameters:
        return len(sweep(model, max_model_lens=LENGTHS, **choices).rows)
    # a kvschema from before lengths were swept: one sweep per length, the same choices
    return sum(len(sweep(model, max_model_len=n, **choices).rows) for n in LENGTHS)


def _lists_lengths() -> bool:
    from kvschema.planning.solvers import sweep

    return "max_model_lens" in inspect.signature(sweep).parameters


def measure(runs: int = 7) -> dict[str, float]:
    """Figure -> median milliseconds (the process figure is NaN for a kvschema whose --sweep
    takes one length)."""
    precompile()
    hybrid = config()
    rows = api_sweep(hybrid)  # warm: imports, validators built
    if rows < 1000:
        raise SystemExit(f"only {rows} choices")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(hybrid))
        argv = [sys.executable, "-m", "kvschema", "fit", "--hf-config", str(path)]
        argv += ["--weights-bytes", str(WEIGHTS), "--sweep", "--tp", ",".join(map(str, TPS))]
        argv += ["--pp", ",".join(map(str, PPS)), "--kv-cache-dtype", ",".join(DTYPES)]
        argv += ["--max-model-len", ",".join(map(str, LENGTHS)), "-o", "json"]
        process = _lists_lengths()
        if process:
            time_process(argv, 1)  # warm the file cache; it must succeed
        api, whole = [], []
        for _ in range(runs):
            start = time.perf_counter()
            api_sweep(hybrid)
            api.append(time.perf_counter() - start)
            if process:
                whole.extend(time_process(argv, 1))
    return {
        f"API: FitModel + sweep, {rows:,} choices (ms)": median(api) * 1000,
        f"process: kvschema fit --sweep, {rows:,} choices (ms)": median(whole) * 1000
        if whole
        else math.nan,
    }


def main(runs: int = 7) -> list[list[str]]:
    times = measure(runs)
    rows = [["figure", "median ms", "per choice us", f"vs the {TARGET_S:g} s target"]]
    for name, ms in times.items():
        count = int(name.rsplit(", ", 1)[1].split()[0].replace(",", ""))
        rows.append([name, f"{ms:.1f}", f"{ms * 1000 / count:.0f}", f"{ms / 1000 / TARGET_S:.2f}x"])
    rows.append([f"target: <= {TARGET_S:g} s for 1,000 choices of a 94-layer hybrid", "", "", ""])
    return rows


if __name__ == "__main__" and not measure_main(measure):
    print(table(main()))
