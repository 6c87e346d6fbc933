"""kvschema fit: pinned plans and vLLM's lines exact, the budget as vLLM 0.33 computes it, the
engine's defaults, the verdicts and their reasons."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from fit_models import QWEN3_8B

from kvschema import FitReport, InsufficientMemoryError, fit, plan_cache
from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.models.interval import GIB
from kvschema.planning.engine import vllm_layers_from_hf_config
from kvschema.planning.fitmodel import FitModel
from kvschema.planning.vllm_log import UnsupportedVersionError, format_gib, vllm_version

HF = Path(__file__).parent / "fixtures" / "hf"
GiB = GIB


def pinned(name: str, memory: int, **settings: Any) -> FitReport:
    settings.setdefault("max_num_batched_tokens", 8192)
    return fit(HF / f"{name}.json", kv_cache_memory_bytes=memory, **settings)


def capacity(report: FitReport) -> str:
    return report.vllm_log[-1].text


# -- pinned budgets: the plan and the lines, exact to the block ------------------------------


def test_full_attention_pinned_exactly() -> None:
    # Llama 3 8B: 32 layers x 8 KV heads x 128 x (K + V) x 2 bytes = 128 KiB a token, 2 MiB a
    # 16-token block: 20 GiB hold 10240 blocks; 32768 tokens take 2048 of them.
    report = pinned("llama3-8b", 20 * GiB, max_model_len=32768)
    assert report.verdict == "fits" and report.exact
    assert (report.plan.num_pages, report.plan.pages_per_request) == (10240, 2048)
    assert report.plan.max_concurrency == 5.0
    assert report.plan.requests_at_once == 4  # 10239 blocks beside the null block
    assert [line.text for line in report.vllm_log] == [
        "reserved 20.0 GiB memory for KV Cache as specified by kv_cache_memory_bytes config "
        "and skipped memory profiling.",
        "GPU KV cache size: 163,840 tokens, Maximum concurrency for 32,768 tokens per request: "
        "5.00x",
    ]
    assert report.vllm_log[0].complete is False and report.vllm_log[1].complete


def test_pipeline_stages_halve_the_block() -> None:
    # PP 2: 16 layers a stage, a 1 MiB block on each, 20480 blocks.
    report = pinned("llama3-8b", 20 * GiB, max_model_len=32768, pipeline_parallel_size=2)
    assert report.plan.bytes_per_page == [1 << 20, 1 << 20]
    assert capacity(report) == (
        "GPU KV cache size: 327,680 tokens, Maximum concurrency for 32,768 tokens per request: "
        "10.00x"
    )


def test_tensor_parallel_beyond_the_kv_heads_replicates_them() -> None:
    # TP 16 over 8 KV heads: one head a rank (vLLM replicates), 256 KiB a block, 81920 blocks.
    report = pinned("llama3-8b", 20 * GiB, max_model_len=32768, tensor_parallel_size=16)
    assert report.plan.bytes_per_page == [262144]
    assert capacity(report).endswith("Maximum concurrency for 32,768 tokens per request: 40.00x")
    assert "1,310,720 tokens" in capacity(report)


def test_mla_is_not_sharded_over_tensor_parallel_ranks() -> None:
    # DeepSeek-V3: 61 layers x one 576-wide latent x 2 bytes = 1152 B a token a layer, so
    # 1,124,352 B a block on every rank; 20 GiB hold 19099; 163840 tokens take 10240 blocks.
    report = pinned("deepseek-v3", 20 * GiB, tensor_parallel_size=2)
    assert report.plan.bytes_per_page == [61 * 1152 * 16]
    assert report.plan.num_pages == 20 * GiB // (61 * 1152 * 16) == 19099
    assert capacity(report) == (
        "GPU KV cache size: 305,584 tokens, Maximum concurrency for 163,840 tokens per request: "
        "1.87x"
    )


def test_sliding_window_hybrid_gemma3() -> None:
    # Gemma 3 27B at TP 2: 8 KV heads a rank, 64 KiB a layer's block, groups of 10 layers: 640
    # KiB a block index, 32768 of them.  A request of 32768 tokens takes 2048 blocks in the
    # full group and 1089 in each of the six sliding groups (1023 + 16384 tokens in flight).
    report = pinned("gemma3-27b", 20 * GiB, tensor_parallel_size=2, max_model_len=32768)
    assert report.plan.bytes_per_page == [655360]
    assert (report.plan.num_pages, report.plan.pages_per_request) == (32768, 2048 + 6 * 1089)
    assert capacity(report) == (
        "GPU KV cache size: 125,115 tokens, Maximum concurrency for 32,768 tokens per request: "
        "3.82x"
    )


def test_mamba_hybrid_jamba_matches_the_planner_docs() -> None:
    # docs/planner.md plans Jamba at TP 2 on 24 GiB: 80-token blocks, 39321 pages, 47.15.
    report = pinned("jamba-v0.1", 24 * GiB, tensor_parallel_size=2, max_model_len=65536)
    assert report.settings.block_size == 80
    assert report.plan.num_pages == 39321
    assert capacity(report) == (
        "GPU KV cache size: 3,089,857 tokens, Maximum concurrency for 65,536 tokens per "
        "request: 47.15x"
    )


def test_gated_delta_net_hybrid_qwen3_next() -> None:
    report = pinned("qwen3-next-80b", 20 * GiB, tensor_parallel_size=4)
    assert report.settings.gdn_prefill_backend == "flashinfer"
    assert report.settings.block_size % 64 == 0  # FlashInfer's 64-token checkpoints
    assert capacity(report) == (
        "GPU KV cache size: 1,726,861 tokens, Maximum concurrency for 262,144 tokens per "
        "request: 6.59x"
    )


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("llama3-8b", {"max_model_len": 32768, "pipeline_parallel_size": 2}),
        ("deepseek-v3", {"tensor_parallel_size": 2}),
        ("gemma3-27b", {"tensor_parallel_size": 2}),
        ("gemma2-9b", {}),
        ("jamba-v0.1", {"tensor_parallel_size": 2}),
        ("qwen3-next-80b", {"tensor_parallel_size": 4}),
        ("nemotron-h-8b", {}),
        ("falcon-h1-7b", {}),
        ("gpt-oss-20b", {"tensor_parallel_size": 2}),
        ("llama4-scout", {"tensor_parallel_size": 8}),
        ("mixtral-8x7b", {"pipeline_parallel_size": 4}),
    ],
)
def test_pinned_fit_plans_what_plan_cache_plans(name: str, settings: dict[str, Any]) -> None:
    """Every family kvschema imports: fit's numbers are the planner's for the same budget."""
    memory = 7 * GiB + 12345
    report = pinned(name, memory, **settings)
    layers = vllm_layers_from_hf_config(
        HF / f"{name}.json", tensor_parallel_size=settings.get("tensor_parallel_size", 1)
    )
    pp = settings.get("pipeline_parallel_size", 1)
    try:
        plan = plan_cache(
            layers,
            available_bytes=[memory] * pp,
            max_model_len=settings.get("max_model_len"),
            max_num_batched_tokens=8192,
            tensor_parallel_size=settings.get("tensor_parallel_size", 1),
            pipeline_parallel_size=pp,
        )
    except InsufficientMemoryError as err:
        assert report.reason_code == "max_model_len_too_long"
        assert report.plan.max_model_len_estimate == err.max_model_len_estimate > 0
        assert report.plan.needed_bytes == err.needed_bytes
        return
    assert report.plan.num_pages == plan.num_pages
    assert report.plan.max_concurrency == plan.max_concurrency
    assert report.plan.kv_cache_size_tokens == plan.kv_cache_size_tokens
    assert report.plan.max_model_len == plan.inputs.max_model_len
    assert capacity(report) == (
        f"GPU KV cache size: {plan.kv_cache_size_tokens:,} tokens, Maximum concurrency for "
        f"{plan.inputs.max_model_len:,} tokens per request: {plan.max_concurrency:.2f}x"
    )


def test_one_request_too_long_prints_vllms_value_error() -> None:
    # Qwen3-8B: 144 KiB a token, 2,359,296 B a block.  1 GiB less the null block holds 454
    # blocks: 7264 tokens; 40960 tokens need 2560 blocks = 5.62 GiB.
    report = pinned("qwen3-8b", GiB, max_num_batched_tokens=2048)
    assert report.verdict == "does_not_fit" and report.reason_code == "max_model_len_too_long"
    assert report.plan.max_model_len_estimate == 7264
    assert report.plan.needed_bytes == 2560 * 2359296
    assert report.vllm_log[-1].text == (
        "ValueError: To serve at least one request with the model's max seq len (40960), "
        "(5.62 GiB KV cache is needed, which is larger than the available KV cache memory "
        "(1.0 GiB). Based on the available memory, the estimated maximum model length is 7264. "
        "Try increasing `gpu_memory_utilization` (which also controls CPU memory on the CPU "
        "backend) or decreasing `max_model_len` when initializing the engine. See "
        "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
    )
    with pytest.raises(InsufficientMemoryError) as caught:  # the planner agrees
        plan_cache(
            vllm_layers_from_hf_config(HF / "qwen3-8b.json"),
            available_bytes=GiB,
            max_num_batched_tokens=2048,
        )
    assert caught.value.max_model_len_estimate == 7264


def test_a_budget_of_one_block_has_no_memory_for_the_cache() -> None:
    report = pinned("llama3-8b", 2 << 20, max_model_len=4096)
    assert report.reason_code == "no_kv_memory"
    assert report.vllm_log[-1].text.startswith(
        "ValueError: No available memory for the cache blocks. Try increasing "
        "`gpu_memory_utilization`"
    )


def test_auto_fit_reduces_the_length_as_vllm_logs_it() -> None:
    # 8 GiB less one 2 MiB block hold 4095 blocks: 65520 tokens.
    report = pinned("llama3-8b", 8 * GiB, max_model_len="auto")
    assert report.plan.max_model_len == 65520
    assert [line.text for line in report.vllm_log[1:]] == [
        "Auto-fit max_model_len: reduced from 131072 to 65520 to fit in available KV cache "
        "memory (8.0 GiB GPU)",
        "GPU KV cache size: 65,536 tokens, Maximum concurrency for 65,520 tokens per request: "
        "1.00x",
    ]
    full = pinned("llama3-8b", 80 * GiB, max_model_len="auto")
    assert full.vllm_log[1].text == (
        "Auto-fit max_model_len: full model context length 131072 fits in available KV cache "
        "memory (80.0 GiB GPU)"
    )
    nothing = pinned("llama3-8b", 1 << 20, max_model_len="auto")
    assert nothing.reason_code == "auto_fit_failed"
    assert nothing.vllm_log[-1].text.startswith("ValueError: Cannot auto-fit max_model_len")


# -- the budget -----------------------------------------------------------------------------


def test_available_memory_is_requested_less_every_term_and_low_takes_the_worst() -> None:
    report = fit(QWEN3_8B, gpu_memory=48 * GiB, max_model_len=8192)
    (stage,) = report.stages
    assert stage.requested is not None and stage.weights is not None
    assert stage.requested.point == math.ceil(48 * GiB * 0.9)
    terms = [t for t in (stage.activation, stage.non_torch, stage.cuda_graphs) if t is not None]
    terms.append(stage.weights)
    assert len(terms) == 4
    assert stage.available.point == stage.requested.point - sum(t.point for t in terms)
    assert stage.available.low == stage.requested.low - sum(t.high for t in terms)
    assert stage.available.high == stage.requested.high - sum(t.low for t in terms)
    assert (
        report.vllm_log[0].text
        == f"Available KV cache memory: {format_gib(stage.available.point)} GiB"
    )


def test_a_catalogue_gpu_takes_the_lowest_cuda_total_at_the_low_end() -> None:
    report = fit(QWEN3_8B, gpu="L40S", max_model_len=8192)
    (stage,) = report.stages
    assert report.hardware is not None
    assert stage.requested.low == math.ceil(report.hardware.cuda_total.low * 0.9)  # type: ignore[union-attr]


def test_enforce_eager_takes_no_cuda_graph_memory() -> None:
    eager = fit(QWEN3_8B, gpu="H100", enforce_eager=True)
    graphs = fit(QWEN3_8B, gpu="H100")
    assert eager.stages[0].cuda_graphs.high == 0  # type: ignore[union-attr]
    assert eager.available_kv_bytes.point > graphs.available_kv_bytes.point


def test_format_gib_is_vllms_round_not_two_fixed_places() -> None:
    assert format_gib(int(12.5 * GiB)) == "12.5"
    assert format_gib(int(12.499 * GiB)) == "12.5"
    assert format_gib(7 * GiB) == "7.0"
    assert format_gib(int(0.004 * GiB)) == "0.0"


# -- vLLM's defaults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "tokens", "seqs"),
    [("A100-80GB", 2048, 256), ("H100", 8192, 1024), ("B200", 16384, 1024), ("L4", 2048, 256)],
)
def test_batch_defaults_by_gpu(gpu: str, tokens: int, seqs: int) -> None:
    report = fit(HF / "llama3-8b.json", gpu=gpu, weights_bytes=16 * GiB, max_model_len=8192)
    assert report.settings.max_num_batched_tokens == tokens
    assert report.settings.max_num_seqs == seqs


def test_short_lengths_bound_the_default_batch() -> None:
    # _set_default_max_num_seqs_and_batched_tokens_args: min(max_num_seqs x max_model_len, tier)
    short = fit(
        HF / "llama3-8b.json", gpu="H100", weights_bytes=16 * GiB, max_model_len=4, max_num_seqs=3
    )
    assert (short.settings.max_num_batched_tokens, short.settings.max_num_seqs) == (12, 3)
    tiny = fit(HF / "llama3-8b.json", gpu="H100", weights_bytes=16 * GiB, max_model_len=2)
    assert (tiny.settings.max_num_batched_tokens, tiny.settings.max_num_seqs) == (2048, 1024)


def test_max_model_len_defaults_to_the_models_and_a_longer_one_is_refused() -> None:
    report = pinned("llama3-8b", 20 * GiB)
    assert report.plan.max_model_len == 131072 == report.settings.derived_max_model_len
    with pytest.raises(InvalidArgumentError, match="greater than the derived max_model_len"):
        pinned("llama3-8b", 20 * GiB, max_model_len=200_000)


def test_kv_cache_dtype_auto_reads_the_checkpoints_declared_scheme() -> None:
    modelopt = {
        **QWEN3_8B,
        "quantization_config": {"quant_method": "modelopt", "kv_cache_quant_algo": "FP8"},
    }
    compressed = {
        **QWEN3_8B,
        "quantization_config": {
            "quant_method": "compressed-tensors",
            "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor"},
        },
    }
    assert FitModel(modelopt).resolve_kv_cache_dtype("auto") == "fp8_e4m3"
    assert FitModel(compressed).resolve_kv_cache_dtype("auto") == "fp8"
    assert FitModel(QWEN3_8B).resolve_kv_cache_dtype("auto") == "bfloat16"
    assert FitModel(compressed).resolve_kv_cache_dtype("bfloat16") == "bfloat16"  # asked wins
    bf16 = fit(QWEN3_8B, kv_cache_memory_bytes=GiB, max_model_len=4096, max_num_batched_tokens=2048)
    fp8 = fit(modelopt, kv_cache_memory_bytes=GiB, max_model_len=4096, max_num_batched_tokens=2048)
    assert fp8.plan.num_pages == 2 * (bf16.plan.num_pages or 0) == 910


def test_versions_other_than_the_modelled_are_refused() -> None:
    assert vllm_version("0.33.2") == vllm_version("v0.33") == "0.33"
    with pytest.raises(UnsupportedVersionError, match="kvschema fit models vLLM 0.33"):
        pinned("llama3-8b", GiB, vllm_version="0.20")
    with pytest.raises(UnsupportedVersionError, match="look like"):
        vllm_version("latest")


def test_devices_whose_attention_backend_pages_differently_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="ROCm"):
        fit(QWEN3_8B, gpu="MI300X")
    assert fit(QWEN3_8B, gpu="MI300X", block_size=16).settings.block_size == 16
    with pytest.raises(InvalidArgumentError, match="Blackwell"):
        pinned("deepseek-v3", GiB, gpu="B200")


def test_gpus_and_parallel_sizes() -> None:
    assert pinned("llama3-8b", GiB, max_model_len=4096, gpus=4).settings.tensor_parallel_size == 4
    two = pinned("llama3-8b", GiB, max_model_len=4096, gpus=4, pipeline_parallel_size=2)
    assert (two.settings.tensor_parallel_size, two.settings.pipeline_parallel_size) == (2, 2)
    with pytest.raises(InvalidArgumentError, match="data parallelism is not modelled"):
        pinned("llama3-8b", GiB, gpus=4, tensor_parallel_size=2)
    with pytest.raises(InvalidArgumentError, match="decoder layers without a KV cache"):
        pinned("nemotron-h-8b", GiB, pipeline_parallel_size=2)


@pytest.mark.parametrize(
    "bad",
    [
        {"gpu_memory_utilization": 0},
        {"gpu_memory_utilization": 1.5},
        {"kv_cache_memory_bytes": 0},
        {"max_model_len": "long"},
        {"kv_cache_dtype": "nvfp4"},
        {"gpu": "H1OO"},
        {"gpus": 0},
        {"block_size": -16},
    ],
)
def test_invalid_input_raises_value_errors_naming_it(bad: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"gpu": "H100", "max_model_len": 4096, **bad}
    with pytest.raises(KVSchemaError) as caught:  # a ValueError, never a TypeError
        fit(QWEN3_8B, **settings)
    assert isinstance(caught.value, ValueError)
    value = next(iter(bad.values()))
    assert str(value) in str(caught.value) or repr(value) in str(caught.value)


def test_a_budget_needs_a_device_or_a_pinned_memory() -> None:
    with pytest.raises(InvalidArgumentError, match="name a GPU"):
        fit(QWEN3_8B)
    with pytest.raises(InvalidArgumentError, match="default batch sizes depend on the device"):
        fit(QWEN3_8B, kv_cache_memory_bytes=GiB)


# -- verdicts and reasons ---------------------------------------------------------------------


def test_fits_only_when_the_low_end_fits() -> None:
    sure = fit(QWEN3_8B, gpu="L40S", max_model_len=32768)
    assert sure.verdict == "fits" and sure.plan_low.fits
    # On an RTX 4090 the low end holds 718 blocks beside the null block, the point 2135: a
    # length between fits only if the overheads are low.
    card = fit(QWEN3_8B, gpu="RTX 4090", max_model_len=4096)
    low_blocks = card.plan_low.num_pages - 1  # type: ignore[operator]
    point_blocks = card.plan.num_pages - 1  # type: ignore[operator]
    assert low_blocks < point_blocks
    maybe = fit(QWEN3_8B, gpu="RTX 4090", max_model_len=16 * (low_blocks + point_blocks) // 2)
    assert maybe.verdict == "fits_if_low_overhead"
    assert maybe.reason_code == "max_model_len_too_long" and not maybe.plan_low.fits
    assert maybe.plan.fits and maybe.reason.startswith("fits only if the overheads are low")
    assert maybe.plan_low.max_model_len_estimate == 16 * low_blocks


def test_weights_alone_exceed_the_memory() -> None:
    heavy = fit(HF / "llama3-8b.json", gpu="L4", weights_bytes=30 * GiB, max_model_len=4096)
    assert heavy.verdict == "does_not_fit" and heavy.reason_code == "weights_exceed_memory"
    assert heavy.vllm_log[-1].text.startswith("torch.OutOfMemoryError")
    over = fit(HF / "llama3-8b.json", gpu="L4", weights_bytes=20 * GiB, max_model_len=4096)
    assert over.reason_code == "weights_exceed_memory"  # loads, leaves nothing for the cache
    assert over.vllm_log[-1].text.startswith("ValueError: No available memory")


def test_utilization_above_what_start_up_leaves_is_refused() -> None:
    report = fit(QWEN3_8B, gpu="H100", gpu_memory_utilization=1.0, max_model_len=4096)
    assert report.verdict == "does_not_fit" and report.reason_code == "startup_memory"
    assert "Decrease GPU memory utilization" in report.vllm_log[0].text


def test_a_pinned_budget_larger_than_the_device_runs_out_of_memory() -> None:
    report = fit(QWEN3_8B, gpu="L4", kv_cache_memory_bytes=20 * GiB, max_model_len=4096)
    assert report.reason_code == "out_of_memory" and report.verdict == "does_not_fit"
    assert report.plan.num_pages is not None  # vLLM plans it, then cannot allocate it


def test_pipeline_stages_each_have_their_budget_and_the_bottleneck_is_named() -> None:
    report = fit(QWEN3_8B, gpu="L4", pipeline_parallel_size=2, max_model_len=8192)
    first, last = report.stages
    assert first.weights != last.weights  # embeddings on the first, lm_head on the last
    assert report.bottleneck_stage in (0, 1)
    assert report.available_kv_bytes == report.stages[report.bottleneck_stage].available
    assert len([line for line in report.vllm_log if "Available KV" in line.text]) == 2


def test_weights_from_safetensors_headers_in_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_8B))
    header = json.dumps(
        {
            "model.embed_tokens.weight": {
                "dtype": "BF16",
                "shape": [151936, 4096],
                "data_offsets": [0, 151936 * 4096 * 2],
            }
        }
    ).encode()
    size = 151936 * 4096 * 2
    with (tmp_path / "model.safetensors").open("wb") as out:
        out.write(struct.pack("<Q", len(header)) + header)
        out.truncate(8 + len(header) + size)  # a sparse file: the tensors are never read
    report = fit(tmp_path, gpu="H100", max_model_len=4096)
    assert report.weights is not None and report.weights.provenance == "safetensors"
    assert report.weights.total_bytes == size


def test_a_vision_config_counted_from_config_json_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="vision tower"):
        fit(HF / "gemma3-27b.json", gpu="H100")
    assert pinned("gemma3-27b", 20 * GiB, tensor_parallel_size=2).weights is None  # pinned: fine


def test_given_weights_on_one_gpu_are_exact() -> None:
    report = fit(HF / "llama3-8b.json", gpu="H100", weights_bytes=16_060_522_496)
    assert report.weights is not None and report.weights.bytes_per_rank.is_exact
    split = fit(HF / "llama3-8b.json", gpu="H100", weights_bytes=16_060_522_496, gpus=2)
    assert split.weights is not None and not split.weights.bytes_per_rank.is_exact


def test_a_config_path_with_a_null_byte_is_refused_naming_it() -> None:
    """A path the system cannot take is the config's error (it was a bare ValueError)."""
    from kvschema.models.families import HFConfigError

    with pytest.raises(HFConfigError, match=r"hf_config: '\\x00': cannot read: embedded null"):
        fit(hf_config="\x00", gpu="H100")
