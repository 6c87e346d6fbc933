"""The three published deployments of docs/fit.md: kvschema's estimate holds what vLLM printed,
and pinned at the published block count it prints the published tokens and concurrency.

Source of cases 1 and 2: a blog post measuring Qwen3-14B and Qwen3-14B-AWQ with vLLM 0.28.0 on
AWS g6e.2xlarge (one L40S) and g6.12xlarge (four L4), "LLM 최적화 실전 프로젝트 — 단일 인스턴스
처리량 최대화" (2026-09-06; public repository file, search index id 60168338778).  Case 3:
https://myoceane.fr/index.php/ai-vllm-a100-gemma-4/ (vLLM 0.19.0, gpt-oss-20b on an A100).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvschema import fit
from kvschema.models.interval import GIB
from kvschema.planning.vllm_log import format_gib

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "fit"
MiB = 1 << 20

#: (config, settings, published: available GiB, tokens, concurrency, block bytes per rank)
CASES: list[tuple[str, dict[str, Any], float, int, str, int]] = [
    (
        "qwen3-14b",
        {"gpu": "L40S", "weights_bytes": round(27.52 * GIB)},
        11.57,
        75_824,
        "1.85",
        5 * MiB // 2,
    ),
    ("qwen3-14b-awq", {"gpu": "L40S"}, 29.63, 194_192, "4.74", 5 * MiB // 2),
    (
        "qwen3-14b-awq",
        {
            "gpu": "L40S",
            "gpu_memory_utilization": 0.95,
            "max_model_len": 1024,
            "max_num_seqs": 8,
            "max_num_batched_tokens": 8192,
        },
        31.02,
        203_264,
        "198.50",
        5 * MiB // 2,
    ),
    ("qwen3-14b-awq", {"gpu": "L4"}, 9.10, 59_632, "1.46", 5 * MiB // 2),
    (
        "qwen3-14b-awq",
        {"gpu": "L4", "tensor_parallel_size": 2},
        14.38,
        188_512,
        "4.60",
        5 * MiB // 4,
    ),
    (
        "qwen3-14b-awq",
        {"gpu": "L4", "pipeline_parallel_size": 2},
        14.04,
        184_000,
        "4.49",
        5 * MiB // 4,
    ),
]


@pytest.mark.parametrize(("name", "settings", "gib", "tokens", "concurrency", "block"), CASES)
def test_the_estimate_holds_the_published_memory(
    name: str, settings: dict[str, Any], gib: float, tokens: int, concurrency: str, block: int
) -> None:
    report = fit(EXAMPLES / f"{name}.json", **settings)
    low, _, high = (
        v / GIB for v in (report.available_kv_bytes.low, 0, report.available_kv_bytes.high)
    )
    assert low <= gib <= high, (low, gib, high)
    assert report.plan.bytes_per_page == [block] * report.settings.pipeline_parallel_size


@pytest.mark.parametrize(("name", "settings", "gib", "tokens", "concurrency", "block"), CASES)
def test_pinned_at_the_published_blocks_prints_the_published_lines(
    name: str, settings: dict[str, Any], gib: float, tokens: int, concurrency: str, block: int
) -> None:
    length = settings.get("max_model_len", 40960)
    blocks = tokens // 16  # one full-attention group, length a multiple of 16: tokens = blocks x 16
    dropped = ("gpu", "weights_bytes", "gpu_memory_utilization")
    pinned = {k: v for k, v in settings.items() if k not in dropped}
    pinned.setdefault("max_num_batched_tokens", 2048)
    report = fit(EXAMPLES / f"{name}.json", kv_cache_memory_bytes=blocks * block, **pinned)
    assert report.plan.num_pages == blocks
    assert (
        format_gib(blocks * block) == f"{gib}".rstrip("0").rstrip(".")
        or format_gib(blocks * block) == f"{gib:.2f}"
    )
    assert report.vllm_log[-1].text == (
        f"GPU KV cache size: {tokens:,} tokens, Maximum concurrency for {length:,} tokens per "
        f"request: {concurrency}x"
    )


def test_gpt_oss_on_an_a100_before_cuda_graphs_were_subtracted() -> None:
    # vLLM 0.19 logged 36.56 GiB without the CUDA-graph estimate (subtracted from 0.21 on).
    report = fit(
        EXAMPLES / "gpt-oss-20b.json",
        gpu="A100-80GB",
        gpu_memory_utilization=0.65,
        max_model_len=131072,
        weights_bytes=round(13.72 * GIB),
    )
    (stage,) = report.stages
    assert stage.cuda_graphs is not None
    low = (stage.available.low + stage.cuda_graphs.high) / GIB
    high = (stage.available.high + stage.cuda_graphs.low) / GIB
    assert low <= 36.56 <= high
    assert report.plan.pages_per_request == 8192 + 265  # full layers + the 128-token window
