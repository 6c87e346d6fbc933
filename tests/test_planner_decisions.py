"""What vLLM 0.33 decides before it plans: async scheduling, the hybrid manager, no KV cache.

Hand-worked cases for each rule of ``kvschema.planning.decisions`` (checked against vLLM 0.33's
``config/vllm.py`` and ``envs.py``), then the laws behind them as hypothesis properties.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kvschema import (
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    InsufficientMemoryError,
    InvalidArgumentError,
    SlidingWindowSpec,
    plan_cache,
)
from kvschema.planning.decisions import (
    max_concurrent_batches,
    resolve_async_scheduling,
    resolve_hybrid_kv_cache_manager,
)
from kvschema.strategies import attention_geometries, layer_specs

GiB = 1024**3
GEOMETRY: dict[str, Any] = {"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"}
FULL = FullAttentionSpec(**GEOMETRY)
LOCAL = SlidingWindowSpec(**GEOMETRY, sliding_window=1024)
CHUNKED = ChunkedLocalAttentionSpec(**GEOMETRY, attention_chunk_size=8192)
LLAMA4 = {f"layer.{i}": FULL if i % 4 == 3 else CHUNKED for i in range(8)}
BASE: dict[str, Any] = {
    "available_bytes": 4 * GiB,
    "max_model_len": 32768,
    "max_num_batched_tokens": 2048,
}


def test_async_scheduling_resolution() -> None:
    assert resolve_async_scheduling(None) is True
    assert resolve_async_scheduling(True) is True
    assert resolve_async_scheduling(False) is False
    with pytest.raises(InvalidArgumentError, match="async_scheduling must be a bool or None"):
        resolve_async_scheduling(1)  # type: ignore[arg-type]
    # VllmConfig.max_concurrent_batches with the V2 model runner: pp + 1 async, pp without
    assert [max_concurrent_batches(True, pp) for pp in (1, 2, 3)] == [2, 3, 4]
    assert [max_concurrent_batches(False, pp) for pp in (1, 2, 3)] == [1, 2, 3]


def test_pipeline_parallel_keeps_pp_plus_one_batches() -> None:
    layers = {f"layer.{i}": LOCAL for i in range(4)}
    plan = plan_cache(layers, **BASE, pipeline_parallel_size=2)
    assert plan.inputs.async_scheduling is True
    assert plan.inputs.tokens_in_flight == 3 * 2048
    # cdiv(min(1023 + 6144, 32768), 16) + 1
    assert plan.pages_per_request == [-(-(1023 + 6144) // 16) + 1]


def test_llama4_keeps_the_hybrid_manager_by_default() -> None:
    # The request behind this option said "hybrid allocator off for Llama 4 by default"; vLLM
    # 0.33's envs.py defaults VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE to "1", so
    # chunked local attention keeps the hybrid KV cache manager. kvschema follows the source.
    plan = plan_cache(LLAMA4, **BASE)
    assert plan.inputs.disable_hybrid_kv_cache_manager is False
    assert [g.kind for g in plan.groups] == ["local_attention"] * 3 + ["full_attention"]
    # chunked: cdiv(min(8192 + 4096, 32768), 16) = 768; full: 2048
    assert plan.pages_per_request == [768, 768, 768, 2048]


@pytest.mark.parametrize(
    "switch",
    [{"eagle": True}, {"allow_chunked_local_with_hybrid": False}],
    ids=["eagle", "env-0"],
)
def test_chunked_local_attention_turns_the_manager_off(switch: dict[str, Any]) -> None:
    plan = plan_cache(LLAMA4, **BASE, **switch)
    assert plan.inputs.disable_hybrid_kv_cache_manager is True
    (group,) = plan.config.kv_cache_groups  # type: ignore[union-attr]
    spec = group.kv_cache_spec
    assert spec == FULL.model_copy(update={"attention_chunk_size": 8192})
    assert plan.pages_per_request == [2048]
    assert plan.bytes_per_page == 8 * FULL.page_size_bytes
    # explicitly enabled where vLLM must disable it: refused with vLLM's words
    with pytest.raises(InvalidArgumentError, match="explicitly enabled but is not supported"):
        plan_cache(LLAMA4, **BASE, **switch, disable_hybrid_kv_cache_manager=False)
    # explicitly disabled is always respected
    again = plan_cache(LLAMA4, **BASE, **switch, disable_hybrid_kv_cache_manager=True)
    assert again == plan


def test_eagle_and_the_variable_leave_other_models_alone() -> None:
    layers = {"a": FULL, "b": LOCAL}
    for switch in ({"eagle": True}, {"allow_chunked_local_with_hybrid": False}):
        assert plan_cache(layers, **BASE, **switch).inputs.disable_hybrid_kv_cache_manager is False


def test_kv_connector_without_hybrid_support() -> None:
    layers = {"a": FULL, "b": LOCAL}
    off = plan_cache(layers, **BASE, kv_connector_supports_hybrid=False)
    assert off.inputs.disable_hybrid_kv_cache_manager is True
    assert len(off.groups) == 1
    on = plan_cache(layers, **BASE, kv_connector_supports_hybrid=True)
    assert on.inputs.disable_hybrid_kv_cache_manager is False
    # only an unset value is overridden by the connector: explicit False stands (vLLM too)
    kept = plan_cache(
        layers, **BASE, kv_connector_supports_hybrid=False, disable_hybrid_kv_cache_manager=False
    )
    assert kept.inputs.disable_hybrid_kv_cache_manager is False
    assert resolve_hybrid_kv_cache_manager(None, chunked_local=False) is False


def test_disabled_manager_refuses_what_vllm_refuses() -> None:
    from kvschema import MambaSpec

    state = MambaSpec(page_size=16, shapes=[[4096, 16]], dtype="fp32")
    with pytest.raises(InvalidArgumentError, match="Mamba.*Failed to promote"):
        plan_cache({"a": FULL, "m": state}, **BASE, disable_hybrid_kv_cache_manager=True)
    with pytest.raises(InvalidArgumentError, match="only next to a full layer"):
        plan_cache({"a": LOCAL, "b": CHUNKED}, **BASE, disable_hybrid_kv_cache_manager=True)
    other_window = LOCAL.model_copy(update={"sliding_window": 512})
    with pytest.raises(InvalidArgumentError, match="2 different sliding_window values"):
        plan_cache(
            {"a": FULL, "b": LOCAL, "c": other_window}, **BASE, disable_hybrid_kv_cache_manager=True
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"disable_hybrid_kv_cache_manager": "yes"},
        {"eagle": None},
        {"allow_chunked_local_with_hybrid": 1},
        {"kv_connector_supports_hybrid": 0},
        {"strategy": "per_layer", "disable_hybrid_kv_cache_manager": True},
    ],
)
def test_bad_switches(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        plan_cache({"a": FULL}, **{**BASE, **kwargs})


def test_attention_free_model_plans_no_kv_cache() -> None:
    plan = plan_cache({}, **BASE, pipeline_parallel_size=2)
    assert not plan.has_kv_cache
    assert plan.config is None and plan.groups == [] and plan.stages == []
    assert plan.num_pages == 1 and plan.bytes_per_page == 0
    assert plan.max_concurrency is None and plan.kv_cache_size_tokens is None
    assert plan.pages_at(1024) == 0
    assert plan.concurrency_at(1024) == float("inf")
    assert type(plan).model_validate_json(plan.model_dump_json()) == plan
    assert plan_cache([], **BASE).config is None  # no groups either


# -- laws -------------------------------------------------------------------------------------

_layer_maps = st.builds(
    lambda kinds, pattern: {f"layer.{i}": kinds[k % len(kinds)] for i, k in enumerate(pattern)},
    st.lists(layer_specs(), min_size=1, max_size=3),
    st.lists(st.integers(0, 2), min_size=1, max_size=24),
)


def _outcome(layers: dict[str, Any], **kwargs: Any) -> Any:
    try:
        return plan_cache(layers, **{**BASE, "available_bytes": 1 << 40, **kwargs})
    except (InsufficientMemoryError, InvalidArgumentError) as err:
        return type(err), str(err)


@given(_layer_maps, st.booleans())
def test_default_is_vllm_033_with_its_settings_spelled_out(
    layers: dict[str, Any], eagle: bool
) -> None:
    chunked = any(
        isinstance(s, ChunkedLocalAttentionSpec) or getattr(s, "attention_chunk_size", None)
        for s in layers.values()
    )
    explicit = _outcome(
        layers,
        eagle=eagle,
        async_scheduling=True,
        disable_hybrid_kv_cache_manager=eagle and chunked,
    )
    assert _outcome(layers, eagle=eagle) == explicit


@given(_layer_maps, st.integers(1, 2))
def test_async_scheduling_never_adds_capacity(layers: dict[str, Any], pp: int) -> None:
    assume(len(layers) >= pp)
    async_plan = _outcome(layers, pipeline_parallel_size=pp)
    sync_plan = _outcome(layers, pipeline_parallel_size=pp, async_scheduling=False)
    if isinstance(async_plan, tuple):
        return  # refused; the synchronous plan may or may not fit
    assert not isinstance(sync_plan, tuple)
    assert sync_plan.num_pages == async_plan.num_pages
    assert sync_plan.max_concurrency >= async_plan.max_concurrency
    assert all(
        s <= a
        for s, a in zip(sync_plan.pages_per_request, async_plan.pages_per_request, strict=True)
    )


@given(_layer_maps)
def test_a_disabled_manager_keeps_every_page_of_every_layer(layers: dict[str, Any]) -> None:
    plan = _outcome(layers, disable_hybrid_kv_cache_manager=True)
    if isinstance(plan, tuple):
        assert plan[0] is InvalidArgumentError or plan[0] is InsufficientMemoryError
        return
    (group,) = plan.config.kv_cache_groups
    spec = group.kv_cache_spec
    members = spec.kv_cache_specs.values() if spec.kind == "uniform_type" else [spec]
    assert sorted(group.layer_names) == sorted(layers)
    if any(s.kind == "full_attention" for s in layers.values()):  # windows allocated whole
        assert all(m.kind == "full_attention" for m in members)
    # one page index holds every layer's page; a request keeps max_model_len in every layer
    # (or one state page, for a model of recurrent state only)
    assert plan.bytes_per_page == sum(
        (spec.kv_cache_specs[n] if spec.kind == "uniform_type" else spec).page_size_bytes
        for n in group.layer_names
    )
    if all(m.kind == "full_attention" for m in members):
        assert plan.pages_per_request == [
            max(-(-BASE["max_model_len"] // m.page_size) for m in members)
        ]


@st.composite
def _one_geometry_hybrids(draw: st.DrawFn) -> dict[str, Any]:
    geometry = draw(attention_geometries())
    window = draw(st.integers(1, 1 << 16))
    chunk = draw(st.integers(1, 1 << 16))
    kinds = [
        FullAttentionSpec(**geometry),
        SlidingWindowSpec(**geometry, sliding_window=window),
        ChunkedLocalAttentionSpec(**geometry, attention_chunk_size=chunk),
    ]
    pattern = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=2, max_size=30))
    assume(0 in pattern)  # a full layer: what the windows are promoted to
    return {f"layer.{i}": kinds[k] for i, k in enumerate(pattern)}


@given(_one_geometry_hybrids(), st.integers(1, 1 << 17))
def test_disabling_never_needs_less_than_the_hybrid_plan_of_one_geometry(
    layers: dict[str, Any], max_model_len: int
) -> None:
    # With one page geometry, no empty layer slots and windows that keep no more pages than
    # full attention, the hybrid plan needs at most the disabled plan's bytes per request.
    # Outside that domain the law fails (see the counterexample test below).
    settings = {"max_model_len": max_model_len, "available_bytes": 1 << 50}
    hybrid = plan_cache(layers, **{**BASE, **settings})
    disabled = plan_cache(layers, **{**BASE, **settings}, disable_hybrid_kv_cache_manager=True)
    full_pages = disabled.pages_per_request[0]
    assume(hybrid.padding_layers == 0 and max(hybrid.pages_per_request) <= full_pages)
    assert hybrid.stages[0].needed_bytes <= disabled.stages[0].needed_bytes
    assert (
        disabled.bytes_per_page
        == len(layers)
        * FullAttentionSpec(
            **{k: getattr(next(iter(layers.values())), k) for k in GEOMETRY}
        ).page_size_bytes
    )


def test_disabling_can_hold_more_requests_than_the_hybrid_plan() -> None:
    # Why the law above is restricted: a sliding window longer than the request keeps one page
    # more than full attention (the window may start mid-page), and the hybrid pool pays for
    # it. 1 full + 1 sliding layer, 1000 page indices of one layer's page:
    long_window = LOCAL.model_copy(update={"sliding_window": 1 << 20})
    layers = {"a": FULL, "b": long_window}
    budget = 1000 * FULL.page_size_bytes
    settings = {**BASE, "available_bytes": budget, "max_model_len": 1024}
    hybrid = plan_cache(layers, **settings)
    disabled = plan_cache(layers, **settings, disable_hybrid_kv_cache_manager=True)
    assert hybrid.pages_per_request == [64, 65]
    assert (hybrid.num_pages, disabled.num_pages) == (1000, 500)
    assert hybrid.max_concurrency is not None and disabled.max_concurrency is not None
    assert disabled.max_concurrency == 500 / 64 > hybrid.max_concurrency == 1000 / 129
