"""The capacity planner: hand-worked cases for every step, and the budget law."""

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema import (
    CacheGroupSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    InsufficientMemoryError,
    InvalidArgumentError,
    MambaSpec,
    SlidingWindowSpec,
    UniformTypeSpec,
    plan_cache,
    shard_spec,
)
from kvschema.planner import stage_sizes
from kvschema.strategies import layer_specs

GiB, MiB = 1024**3, 1024**2
FULL = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")  # 64 KiB pages
LOCAL = SlidingWindowSpec(
    page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=1024
)
PAGE = 2 * 16 * 8 * 128 * 2  # 65536


def plain(n: int = 32) -> dict[str, FullAttentionSpec]:
    return {f"layer.{i}": FULL for i in range(n)}


def test_plain_model() -> None:
    # 32 layers x 64 KiB = 2 MiB per page index; 2 GiB hold 1024 pages; 8192 tokens need 512.
    plan = plan_cache(
        plain(), available_bytes=2 * GiB, max_model_len=8192, max_num_batched_tokens=2048
    )
    (group,) = plan.config.kv_cache_groups
    assert group.kv_cache_spec == FULL
    assert group.layer_names == [f"layer.{i}" for i in range(32)]
    assert plan.bytes_per_page == 32 * PAGE == 2 * MiB
    assert plan.config.num_pages == 1024
    assert plan.pages_per_request == [512]
    assert plan.max_concurrency == 2.0
    assert plan.kv_cache_size_tokens == 16384
    assert plan.padding_layers == 0


def test_exact_fit_is_refused_one_null_page_more_fits() -> None:
    needed = 512 * 2 * MiB  # one request of 8192 tokens
    with pytest.raises(InsufficientMemoryError) as info:
        plan_cache(plain(), available_bytes=needed, max_model_len=8192, max_num_batched_tokens=2048)
    assert info.value.needed_bytes == needed
    assert info.value.available_bytes == needed
    assert info.value.max_model_len_estimate == 511 * 16  # one page less, the null page's
    plan = plan_cache(
        plain(), available_bytes=needed + 2 * MiB, max_model_len=8192, max_num_batched_tokens=2048
    )
    assert plan.config.num_pages == 513


def test_a_case_that_does_not_fit_says_what_would() -> None:
    with pytest.raises(InsufficientMemoryError) as info:
        plan_cache(plain(), available_bytes=GiB, max_model_len=32768, max_num_batched_tokens=2048)
    err = info.value
    assert err.needed_bytes == 2048 * 2 * MiB  # 4 GiB
    assert err.available_bytes == GiB
    # (1 GiB - 2 MiB) / 2 MiB = 511 pages of 16 tokens
    assert err.max_model_len_estimate == 511 * 16
    assert "max_model_len=32768" in str(err)
    assert "lower max_model_len to 8176" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert (back.needed_bytes, back.available_bytes, back.max_model_len_estimate) == (
        err.needed_bytes,
        err.available_bytes,
        err.max_model_len_estimate,
    )


def test_budget_of_one_page_has_its_own_message() -> None:
    with pytest.raises(InsufficientMemoryError, match="null page: nothing is left") as info:
        plan_cache(plain(), available_bytes=2 * MiB, max_model_len=16, max_num_batched_tokens=16)
    assert info.value.max_model_len_estimate == 0


def test_five_to_one_sliding_hybrid() -> None:
    layers = {f"layer.{i}": FULL if i % 6 == 5 else LOCAL for i in range(12)}
    plan = plan_cache(
        layers, available_bytes=2 * GiB, max_model_len=8192, max_num_batched_tokens=2048
    )
    groups = plan.config.kv_cache_groups
    # 10 sliding + 2 full; group size 2 (the smaller bucket): 5 sliding groups taking layers
    # strided, then the full group.
    assert [g.layer_names for g in groups] == [
        ["layer.0", "layer.6"],
        ["layer.1", "layer.7"],
        ["layer.2", "layer.8"],
        ["layer.3", "layer.9"],
        ["layer.4", "layer.10"],
        ["layer.5", "layer.11"],
    ]
    assert plan.bytes_per_page == 2 * PAGE
    assert plan.config.num_pages == 2 * GiB // (2 * PAGE) == 16384
    # vLLM 0.33 schedules asynchronously by default: two batches of 2048 tokens in flight.
    # sliding: cdiv(min(1023 + 4096, 8192), 16) + 1 = 321 pages; full: 8192 / 16 = 512
    assert plan.inputs.tokens_in_flight == 4096
    assert plan.pages_per_request == [321] * 5 + [512]
    assert plan.max_concurrency == 16384 / (5 * 321 + 512)
    assert plan.kv_cache_size_tokens == int(16384 / 2117 * 8192)


def test_full_layers_of_two_head_counts_form_one_uniform_type_group() -> None:
    small = FULL.model_copy(update={"num_kv_heads": 2})
    layers = {f"layer.{i}": FULL if i < 4 else small for i in range(8)}
    plan = plan_cache(layers, available_bytes=GiB, max_model_len=8192, max_num_batched_tokens=2048)
    (group,) = plan.config.kv_cache_groups
    spec = group.kv_cache_spec
    assert isinstance(spec, UniformTypeSpec)
    assert spec.page_size_bytes == 4 * PAGE + 4 * PAGE // 4
    assert plan.bytes_per_page == spec.page_size_bytes
    assert plan.pages_per_request == [512]
    assert spec.type_id == f"uniform_type_full_attention_16_{spec.page_size_bytes}"


def test_recorded_windows_and_mla_count_as_full_attention() -> None:
    mla = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=576, dtype="bf16", use_mla=True)
    layers = {"a": FULL, "b": FULL.model_copy(update={"sliding_window": 4096}), "c": mla}
    plan = plan_cache(layers, available_bytes=GiB, max_model_len=1024, max_num_batched_tokens=256)
    (group,) = plan.config.kv_cache_groups
    assert group.kv_cache_spec.kind == "uniform_type"


def test_attention_and_mamba_hybrid_attention_page_grows() -> None:
    # Mamba page: (4096*3 + 4096*13) * 2 bytes * 2 = 262144 = 4 attention pages: page_size 16 -> 64
    state = MambaSpec(page_size=16, shapes=[[4096, 3], [4096, 13]], dtype="fp32")
    assert state.page_size_bytes == 4 * PAGE
    layers = {f"layer.{i}": FULL if i % 8 == 4 else state for i in range(16)}
    plan = plan_cache(
        layers, available_bytes=4 * GiB, max_model_len=8192, max_num_batched_tokens=2048
    )
    groups = plan.config.kv_cache_groups
    assert [g.kv_cache_spec.kind for g in groups] == ["mamba"] * 7 + ["full_attention"]
    attention = groups[-1].kv_cache_spec
    assert attention.page_size == 64
    assert attention.page_size_bytes == 4 * PAGE
    assert groups[-1].layer_names == ["layer.4", "layer.12"]
    assert plan.bytes_per_page == 2 * 4 * PAGE
    assert plan.pages_per_request == [1] * 7 + [8192 // 64]


def test_attention_and_mamba_hybrid_with_padded_pages() -> None:
    # Mamba page 311296 bytes is no multiple of 65536: attention pages are padded up to it.
    state = MambaSpec(page_size=16, shapes=[[8192, 3], [8192, 16]], dtype="bf16")
    assert state.page_size_bytes == 311296
    layers = {f"layer.{i}": FULL if i % 8 == 4 else state for i in range(16)}
    plan = plan_cache(
        layers, available_bytes=4 * GiB, max_model_len=8192, max_num_batched_tokens=2048
    )
    attention = plan.config.kv_cache_groups[-1].kv_cache_spec
    assert attention.page_size == 16
    assert attention.page_size_padded == 311296  # type: ignore[union-attr]
    assert attention.type_id == "full_attention_16_311296"
    assert plan.bytes_per_page == 2 * 311296
    # a small Mamba page is padded up to a larger attention page
    tiny = MambaSpec(page_size=16, shapes=[[100]], dtype="fp32")
    plan = plan_cache(
        {"a": FULL, "m": tiny}, available_bytes=GiB, max_model_len=64, max_num_batched_tokens=16
    )
    assert plan.config.kv_cache_groups[1].kv_cache_spec.page_size_padded == PAGE  # type: ignore[union-attr]


def test_mla_that_cannot_be_unified_is_an_error() -> None:
    mla = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=576, dtype="bf16", use_mla=True)
    state = MambaSpec(page_size=16, shapes=[[8192, 3], [8192, 16]], dtype="bf16")
    with pytest.raises(InvalidArgumentError, match="MLA pages cannot be padded"):
        plan_cache(
            {"a": mla, "m": state}, available_bytes=GiB, max_model_len=64, max_num_batched_tokens=16
        )


def test_uneven_buckets_padded_to_the_larger_when_close() -> None:
    # 12 sliding + 13 full: 13 < 1.5 x 12, so both groups take 13 slots; one slot is empty.
    layers = {f"layer.{i}": LOCAL if i < 12 else FULL for i in range(25)}
    plan = plan_cache(layers, available_bytes=GiB, max_model_len=4096, max_num_batched_tokens=1024)
    assert [len(g.layer_names or ()) for g in plan.config.kv_cache_groups] == [12, 13]
    assert plan.padding_layers == 1
    assert plan.bytes_per_page == 13 * PAGE
    # each request's sliding pages leave one slot empty; two batches of 1024 tokens in flight
    # (async scheduling, vLLM 0.33's default): cdiv(min(1023 + 2048, 4096), 16) + 1 = 193
    assert plan.pages_per_request == [193, 256]
    assert plan.padding_bytes == 193 * PAGE


def test_uneven_buckets_split_strided() -> None:
    # 20 full + 30 sliding: group size 20; sliding splits in two strided groups of 15.
    layers = {f"layer.{i}": FULL if i < 20 else LOCAL for i in range(50)}
    plan = plan_cache(
        layers, available_bytes=4 * GiB, max_model_len=4096, max_num_batched_tokens=1024
    )
    groups = plan.config.kv_cache_groups
    assert [len(g.layer_names or ()) for g in groups] == [20, 15, 15]
    assert groups[1].layer_names == [f"layer.{i}" for i in range(20, 50, 2)]
    assert plan.padding_layers == 10


def test_tensor_parallel_sharding() -> None:
    assert shard_spec(FULL, 2).num_kv_heads == 4  # type: ignore[union-attr]
    assert shard_spec(FULL, 8).num_kv_heads == 1  # type: ignore[union-attr]
    assert shard_spec(FULL, 32).num_kv_heads == 1  # type: ignore[union-attr]
    with pytest.raises(
        InvalidArgumentError, match="8 KV heads cannot be split over tensor_parallel_size=3"
    ):
        shard_spec(FULL, 3)
    with pytest.raises(InvalidArgumentError):
        shard_spec(FULL.model_copy(update={"num_kv_heads": 6}), 4)
    mla = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=576, dtype="bf16", use_mla=True)
    assert shard_spec(mla, 8) == mla
    state = MambaSpec(page_size=1, shapes=[[4]], dtype="fp32")
    assert shard_spec(state, 1) == state
    # how a whole-model state splits depends on its mixer, which a MambaSpec does not record:
    # refused (it used to come back whole, as if every rank held all of it)
    with pytest.raises(InvalidArgumentError, match="MambaSpec .* cannot be split over .*=8"):
        shard_spec(state, 8)
    plan = plan_cache(
        plain(),
        available_bytes=GiB,
        max_model_len=8192,
        max_num_batched_tokens=2048,
        tensor_parallel_size=4,
    )
    assert plan.bytes_per_page == 32 * PAGE // 4
    assert plan.config.kv_cache_groups[0].kv_cache_spec.num_kv_heads == 2  # type: ignore[union-attr]


def test_pipeline_stages_as_vllm_splits_them() -> None:
    assert stage_sizes(10, 4) == [2, 3, 3, 2]
    assert stage_sizes(7, 4) == [2, 2, 2, 1]
    assert stage_sizes(8, 4) == [2, 2, 2, 2]
    assert stage_sizes(5, 1) == [5]
    with pytest.raises(InvalidArgumentError, match="more stages than"):
        stage_sizes(3, 4)


def test_pipeline_uneven_split_and_unequal_stage_memory() -> None:
    layers = {f"layer.{i}": FULL for i in range(10)}
    plan = plan_cache(
        layers,
        available_bytes=[GiB, GiB, 2 * GiB, GiB],
        max_model_len=4096,
        max_num_batched_tokens=1024,
        pipeline_parallel_size=4,
    )
    assert [s.layers for s in plan.stages] == [2, 3, 3, 2]
    assert [s.bytes_per_page for s in plan.stages] == [2 * PAGE, 3 * PAGE, 3 * PAGE, 2 * PAGE]
    assert [s.num_pages for s in plan.stages] == [8192, 5461, 10922, 8192]
    assert plan.config.num_pages == 5461
    assert plan.bytes_per_page == 3 * PAGE
    assert plan.pages_per_request == [256]
    assert (plan.stages[1].first_layer, plan.stages[1].last_layer) == ("layer.2", "layer.4")
    # vLLM 0.33 default: async scheduling, pp + 1 = 5 batches of 1024 tokens in flight
    assert plan.inputs.tokens_in_flight == 5 * 1024


def test_pipeline_stage_that_does_not_fit_is_named() -> None:
    layers = {f"layer.{i}": FULL for i in range(4)}
    with pytest.raises(InsufficientMemoryError, match="on pipeline stage 1") as info:
        plan_cache(
            layers,
            available_bytes=[GiB, 4 * MiB],
            max_model_len=4096,
            max_num_batched_tokens=64,
            pipeline_parallel_size=2,
        )
    assert info.value.fields["stage"] == 1


def test_tokens_in_flight() -> None:
    # VllmConfig.max_in_flight_tokens = max_concurrent_batches x max_num_batched_tokens, where
    # 0.33's V2 model runner runs pp + 1 batches with async scheduling (on unless turned off)
    # and pp without.
    layers = {"a": LOCAL, "b": LOCAL}
    base = {"available_bytes": GiB, "max_model_len": 65536, "max_num_batched_tokens": 2048}
    cases = {
        (None, 1): (True, 2),
        (True, 1): (True, 2),
        (False, 1): (False, 1),
        (None, 2): (True, 3),
        (True, 2): (True, 3),
        (False, 2): (False, 2),
    }
    for (async_scheduling, pp), (resolved, batches) in cases.items():
        inputs = plan_cache(
            layers,
            **base,  # type: ignore[arg-type]
            async_scheduling=async_scheduling,
            pipeline_parallel_size=pp,
        ).inputs
        assert (inputs.async_scheduling, inputs.max_concurrent_batches) == (resolved, batches)
        assert inputs.tokens_in_flight == 2048 * batches
    plan = plan_cache(layers, **base)  # type: ignore[arg-type]
    # (cdiv(1023 + 4096, 16) + 1) pages
    assert plan.pages_per_request == [-(-(1023 + 4096) // 16) + 1]
    plan = plan_cache(layers, **base, async_scheduling=False)  # type: ignore[arg-type]
    assert plan.pages_per_request == [-(-(1023 + 2048) // 16) + 1]
    # EasyDeL's per-layer pool does not take vLLM's async default; it can be asked for
    per_layer = plan_cache(layers, **base, strategy="per_layer")  # type: ignore[arg-type]
    assert per_layer.inputs.tokens_in_flight == 2048
    assert per_layer.inputs.disable_hybrid_kv_cache_manager is None
    asked = plan_cache(layers, **base, strategy="per_layer", async_scheduling=True)  # type: ignore[arg-type]
    assert asked.inputs.tokens_in_flight == 4096


def test_per_layer_strategy() -> None:
    layers = {f"layer.{i}": FULL if i % 6 == 5 else LOCAL for i in range(12)}
    plan = plan_cache(
        layers,
        available_bytes=2 * GiB,
        max_model_len=8192,
        max_num_batched_tokens=2048,
        strategy="per_layer",
    )
    assert [len(g.layer_names or ()) for g in plan.config.kv_cache_groups] == [10, 2]
    assert plan.bytes_per_page == 12 * PAGE
    assert plan.config.num_pages == 2 * GiB // (12 * PAGE)
    assert plan.pages_per_request == [193, 512]
    assert plan.padding_layers == 0


def test_groups_as_input() -> None:
    groups = [
        CacheGroupSpec(kv_cache_spec=LOCAL, layer_names=["layer.0", "layer.1"]),
        CacheGroupSpec(kv_cache_spec=FULL, layer_names=["layer.2"]),
    ]
    plan = plan_cache(groups, available_bytes=GiB, max_model_len=1024, max_num_batched_tokens=256)
    assert plan.config.layer_count == 3
    with pytest.raises(InvalidArgumentError, match="layer_names"):
        plan_cache(
            [CacheGroupSpec(kv_cache_spec=FULL)],
            available_bytes=GiB,
            max_model_len=8,
            max_num_batched_tokens=8,
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"available_bytes": 0},
        {"available_bytes": [GiB, GiB]},
        {"available_bytes": True},
        {"max_model_len": 0},
        {"max_num_batched_tokens": -1},
        {"strategy": "greedy"},
        {"tensor_parallel_size": 0},
        {"async_scheduling": 1},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "available_bytes": GiB,
        "max_model_len": 8,
        "max_num_batched_tokens": 8,
    }
    with pytest.raises(InvalidArgumentError):
        plan_cache(plain(2), **{**base, **kwargs})  # type: ignore[arg-type]


def test_bad_layers() -> None:
    with pytest.raises(InvalidArgumentError, match="not a per-layer spec"):
        plan_cache(
            {"a": {"kind": "full_attention"}},
            available_bytes=GiB,
            max_model_len=8,
            max_num_batched_tokens=8,
        )


def test_plan_serializes() -> None:
    layers = {
        f"layer.{i}": FULL
        if i % 2
        else ChunkedLocalAttentionSpec(**GEOMETRY, attention_chunk_size=8192)
        for i in range(4)
    }
    plan = plan_cache(layers, available_bytes=GiB, max_model_len=16384, max_num_batched_tokens=2048)
    again = type(plan).model_validate_json(plan.model_dump_json())
    assert again == plan


GEOMETRY = {"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"}


@given(
    st.lists(layer_specs(), min_size=1, max_size=3),
    st.lists(st.integers(0, 2), min_size=1, max_size=40),
    st.integers(1, 1 << 34),
    st.integers(1, 1 << 17),
    st.sampled_from(["hybrid", "per_layer"]),
)
def test_a_plan_never_exceeds_the_budget_and_one_more_page_would(
    kinds: list[object], pattern: list[int], budget: int, max_len: int, strategy: str
) -> None:
    layers = {f"layer.{i}": kinds[k % len(kinds)] for i, k in enumerate(pattern)}
    args = {"available_bytes": budget, "max_num_batched_tokens": 2048, "strategy": strategy}
    try:
        plan = plan_cache(layers, max_model_len=max_len, **args)  # type: ignore[arg-type]
    except InsufficientMemoryError as err:
        page = err.fields["bytes_per_page"]
        assert err.needed_bytes > budget - page
        estimate = err.max_model_len_estimate
        assert 0 <= estimate < max_len
        if estimate:  # the estimate fits, one token more does not
            plan_cache(layers, max_model_len=estimate, **args)  # type: ignore[arg-type]
        with pytest.raises(InsufficientMemoryError):
            plan_cache(layers, max_model_len=estimate + 1, **args)  # type: ignore[arg-type]
        return
    except InvalidArgumentError as err:  # MLA pages that cannot be unified, or what vLLM refuses
        assert "MLA" in str(err) or "vLLM 0.33" in str(err)
        return
    pages, page = plan.config.num_pages, plan.bytes_per_page
    assert pages * page <= budget < (pages + 1) * page
    assert plan.stages[0].needed_bytes == page * sum(plan.pages_per_request) <= budget - page
    names = [n for g in plan.config.kv_cache_groups for n in g.layer_names or ()]
    assert sorted(names) == sorted(layers)
    assert plan.max_concurrency == pages / sum(plan.pages_per_request)
