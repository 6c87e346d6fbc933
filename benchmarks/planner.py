"""Planning time of `plan_cache` on 1,000- and 10,000-layer hybrid models.

Target: <= 5 ms for 1,000 layers, and linear growth (the 10,000-layer time within ~10x plus
noise).  A sliding-window / full / Mamba hybrid, so every planning step runs.
Run: python benchmarks/planner.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, table, time_call

from kvschema import FullAttentionSpec, MambaSpec, SlidingWindowSpec, plan_cache

TARGET_MS = 5.0


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


def main(runs: int = 15) -> list[list[str]]:
    rows = [["layers", "median ms", "per layer us", "vs 1,000"]]
    base = None
    for count in (1_000, 10_000):
        layers = hybrid(count)

        def call(layers: dict[str, object] = layers, count: int = count) -> object:
            return plan_cache(
                layers,
                available_bytes=count * 2 * 1024**3,
                max_model_len=32768,
                max_num_batched_tokens=8192,
            )

        call()
        ms = median(time_call(call, runs)) * 1000
        base = base or ms
        rows.append([f"{count:,}", f"{ms:.2f}", f"{ms * 1000 / count:.2f}", f"{ms / base:.1f}x"])
    rows.append([f"target: 1,000 layers <= {TARGET_MS} ms; 10,000 about 10x", "", "", ""])
    return rows


if __name__ == "__main__":
    print(table(main()))
