"""vLLM 0.33's own planning tests, ported where kvschema can express them, with vLLM's numbers.

Each case names the vLLM test it comes from (``tests/v1/core/...`` of the vLLM 0.33.0 sdist).
vLLM's helpers there build ``FullAttentionSpec(block_size=16, num_kv_heads=2, head_size=64,
dtype=float32)`` and friends: one page is ``16 * 2 * 64 * 4 * 2 = 16384`` bytes (``P``), and
kvschema's ``page_size`` is vLLM's ``block_size``.  vLLM's tests pin the layer-outer layout
(``kv_cache_layout = "LBNHC"``), the one kvschema plans.  kvschema's ``num_pages`` counts the
null page as vLLM's ``num_blocks`` does (``available // bytes_per_block``), so vLLM's numbers
are compared as they are.

Not ported: ``num_gpu_blocks_override`` (kvschema plans from memory), TP ranks with different
budgets (kvschema takes one figure per pipeline stage), specs that conflict across workers (a
layer map names a layer once), block-outer packing, hidden-state, HiSparse and DCP specs, and
Mamba ``num_speculative_blocks`` / align mode (not in kvschema's ``MambaSpec``).
"""

from __future__ import annotations

from typing import Any

import pytest

from kvschema import (
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    InsufficientMemoryError,
    InvalidArgumentError,
    MambaSpec,
    SlidingWindowSpec,
    UniformTypeSpec,
    plan_cache,
)
from kvschema.planning.grouping import hybrid_groups, unify_hybrid_specs
from kvschema.planning.plan import CachePlan, pages_per_request

GiB = 1024**3
P = 16 * 2 * 64 * 4 * 2  # vLLM's mem_per_block_per_layer
GEOMETRY: dict[str, Any] = {"page_size": 16, "num_kv_heads": 2, "head_size": 64, "dtype": "fp32"}


def full(**fields: Any) -> FullAttentionSpec:
    """vLLM's ``new_kv_cache_spec`` (tests/v1/core/utils.py)."""
    return FullAttentionSpec(**{**GEOMETRY, **fields})


def sliding(**fields: Any) -> SlidingWindowSpec:
    """vLLM's ``new_sliding_window_spec``: window 1 unless given."""
    return SlidingWindowSpec(**{**GEOMETRY, "sliding_window": 1, **fields})


def chunked(**fields: Any) -> ChunkedLocalAttentionSpec:
    """vLLM's ``new_chunked_local_attention_spec``: chunk 4 unless given."""
    return ChunkedLocalAttentionSpec(**{**GEOMETRY, "attention_chunk_size": 4, **fields})


def mla(page_size: int = 16) -> FullAttentionSpec:
    """vLLM's ``new_mla_spec``: one latent of 576 in float32."""
    return FullAttentionSpec(
        page_size=page_size, num_kv_heads=1, head_size=576, dtype="fp32", use_mla=True
    )


def mamba(**fields: Any) -> MambaSpec:
    """vLLM's ``new_mamba_spec`` state shapes (16384 bytes), without speculative blocks."""
    return MambaSpec(
        **{"page_size": 16, "shapes": ((2, 512), (3, 32, 32)), "dtype": "fp32", **fields}
    )


def plan(
    specs: dict[str, Any], memory: int | list[int], max_model_len: int = 16, **kw: Any
) -> CachePlan:
    kw.setdefault("max_num_batched_tokens", 2048)
    return plan_cache(specs, available_bytes=memory, max_model_len=max_model_len, **kw)


def groups(result: CachePlan) -> list[list[str]]:
    assert result.config is not None
    return [list(group.layer_names or ()) for group in result.config.kv_cache_groups]


def layers(*kinds: Any) -> dict[str, Any]:
    return {f"layer_{i}": spec for i, spec in enumerate(kinds, start=1)}


# -- test_kv_cache_planning.py::test_get_kv_cache_config_one_worker ---------------------------


def test_one_worker_all_full_one_group() -> None:
    result = plan(layers(full(), full()), P * 2 * 32)
    assert result.num_pages == 32
    assert groups(result) == [["layer_1", "layer_2"]]
    assert result.config is not None and result.config.kv_cache_groups[0].kv_cache_spec == full()


def test_one_worker_all_sliding_one_group() -> None:
    result = plan(layers(sliding(), sliding()), P * 2 * 32)
    assert result.num_pages == 32
    assert result.config is not None and result.config.kv_cache_groups[0].kv_cache_spec == sliding()


def test_one_worker_hybrid_manager_disabled() -> None:
    result = plan(layers(full(), sliding()), P * 2 * 32, disable_hybrid_kv_cache_manager=True)
    assert result.num_pages == 32
    assert groups(result) == [["layer_1", "layer_2"]]
    assert result.config is not None
    assert result.config.kv_cache_groups[0].kv_cache_spec == full(sliding_window=1)


def test_one_worker_hybrid_manager_on() -> None:
    result = plan(layers(full(), sliding()), P * 2 * 32)
    assert result.num_pages == 64
    assert groups(result) == [["layer_1"], ["layer_2"]]
    assert result.config is not None
    assert [g.kv_cache_spec for g in result.config.kv_cache_groups] == [full(), sliding()]


def test_one_worker_two_full_four_sliding() -> None:
    result = plan(layers(full(), full(), *[sliding()] * 4), P * 2 * 32)
    assert result.num_pages == 32
    assert groups(result) == [
        ["layer_1", "layer_2"],
        ["layer_3", "layer_5"],
        ["layer_4", "layer_6"],
    ]


def test_one_worker_three_full_seven_sliding_padded_to_nine() -> None:
    result = plan(layers(*[full()] * 3, *[sliding()] * 7), P * 3 * 32)
    assert result.num_pages == 32
    assert groups(result) == [
        ["layer_1", "layer_2", "layer_3"],
        ["layer_4", "layer_7", "layer_10"],
        ["layer_5", "layer_8"],
        ["layer_6", "layer_9"],
    ]
    assert result.padding_layers == 2


def test_one_worker_six_full_five_sliding_group_size_six() -> None:
    # 6 < 1.5 x 5: the larger bucket gives the group size (gpt-oss + EAGLE in vLLM's comment)
    result = plan(layers(*[full()] * 6, *[sliding()] * 5), P * 6 * 32)
    assert result.num_pages == 32
    assert groups(result) == [
        [f"layer_{i}" for i in range(1, 7)],
        [f"layer_{i}" for i in range(7, 12)],
    ]


def test_one_worker_two_head_sizes_uniform_type() -> None:
    specs = layers(full(head_size=128), full(head_size=64))
    result = plan(specs, P * 3 * 32)
    assert result.num_pages == 32
    assert result.config is not None
    assert result.config.kv_cache_groups[0].kv_cache_spec == UniformTypeSpec(
        page_size=16, kv_cache_specs=specs
    )


def test_one_worker_block_size_unifies_pages() -> None:
    result = plan(layers(full(head_size=64), sliding(head_size=32)), P * 32)
    assert result.num_pages == 32
    assert result.config is not None
    assert [g.kv_cache_spec for g in result.config.kv_cache_groups] == [
        full(head_size=64),
        sliding(head_size=32, page_size=32),
    ]


def test_one_worker_padding_unifies_pages_42_blocks() -> None:
    # 0.33 pads the full layer's 16384-byte page to the sliding layer's 24576 (0.20 raised)
    swa = sliding(head_size=96)
    result = plan(layers(full(head_size=64), swa), P * 2 * 32)
    assert result.num_pages == 42
    assert result.config is not None
    assert [g.kv_cache_spec for g in result.config.kv_cache_groups] == [
        full(head_size=64, page_size_padded=swa.page_size_bytes),
        swa,
    ]


# -- test_kv_cache_planning.py::test_get_kv_cache_configs_multiple_workers --------------------


def test_multiple_workers_same_specs() -> None:
    assert plan(layers(full(), full()), P * 2 * 10).num_pages == 10


def test_multiple_workers_tp_and_pp() -> None:
    # vLLM puts layer1,2 / layer3 on the stages (its hand-made split; kvschema's is the same
    # here), the ranks of a stage hold the same specs: 10 blocks everywhere.
    specs = layers(full(), full(), full())
    for tp in (1, 2):
        result = plan(
            specs,
            P * 2 * 10,
            pipeline_parallel_size=2,
            tensor_parallel_size=tp,
            specs_per_rank=True,
        )
        assert [stage.layers for stage in result.stages] == [2, 1]
        assert [stage.num_pages for stage in result.stages] == [10, 20]
        assert result.num_pages == 10


def test_multiple_workers_hybrid_and_pp() -> None:
    result = plan(
        layers(full(), full(), sliding(), sliding()), P * 2 * 10, pipeline_parallel_size=2
    )
    assert groups(result) == [["layer_1", "layer_2"], ["layer_3", "layer_4"]]
    assert [stage.num_pages for stage in result.stages] == [10, 10]
    assert result.num_pages == 10


def test_multiple_workers_groups_balanced_over_stages() -> None:
    specs = layers(full(), sliding(), sliding(), full(), sliding(), sliding())
    result = plan(specs, P * 10, pipeline_parallel_size=2)
    assert groups(result) == [
        ["layer_1", "layer_4"],
        ["layer_2", "layer_5"],
        ["layer_3", "layer_6"],
    ]
    assert [stage.bytes_per_page for stage in result.stages] == [P, P]
    assert result.num_pages == 10


# -- test_kv_cache_planning.py::test_get_kv_cache_configs_pp_sharding -------------------------


@pytest.mark.parametrize("asymmetric_memory", [False, True])
def test_pp_sharding(asymmetric_memory: bool) -> None:
    expected = 512 // 16 + 1  # 33: 32 blocks for one request and the null block
    memory = [P * expected, P * expected * (2 if asymmetric_memory else 1)]
    result = plan(layers(full(), full()), memory, max_model_len=512, pipeline_parallel_size=2)
    assert result.num_pages == expected
    assert result.stages[0].num_pages == expected


# -- test_kv_cache_planning.py::test_get_kv_cache_configs_attention_free ----------------------


def test_attention_free() -> None:
    result = plan({}, GiB)
    assert not result.has_kv_cache
    assert result.num_pages == 1  # KVCacheConfig(num_blocks=1, kv_cache_tensors=[], groups=[])
    assert result.config is None and result.groups == [] and result.pages_per_request == []


# -- test_kv_cache_planning.py::test_estimate_max_model_len (Qwen/Qwen1.5-7B, 8 GiB) ----------


@pytest.mark.parametrize(("max_model_len", "estimate"), [(16385, 16384), (16383, None)])
def test_estimate_max_model_len(max_model_len: int, estimate: int | None) -> None:
    qwen = {
        f"layer_{i}": FullAttentionSpec(page_size=16, num_kv_heads=32, head_size=128, dtype="fp16")
        for i in range(32)
    }
    # vLLM estimates on the memory left once the null block is set aside
    # (check_enough_kv_cache_memory): 8 GiB of it is 8 GiB plus one 8 MiB page index here.
    budget = 8 * GiB + 32 * 2 * 16 * 32 * 128 * 2
    if estimate is None:
        assert plan(qwen, budget, max_model_len=max_model_len).inputs.max_model_len == 16383
        return
    with pytest.raises(InsufficientMemoryError) as info:
        plan(qwen, budget, max_model_len=max_model_len)
    assert info.value.max_model_len_estimate == estimate


# -- tests/v1/worker/test_gpu_model_runner.py (facebook/opt-125m: 2 layers, 8 heads of 64) -----


def test_gpu_model_runner_opt_125m_blocks_and_estimate() -> None:
    opt = {
        f"layer.{i}": FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=64, dtype="fp16")
        for i in range(2)
    }
    assert plan(opt, 20 * GiB, max_model_len=3_000_000).num_pages == 327680
    with pytest.raises(InsufficientMemoryError) as info:  # 5 GiB usable, as vLLM estimates
        plan(opt, 5 * GiB + 2 * 32768, max_model_len=3_000_000)
    assert info.value.max_model_len_estimate == 1310720


# -- test_kv_cache_planning.py: the null block ------------------------------------------------


def test_kv_cache_reserves_null_block_for_max_model_len() -> None:
    # test_kv_cache_reserves_null_block_for_max_model_len[False] and
    # test_check_enough_kv_cache_memory_reserves_null_block: 32 blocks refused, 33 accepted
    spec = full()
    with pytest.raises(InsufficientMemoryError, match="max_model_len=512"):
        plan({"layer1": spec}, spec.page_size_bytes * 32, max_model_len=512)
    assert plan({"layer1": spec}, spec.page_size_bytes * 33, max_model_len=512).num_pages == 33


def test_auto_fit_max_model_len_reserves_null_block() -> None:
    # auto-fit settles on 63 * 16 with memory for 64 blocks; kvschema's estimate is that search
    spec = full()
    with pytest.raises(InsufficientMemoryError) as info:
        plan({"layer1": spec}, spec.page_size_bytes * 64, max_model_len=1024)
    assert info.value.max_model_len_estimate == 63 * 16


def test_auto_fit_max_model_len() -> None:
    # test_auto_fit_max_model_len: memory for 1024 tokens keeps 1024; 32 blocks fit 0 < n < 1024
    specs = layers(full(), full())
    assert plan(specs, P * 2 * 1024, max_model_len=1024).num_pages == 1024
    with pytest.raises(InsufficientMemoryError) as info:
        plan(specs, P * 2 * 32, max_model_len=1024)
    assert 0 < info.value.max_model_len_estimate < 1024


# -- test_kv_cache_utils.py::test_get_max_concurrency_for_kv_cache_config ---------------------

QWEN_FULL = FullAttentionSpec(page_size=16, num_kv_heads=32, head_size=128, dtype="fp16")
QWEN_SWA = SlidingWindowSpec(
    page_size=16, num_kv_heads=32, head_size=128, dtype="fp16", sliding_window=1024
)
QWEN_PAGE_INDEX = 32 * QWEN_FULL.page_size_bytes  # 32 layers a group


@pytest.mark.parametrize(
    ("kinds", "num_blocks", "concurrency"),
    [
        ([QWEN_FULL], 1536, 1.5),
        ([QWEN_SWA], 129 * 3, 3.0),
        ([QWEN_FULL, QWEN_SWA], (1024 + 129) * 3, 3.0),
    ],
)
def test_get_max_concurrency_for_kv_cache_config(
    kinds: list[Any], num_blocks: int, concurrency: float
) -> None:
    # max_model_len 16384, max_num_batched_tokens 1024, async_scheduling=False (one batch)
    specs = {f"layer_{i}": kind for i, kind in enumerate(k for k in kinds for _ in range(32))}
    result = plan(
        specs,
        num_blocks * QWEN_PAGE_INDEX,
        max_model_len=16384,
        max_num_batched_tokens=1024,
        async_scheduling=False,
    )
    assert result.inputs.max_concurrent_batches == 1
    assert result.num_pages == num_blocks
    assert result.max_concurrency == concurrency
    assert result.kv_cache_size_tokens == int(concurrency * 16384)


def test_max_concurrency_per_group_pages() -> None:
    # the unequal-groups and uniform-type cases of the same test: each group's blocks per
    # request are cdiv(memory, page) of its own spec, 1024 + 129 = 1153 in all
    uniform = UniformTypeSpec(page_size=16, kv_cache_specs={f"l{i}": QWEN_FULL for i in range(4)})
    for first in (QWEN_FULL, uniform):
        needed = pages_per_request(first, 16384, 1024) + pages_per_request(QWEN_SWA, 16384, 1024)
        assert needed == 1153
        assert 1153 * 3 / needed == 3


# -- test_swa_inflight_window_free.py: admission caps with overlapping batches ----------------


@pytest.mark.parametrize(
    ("spec", "sync", "overlapped"),
    [
        (
            SlidingWindowSpec(
                page_size=16, num_kv_heads=1, head_size=1, dtype="fp32", sliding_window=1024
            ),
            129,
            193,
        ),
        (
            ChunkedLocalAttentionSpec(
                page_size=16, num_kv_heads=1, head_size=1, dtype="fp32", attention_chunk_size=1024
            ),
            128,
            192,
        ),
    ],
)
def test_admission_cap_accounts_for_overlapping_batches(
    spec: Any, sync: int, overlapped: int
) -> None:
    # test_swa_admission_cap_accounts_for_overlapping_batches and
    # test_chunked_local_admission_cap_accounts_for_overlapping_batches: max_in_flight_tokens
    # 1024 (one batch) and 2 x 1024 (async scheduling, vLLM 0.33's default at pp = 1)
    base = {"max_model_len": 16384, "max_num_batched_tokens": 1024}
    assert plan({"a": spec}, GiB, **base, async_scheduling=False).pages_per_request == [sync]
    assert plan({"a": spec}, GiB, **base).pages_per_request == [overlapped]


# -- test_kv_cache_planning.py: unification, promotion and the full-allocation fallback -------


def test_is_kv_cache_spec_uniform() -> None:
    def one_group(*specs: Any) -> bool:
        return len(hybrid_groups(layers(*specs))) == 1

    assert one_group(full(num_kv_heads=32), full(num_kv_heads=32))
    assert one_group(full(num_kv_heads=32), full(num_kv_heads=32, sliding_window=1))
    assert not one_group(full(num_kv_heads=32), sliding(num_kv_heads=32))
    assert one_group(sliding(num_kv_heads=32), sliding(num_kv_heads=32))
    assert not one_group(sliding(num_kv_heads=32), sliding(num_kv_heads=32, sliding_window=2))


def test_generate_uniform_type_kv_cache_specs() -> None:
    # test_kv_cache_utils.py::test_generate_uniform_type_kv_cache_specs
    def kind(*specs: Any) -> list[str]:
        return [spec.kind for spec, _ in hybrid_groups(layers(*specs))]

    assert kind(full(), full(head_size=128)) == ["uniform_type"]
    assert kind(full(), sliding()) == ["full_attention", "sliding_window"]
    assert kind(sliding(), full()) == ["sliding_window", "full_attention"]
    assert kind(sliding(), sliding(head_size=128)) == ["uniform_type"]
    # different block sizes: no uniform type; the smaller page grows to the larger one's
    assert kind(full(page_size=16), full(page_size=32)) == ["full_attention"]


def test_unify_kv_cache_page_size_uses_padding_for_non_divisible_sizes() -> None:
    target = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=192, dtype="bf16")
    draft = SlidingWindowSpec(
        page_size=16, num_kv_heads=1, head_size=128, dtype="bf16", sliding_window=1024
    )
    (target_group, draft_group) = hybrid_groups({"target_attn": target, "draft_attn": draft})
    assert target_group[0] == target
    unified = draft_group[0]
    assert isinstance(unified, SlidingWindowSpec)
    assert unified.page_size == draft.page_size
    assert unified.raw_page_size_bytes == draft.raw_page_size_bytes
    assert unified.page_size_padded == unified.page_size_bytes == target.page_size_bytes


def test_unify_kv_cache_spec_page_size_mamba() -> None:
    state, main, draft = mamba(), full(), full(num_kv_heads=4)
    assert state.page_size_bytes == main.page_size_bytes == 16384
    assert draft.page_size_bytes == 32768
    unified = {
        names[0]: spec
        for spec, names in hybrid_groups(
            {"mamba_layer": state, "main_attn_layer": main, "draft_attn_layer": draft}
        )
    }
    # the Mamba page is padded, block size unchanged; attention scales its block size
    assert (
        unified["mamba_layer"].page_size_bytes == unified["mamba_layer"].page_size_padded == 32768
    )  # type: ignore[union-attr]
    assert unified["mamba_layer"].page_size == 16
    assert unified["main_attn_layer"].page_size == 32
    assert unified["main_attn_layer"].page_size_padded is None  # type: ignore[union-attr]
    assert unified["draft_attn_layer"] == draft
    # 3. a Mamba page that does not divide the largest page is padded too
    odd = mamba(shapes=((6144,),))
    assert odd.page_size_bytes == 24576
    (odd_group, _) = hybrid_groups({"mamba_layer": odd, "draft_attn_layer": draft})
    assert odd_group[0].page_size_bytes == 32768
    # 4. so is an attention page that does not divide it
    (attention, _) = hybrid_groups({"attn_layer": full(page_size=24), "draft_attn_layer": draft})
    assert attention[0].page_size_padded == attention[0].page_size_bytes == 32768  # type: ignore[union-attr]
    assert attention[0].page_size == 24


def test_mla_draft_prefers_standard_layout_when_pages_can_be_unified() -> None:
    specs = {"target.0.attn": mla(), "draft.0": sliding(num_kv_heads=1, head_size=288)}
    assert len({spec.page_size_bytes for spec in specs.values()}) == 1
    grouped = hybrid_groups(specs)
    assert len(grouped) == 2
    assert not any(isinstance(spec, UniformTypeSpec) for spec, _ in grouped)


def test_mla_with_incompatible_swa_uses_one_full_allocation_group() -> None:
    draft = sliding(page_size=16)
    indexer = FullAttentionSpec(
        page_size=64, num_kv_heads=1, head_size=132, dtype="uint8", use_mla=True
    )  # vLLM's new_indexer_mla_spec
    specs = {"target.0.attn": mla(page_size=64), "target.0.indexer": indexer, "draft.0": draft}
    ((spec, names),) = hybrid_groups(specs)
    assert set(names) == set(specs)
    assert isinstance(spec, UniformTypeSpec)
    assert spec.page_size == 64
    promoted = spec.kv_cache_specs["draft.0"]
    assert isinstance(promoted, FullAttentionSpec)
    assert promoted.page_size == 64
    assert promoted.sliding_window == draft.sliding_window
    assert specs["draft.0"] is draft
    # the same layers plan: one group, a request needs max_model_len / 64 pages of each member
    result = plan(specs, GiB, max_model_len=4096)
    assert result.pages_per_request == [64]


def test_unify_hybrid_kv_cache_specs() -> None:
    # 1. full (block 64) + sliding (block 16, padded 32 KiB): the sliding layer takes block 64
    # and its padding grows to 64 KiB
    before = {
        "layer_1": full(page_size=64),
        "layer_2": sliding(page_size_padded=32 * 1024, sliding_window=1024),
    }
    after = unify_hybrid_specs(before)
    assert after["layer_1"] == full(page_size=64)
    assert after["layer_2"] == full(page_size=64, page_size_padded=64 * 1024, sliding_window=1024)
    assert after["layer_2"].page_size_bytes == 64 * 1024
    # 2. full + chunked
    after = unify_hybrid_specs(
        {
            "layer_1": full(),
            "layer_2": chunked(page_size_padded=32 * 1024, attention_chunk_size=512),
        }
    )
    assert after["layer_2"] == full(page_size_padded=32 * 1024, attention_chunk_size=512)
    # 3. full + sliding + chunked: both promoted
    after = unify_hybrid_specs(
        {
            "layer_1": full(),
            "layer_2": sliding(page_size_padded=32 * 1024, sliding_window=1024),
            "layer_3": chunked(page_size_padded=32 * 1024, attention_chunk_size=512),
        }
    )
    assert after == {
        "layer_1": full(),
        "layer_2": full(page_size_padded=32 * 1024, sliding_window=1024),
        "layer_3": full(page_size_padded=32 * 1024, attention_chunk_size=512),
    }
    # 4. no full attention: nothing to promote to
    with pytest.raises(InvalidArgumentError, match="Failed to promote"):
        unify_hybrid_specs(
            {"layer_1": sliding(sliding_window=1024), "layer_2": chunked(attention_chunk_size=512)}
        )
    # replicated Mamba state still requires the hybrid cache manager
    with pytest.raises(InvalidArgumentError, match="Mamba"):
        unify_hybrid_specs({"attention": full(), "mamba": mamba()})


# -- config/vllm.py: the hybrid manager switch (test_kv_cache_utils.py::
#    test_hma_not_disabled_when_kv_events_enabled: nothing else left unset turns it off) -------


def test_hybrid_manager_stays_on_by_default() -> None:
    result = plan(layers(full(), sliding()), P * 2 * 32)
    assert result.inputs.disable_hybrid_kv_cache_manager is False
    assert result.num_pages == 64
