"""Laws of kvschema fit: the fast capacity arithmetic is the planner's, more memory never fits
less, auto-fit's length passes vLLM's admission check (and one token more does not), and tensor
parallelism never adds weights to a rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fit_models import QWEN3_8B
from hypothesis import given, settings
from hypothesis import strategies as st

from kvschema import InsufficientMemoryError, fit, plan_cache
from kvschema.models.interval import GIB
from kvschema.planning.capacity import CacheShape
from kvschema.planning.engine import vllm_layers_from_hf_config
from kvschema.planning.fitmodel import FitModel

HF = Path(__file__).parent / "fixtures" / "hf"

#: (fixture, tensor-parallel size, pipeline-parallel size): full, sliding, MLA, Mamba, gated
#: delta-net, chunked layouts, with and without pipeline stages.
LAYOUTS = [
    ("llama3-8b", 1, 1),
    ("llama3-8b", 2, 3),
    ("gemma3-27b", 2, 1),
    ("gemma2-9b", 1, 2),
    ("deepseek-v2-lite", 1, 1),
    ("jamba-v0.1", 2, 1),
    ("qwen3-next-80b", 4, 1),
    ("nemotron-h-8b", 1, 1),
    ("llama4-scout", 8, 1),
    ("gpt-oss-20b", 1, 2),
]

_LAYERS: dict[tuple[str, int], Any] = {}


def layers(name: str, tp: int) -> Any:
    if (name, tp) not in _LAYERS:
        _LAYERS[name, tp] = vllm_layers_from_hf_config(HF / f"{name}.json", tensor_parallel_size=tp)
    return _LAYERS[name, tp]


budgets = st.integers(min_value=1, max_value=48 * GIB)


@settings(max_examples=60, deadline=None)
@given(
    layout=st.sampled_from(LAYOUTS),
    budget=budgets,
    length=st.integers(min_value=1, max_value=200_000),
    tokens=st.sampled_from([512, 2048, 8192]),
)
def test_the_capacity_arithmetic_is_the_planners(
    layout: tuple[str, int, int], budget: int, length: int, tokens: int
) -> None:
    name, tp, pp = layout
    model = layers(name, tp)
    length = min(length, model.model_length.default)
    shape = CacheShape.of(
        model,
        max_model_len=length,
        max_num_batched_tokens=tokens,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
    )
    out = shape.outcome([budget] * pp)
    try:
        plan = plan_cache(
            model,
            available_bytes=[budget] * pp,
            max_model_len=length,
            max_num_batched_tokens=tokens,
            tensor_parallel_size=tp,
            pipeline_parallel_size=pp,
        )
    except InsufficientMemoryError as err:
        assert not out.fits
        assert out.max_model_len_estimate == err.max_model_len_estimate
        assert out.needed_bytes == err.needed_bytes
        stage = err.fields["stage"]
        assert out.stage == stage
        one_block = budget <= shape.stage_page_bytes[stage]
        assert out.failure == ("no_memory" if one_block else "max_model_len")
        return
    assert out.fits
    assert (out.num_pages, out.max_concurrency) == (plan.num_pages, plan.max_concurrency)
    assert out.kv_cache_size_tokens == plan.kv_cache_size_tokens


@settings(max_examples=40, deadline=None)
@given(layout=st.sampled_from(LAYOUTS), small=budgets, extra=budgets)
def test_more_pinned_memory_never_fits_less(
    layout: tuple[str, int, int], small: int, extra: int
) -> None:
    name, tp, pp = layout
    common: dict[str, Any] = {
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "max_num_batched_tokens": 2048,
    }
    less = fit(HF / f"{name}.json", kv_cache_memory_bytes=small, **common)
    more = fit(HF / f"{name}.json", kv_cache_memory_bytes=small + extra, **common)
    assert not less.plan.fits or more.plan.fits
    if less.plan.fits:
        assert more.plan.num_pages >= less.plan.num_pages  # type: ignore[operator]
        assert more.plan.max_concurrency >= less.plan.max_concurrency  # type: ignore[operator]
    elif less.plan.max_model_len_estimate is not None and more.plan.max_model_len_estimate:
        assert more.plan.max_model_len_estimate >= less.plan.max_model_len_estimate


@settings(max_examples=40, deadline=None)
@given(
    small=st.integers(min_value=8 * GIB, max_value=200 * GIB),
    extra=st.integers(min_value=0, max_value=100 * GIB),
    utilization=st.sampled_from([0.5, 0.8, 0.9, 0.95]),
    length=st.integers(min_value=1, max_value=40960),
)
def test_a_larger_device_never_fits_less(
    small: int, extra: int, utilization: float, length: int
) -> None:
    common: dict[str, Any] = {
        "gpu_memory_utilization": utilization,
        "max_model_len": length,
        "max_num_batched_tokens": 2048,
        "max_num_seqs": 256,
    }
    less = fit(QWEN3_8B, gpu_memory=small, **common)
    more = fit(QWEN3_8B, gpu_memory=small + extra, **common)
    order = {"does_not_fit": 0, "fits_if_low_overhead": 1, "fits": 2}
    assert order[more.verdict] >= order[less.verdict]
    for end in ("low", "point", "high"):
        assert getattr(more.available_kv_bytes, end) >= getattr(less.available_kv_bytes, end)
    if less.plan.fits and more.plan.fits:
        assert more.plan.num_pages >= less.plan.num_pages  # type: ignore[operator]


@settings(max_examples=40, deadline=None)
@given(layout=st.sampled_from(LAYOUTS), budget=budgets)
def test_auto_fit_passes_the_admission_check_and_is_the_longest(
    layout: tuple[str, int, int], budget: int
) -> None:
    name, tp, pp = layout
    common: dict[str, Any] = {
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "max_num_batched_tokens": 2048,
    }
    report = fit(HF / f"{name}.json", kv_cache_memory_bytes=budget, max_model_len="auto", **common)
    model = layers(name, tp)
    derived = model.model_length.default
    plan_args: dict[str, Any] = {**common, "available_bytes": [budget] * pp}
    if not report.plan.fits:
        assert report.reason_code == "auto_fit_failed"
        with pytest.raises(InsufficientMemoryError):
            plan_cache(model, max_model_len=1, **plan_args)
        return
    length = report.plan.max_model_len
    plan = plan_cache(model, max_model_len=length, **plan_args)  # vLLM's check passes
    assert plan.num_pages == report.plan.num_pages
    if length < derived:
        with pytest.raises(InsufficientMemoryError):
            plan_cache(model, max_model_len=length + 1, **plan_args)
    else:
        assert length == derived


def _llama_like(
    layers: int, heads: int, kv: int, head_dim: int, ffn: int, vocab: int
) -> dict[str, Any]:
    return {
        "model_type": "llama",
        "hidden_size": heads * head_dim,
        "head_dim": head_dim,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "vocab_size": vocab,
        "torch_dtype": "bfloat16",
        "max_position_embeddings": 8192,
    }


@settings(max_examples=40, deadline=None)
@given(
    layers_=st.integers(min_value=1, max_value=16),
    heads=st.sampled_from([8, 16, 32, 64]),
    kv_div=st.sampled_from([1, 2, 4, 8]),
    head_dim=st.sampled_from([64, 128]),
    ffn=st.integers(min_value=1, max_value=64).map(lambda n: n * 256),
    vocab=st.integers(min_value=1, max_value=4000).map(lambda n: n * 64),
    pp=st.sampled_from([1, 2]),
)
def test_tensor_parallelism_never_adds_weights_to_a_rank(
    layers_: int, heads: int, kv_div: int, head_dim: int, ffn: int, vocab: int, pp: int
) -> None:
    if pp > layers_:
        pp = 1
    model = FitModel(_llama_like(layers_, heads, max(heads // kv_div, 1), head_dim, ffn, vocab))
    previous = None
    for tp in (1, 2, 4, 8):
        if heads % tp:
            break
        weights = model.weights(tp, pp).bytes_per_rank
        if previous is not None:
            assert weights.point <= previous.point
            assert weights.low <= previous.low and weights.high <= previous.high
        previous = weights
