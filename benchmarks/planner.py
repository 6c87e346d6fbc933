"""Planning time of `plan_cache`: 1,000- and 10,000-layer hybrid models, and 2,000 distinct specs.

Targets: <= 3 ms for 1,000 layers; 10,000 layers <= 10x that (linear growth); 2,000 layers of
2,000 distinct specs (a geometry per layer: every grouping step runs on 2,000 buckets) <= 50 ms.
The hybrid model is a sliding-window / full / Mamba hybrid, so every planning step runs.
Run: python benchmarks/planner.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import measure_main, median, table, time_call

from kvschema import FullAttentionSpec, MambaSpec, SlidingWindowSpec, plan_cache

TARGET_MS = 3.0
DISTINCT_TARGET_MS = 50.0


def hybrid(layers: int) -> dict[str, object]:
    """Layer map: five sliding layers to one full layer, with a Mamba layer in every eight."""
    full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=4096
    )
    state = MambaSpec(page_size=16, shapes=[[4096, 3], [4096, 13]], dtype="fp32")
    return {
        f"model.layers.{i}": state if i % 8 == 7 else (full if i % 6 == 5 else local)
        for i in range(layers)
    }


def distinct(layers: int) -> dict[str, object]:
    """Layer map where no two layers share a spec: sliding windows, full-attention head sizes
    and Mamba state shapes that all differ (pages of many sizes, padded to the largest)."""
    out: dict[str, object] = {}
    for i in range(layers):
        heads, head = 1 + i % 16, 64 * (1 + (i // 16) % 4)
        spec: object
        if i % 3 == 0:
            spec = SlidingWindowSpec(
                page_size=16,
                num_kv_heads=heads,
                head_size=head,
                dtype="bf16",
                sliding_window=128 + i,
            )
        elif i % 3 == 1:
            spec = FullAttentionSpec(
                page_size=16, num_kv_heads=heads, head_size=head + i, dtype="bf16"
            )
        else:
            spec = MambaSpec(page_size=16, shapes=[[64 + i, 4]], dtype="bf16")
        out[f"model.layers.{i}"] = spec
    return out


def _plan(layers: dict[str, object], budget: int) -> object:
    return plan_cache(
        layers, available_bytes=budget, max_model_len=32768, max_num_batched_tokens=8192
    )


def measure(runs: int = 15) -> dict[str, float]:
    """Case -> median milliseconds (one call where one takes over a second: a quadratic
    planner's 2,000 distinct specs, run for a before / after comparison)."""
    cases = {
        "1,000 layers": (hybrid(1_000), 1_000 * 2 * 1024**3),
        "10,000 layers": (hybrid(10_000), 10_000 * 2 * 1024**3),
        "2,000 distinct specs": (distinct(2_000), 2**50),
    }
    results = {}
    for name, (layers, budget) in cases.items():
        start = time.perf_counter()
        _plan(layers, budget)  # warm
        first = time.perf_counter() - start
        if first > 1:
            results[name] = first * 1000
            continue
        results[name] = median(time_call(lambda la=layers, b=budget: _plan(la, b), runs)) * 1000
    return results


def main(runs: int = 15) -> list[list[str]]:
    times = measure(runs)
    base = times["1,000 layers"]
    rows = [["case", "median ms", "per layer us", "vs 1,000 layers"]]
    for name, ms in times.items():
        count = int(name.split()[0].replace(",", ""))
        rows.append([name, f"{ms:.2f}", f"{ms * 1000 / count:.2f}", f"{ms / base:.1f}x"])
    rows.append(
        [
            f"targets: 1,000 layers <= {TARGET_MS} ms; 10,000 <= 10x; "
            f"2,000 distinct <= {DISTINCT_TARGET_MS} ms",
            "",
            "",
            "",
        ]
    )
    return rows


if __name__ == "__main__" and not measure_main(
    lambda: {f"{k} (ms)": v for k, v in measure().items()}
):
    print(table(main()))
