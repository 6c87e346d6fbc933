"""Layers that read another layer's KV cache (vLLM's ``kv_sharing_target_layer_name``).

vLLM 0.33 gives such a layer no spec (``GPUModelRunner.get_kv_cache_spec``,
v1/worker/gpu_model_runner.py), so it takes no memory and no part in grouping; after planning
``add_kv_sharing_layers_to_kv_cache_groups`` (v1/worker/utils.py) appends it to its target's
group.  kvschema keeps it in the group's ``kv_sharing``, beside ``layer_names``.
"""

import json
from typing import Any

import pytest
from hypothesis import given
from pydantic import ValidationError

from kvschema import (
    CacheGroupsConfig,
    CacheGroupSpec,
    FullAttentionSpec,
    InsufficientMemoryError,
    InvalidArgumentError,
    MambaSpec,
    SlidingWindowSpec,
    check_compatible,
    fingerprint,
    plan_cache,
    to_canonical_json,
)
from kvschema.exchange.canonical import UnsupportedVersionError, read_config
from kvschema.strategies import cache_group_specs, cache_groups_configs

GiB = 1024**3
FULL = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
LOCAL = SlidingWindowSpec(
    page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=512
)


def with_sharing(group: CacheGroupSpec) -> list[str]:
    """A group's layers as vLLM lists them once sharing layers are appended."""
    return [*(group.layer_names or ()), *(group.kv_sharing or {})]


# -- ported from vLLM 0.33 -------------------------------------------------------------------

# tests/v1/core/test_kv_sharing.py::new_kv_cache_spec
TINY = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=1, dtype="fp32")
SHARED = {"model.layers.2": "model.layers.0", "model.layers.3": "model.layers.1"}


def test_kv_sharing_same_attn_groups() -> None:
    # vLLM tests/v1/core/test_kv_sharing.py::test_initialize_kv_cache_for_kv_sharing_same_attn_groups
    layers = {"model.layers.0": TINY, "model.layers.1": TINY}
    plan = plan_cache(
        layers, available_bytes=GiB, max_model_len=64, max_num_batched_tokens=64,
        kv_sharing=SHARED,
    )  # fmt: skip
    (group,) = plan.config.kv_cache_groups
    assert group.layer_names == ["model.layers.0", "model.layers.1"]
    assert with_sharing(group) == [
        "model.layers.0",
        "model.layers.1",
        "model.layers.2",
        "model.layers.3",
    ]


def test_kv_sharing_no_attn_groups() -> None:
    # vLLM tests/v1/core/test_kv_sharing.py::test_initialize_kv_cache_for_kv_sharing_no_attn_groups:
    # two groups [layers.0] and [layers.1] become [0, 2] and [1, 3].  vLLM builds the two
    # groups by hand from one spec; the layout holds them the same way.
    groups = [
        CacheGroupSpec(kv_cache_spec=TINY, layer_names=["model.layers.0"],
                       kv_sharing={"model.layers.2": "model.layers.0"}),
        CacheGroupSpec(kv_cache_spec=TINY, layer_names=["model.layers.1"],
                       kv_sharing={"model.layers.3": "model.layers.1"}),
    ]  # fmt: skip
    config = CacheGroupsConfig(num_pages=8, kv_cache_groups=groups)
    assert [with_sharing(g) for g in config.kv_cache_groups] == [
        ["model.layers.0", "model.layers.2"],
        ["model.layers.1", "model.layers.3"],
    ]
    # The planner puts each sharing layer in its target's group, wherever grouping puts that.
    plan = plan_cache(
        {"model.layers.0": TINY, "model.layers.1": TINY.model_copy(update={"head_size": 2})},
        available_bytes=GiB, max_model_len=64, max_num_batched_tokens=64, kv_sharing=SHARED,
        strategy="per_layer",
    )  # fmt: skip
    assert [with_sharing(g) for g in plan.config.kv_cache_groups] == [
        ["model.layers.0", "model.layers.2"],
        ["model.layers.1", "model.layers.3"],
    ]


# tests/v1/worker/test_gpu_model_runner.py: two Attention(num_heads=8, head_size=64) layers,
# fp16, BLOCK_SIZE 16: 32 KiB pages; max_model_len 3,000,000; 20 GiB available.
RUNNER_SPEC = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=64, dtype="fp16")
LAYER_0 = "model.layers.0.self_attn.attn"
LAYER_1 = "model.layers.1.self_attn.attn"


def test_init_kv_cache_without_kv_sharing() -> None:
    # vLLM tests/v1/worker/test_gpu_model_runner.py::test_init_kv_cache_without_kv_sharing
    assert RUNNER_SPEC.page_size_bytes == 32 * 1024
    layers = {LAYER_0: RUNNER_SPEC, LAYER_1: RUNNER_SPEC}
    plan = plan_cache(layers, available_bytes=20 * GiB, max_model_len=3_000_000,
                      max_num_batched_tokens=2048)  # fmt: skip
    assert plan.num_pages == 327680  # 20GB / 32KB / 2 (num layers)
    (group,) = plan.config.kv_cache_groups
    assert with_sharing(group) == [LAYER_0, LAYER_1]
    assert group.kv_sharing is None
    # estimate_max_model_len(vllm_config, kv_cache_spec, 5 * GiB_bytes) == 1310720; kvschema's
    # estimate keeps the null page back (as 0.33's _check_enough_kv_cache_memory does), so the
    # budget is 5 GiB plus one page index (2 layers x 32 KiB) for the same figure.
    with pytest.raises(InsufficientMemoryError) as info:
        plan_cache(layers, available_bytes=5 * GiB + 2 * 32 * 1024, max_model_len=3_000_000,
                   max_num_batched_tokens=2048)  # fmt: skip
    assert info.value.max_model_len_estimate == 1310720


def test_init_kv_cache_with_kv_sharing_valid() -> None:
    # vLLM tests/v1/worker/test_gpu_model_runner.py::test_init_kv_cache_with_kv_sharing_valid
    sharing = {LAYER_1: LAYER_0}
    for layers in ({LAYER_0: RUNNER_SPEC}, {LAYER_0: RUNNER_SPEC, LAYER_1: RUNNER_SPEC}):
        plan = plan_cache(layers, available_bytes=20 * GiB, max_model_len=3_000_000,
                          max_num_batched_tokens=2048, kv_sharing=sharing)  # fmt: skip
        assert plan.num_pages == 655360  # 20GB / 32KB
        (group,) = plan.config.kv_cache_groups
        assert group.layer_names == [LAYER_0]
        assert with_sharing(group) == [LAYER_0, LAYER_1]  # layer 1 added to the group
        assert plan.bytes_per_page == 32 * 1024  # the sharing layer costs nothing
        assert plan.groups[0].layers == 1
        with pytest.raises(InsufficientMemoryError) as info:
            plan_cache(layers, available_bytes=5 * GiB + 32 * 1024, max_model_len=3_000_000,
                       max_num_batched_tokens=2048, kv_sharing=sharing)  # fmt: skip
        # max context len with KV sharing should be 2x as large as without
        assert info.value.max_model_len_estimate == 2 * 1310720


# -- the layout's rules ----------------------------------------------------------------------


def group(names: list[str] | None, sharing: dict[str, str] | None, spec: Any = FULL) -> Any:
    return {
        "kv_cache_spec": spec.model_dump(mode="json"),
        "layer_names": names,
        "kv_sharing": sharing,
    }


def errors_of(document: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    with pytest.raises(ValidationError) as info:
        CacheGroupsConfig.model_validate(document)
    return [(e["type"], e["loc"]) for e in info.value.errors()]


@pytest.mark.parametrize(
    ("sharing", "expected"),
    [
        ({"a": "a"}, [("kv_sharing_self", "a")]),
        ({"a": "b"}, [("kv_sharing_layer_listed", "a")]),
        ({"a": "z"}, [("kv_sharing_layer_listed", "a"), ("kv_sharing_target_elsewhere", "a")]),
        ({"c": "z"}, [("kv_sharing_target_elsewhere", "c")]),
        ({"c": "a", "d": "c"}, [("kv_sharing_chain", "d")]),
    ],
)
def test_a_sharing_layer_reads_a_layer_of_its_group(
    sharing: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    document = {"num_pages": 4, "kv_cache_groups": [group(["a", "b"], sharing)]}
    found = errors_of(document)
    assert found == [(kind, ("kv_cache_groups", 0, "kv_sharing", name)) for kind, name in expected]


def test_error_messages_name_both_layers() -> None:
    with pytest.raises(ValidationError, match="layer d shares the KV cache of c, which itself"):
        CacheGroupSpec(kv_cache_spec=FULL, layer_names=["a"], kv_sharing={"c": "a", "d": "c"})
    with pytest.raises(ValidationError, match="z, which is not in this group's layer_names"):
        CacheGroupSpec(kv_cache_spec=FULL, layer_names=["a"], kv_sharing={"c": "z"})
    with pytest.raises(ValidationError, match="kv_sharing needs the group's layer_names"):
        CacheGroupSpec(kv_cache_spec=FULL, kv_sharing={"c": "a"})


def test_empty_sharing_is_none() -> None:
    spec_group = CacheGroupSpec(kv_cache_spec=FULL, layer_names=["a"], kv_sharing={})
    assert spec_group.kv_sharing is None
    assert spec_group == CacheGroupSpec(kv_cache_spec=FULL, layer_names=["a"])
    assert to_canonical_json(spec_group) == to_canonical_json(
        CacheGroupSpec(kv_cache_spec=FULL, layer_names=["a"])
    )
    # a lone every-layer group with {} is fine: there is nothing to check
    assert CacheGroupSpec(kv_cache_spec=FULL, kv_sharing={}).kv_sharing is None


@pytest.mark.parametrize("validated", [True, False])
def test_a_sharing_layer_is_in_one_group_only(validated: bool) -> None:
    cases = [
        # a sharing layer that another group lists
        ([["a"], ["c"]], [{"c": "a"}, None], ("kv_cache_groups", 1, "layer_names", 0)),
        # a layer two groups share
        ([["a"], ["b"]], [{"c": "a"}, {"c": "b"}], ("kv_cache_groups", 1, "kv_sharing", "c")),
        # a layer listed first, shared later
        ([["c"], ["a"]], [None, {"c": "a"}], ("kv_cache_groups", 1, "kv_sharing", "c")),
    ]
    specs = [FULL, LOCAL]
    for names, sharing, loc in cases:
        document = {
            "num_pages": 4,
            "kv_cache_groups": [
                group(n, s, spec) for n, s, spec in zip(names, sharing, specs, strict=True)
            ],
        }
        if validated:  # the one-set fast path of model_validate
            assert errors_of(document) == [("layer_in_two_groups", loc)]
        else:  # groups built first, then the config
            groups = [CacheGroupSpec.model_validate(g) for g in document["kv_cache_groups"]]
            with pytest.raises(ValidationError) as info:
                CacheGroupsConfig(num_pages=4, kv_cache_groups=groups)
            assert [(e["type"], e["loc"]) for e in info.value.errors()] == [
                ("layer_in_two_groups", loc)
            ]


def test_kv_sharing_is_a_version_2_field() -> None:
    document = {"num_pages": 4, "kv_cache_groups": [group(["a"], {"b": "a"})]}
    config = CacheGroupsConfig.model_validate(document)
    assert config.content_version == 2
    assert to_canonical_json(config).endswith(b'"schema_version":2}')
    assert config.kv_sharing == {"b": "a"}
    assert config.layer_count == 1  # layers with a cache of their own
    assert list(config.layer_specs()) == ["a"]
    assert errors_of({**document, "schema_version": 1}) == [
        ("field_newer_than_schema_version", ("schema_version",))
    ]
    # a document without schema_version is version 1 to read_config: refused the same way
    with pytest.raises(UnsupportedVersionError, match="sets kv_sharing, added in schema_version 2"):
        read_config(document)
    assert read_config({**document, "schema_version": 2}).kv_sharing == {"b": "a"}


@given(cache_groups_configs())
def test_every_layer_once_sharing_layers_included(config: CacheGroupsConfig) -> None:
    names = [n for g in config.kv_cache_groups for n in with_sharing(g)]
    assert len(names) == len(set(names))
    for g in config.kv_cache_groups:
        for target in (g.kv_sharing or {}).values():
            assert target in (g.layer_names or ())


@given(cache_groups_configs())
def test_written_then_read_is_equal(config: CacheGroupsConfig) -> None:
    assert CacheGroupsConfig.model_validate_json(config.model_dump_json()) == config
    again = read_config(to_canonical_json(config))
    assert fingerprint(again) == fingerprint(config)
    assert again.kv_sharing == config.kv_sharing


@given(cache_group_specs())
def test_groups_written_then_read_are_equal(spec_group: CacheGroupSpec) -> None:
    assert CacheGroupSpec.model_validate_json(spec_group.model_dump_json()) == spec_group


# -- planning ---------------------------------------------------------------------------------


def gemma3n_like() -> tuple[dict[str, Any], dict[str, str]]:
    """10 layers, full at 4 and 9, the last 5 sharing (Gemma 3n's rule in vLLM's gemma3n.py:
    a sliding layer reads first_shared - 2, a full one first_shared - 1)."""
    layers = {f"layer.{i}": FULL if i % 5 == 4 else LOCAL for i in range(10)}
    sharing = {f"layer.{i}": "layer.4" if i == 9 else "layer.3" for i in range(5, 10)}
    return layers, sharing


def test_sharing_layers_take_no_memory_and_join_their_targets_group() -> None:
    layers, sharing = gemma3n_like()
    plan = plan_cache(layers, available_bytes=GiB, max_model_len=4096, max_num_batched_tokens=512,
                      kv_sharing=sharing)  # fmt: skip
    alone = plan_cache({n: s for n, s in layers.items() if n not in sharing},
                       available_bytes=GiB, max_model_len=4096, max_num_batched_tokens=512)  # fmt: skip
    assert plan.num_pages == alone.num_pages
    assert plan.bytes_per_page == alone.bytes_per_page
    assert plan.pages_per_request == alone.pages_per_request
    assert plan.groups == alone.groups
    placed = {n: g.kv_cache_spec.kind for g in plan.config.kv_cache_groups for n in with_sharing(g)}
    assert placed == {n: s.kind for n, s in layers.items()}
    assert plan.config.kv_sharing == sharing
    # the planned config plans again to the same thing, its sharing kept
    again = plan_cache(plan.config.kv_cache_groups, available_bytes=GiB, max_model_len=4096,
                       max_num_batched_tokens=512)  # fmt: skip
    assert again.config == plan.config


@pytest.mark.parametrize(
    ("sharing", "message"),
    [
        ({"layer.1": "layer.1"}, "cannot share its own KV cache"),
        ({"layer.2": "layer.1", "layer.1": "layer.0"}, "which itself shares layer.0's"),
        ({"layer.2": "layer.7"}, "layer.7, which is not a layer to plan"),
        ({"layer.2": "state"}, "a mamba layer: only attention KV is shared"),
        ({"state": "layer.0"}, "is a mamba layer: only attention layers share KV"),
        ({"layer.2": 3}, "maps layer names to layer names"),
    ],
)
def test_planning_refuses_what_vllm_refuses(sharing: dict[str, Any], message: str) -> None:
    layers: dict[str, Any] = {f"layer.{i}": FULL for i in range(3)}
    layers["state"] = MambaSpec(page_size=16, shapes=[[64]], dtype="fp32")
    with pytest.raises(InvalidArgumentError, match=message):
        plan_cache(layers, available_bytes=GiB, max_model_len=256, max_num_batched_tokens=64,
                   kv_sharing=sharing)  # fmt: skip


def test_planning_refuses_what_it_cannot_place() -> None:
    layers, sharing = gemma3n_like()
    with pytest.raises(InvalidArgumentError, match="over pipeline stages"):
        plan_cache(layers, available_bytes=GiB, max_model_len=4096, max_num_batched_tokens=512,
                   kv_sharing=sharing, pipeline_parallel_size=2)  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="must map a sharing layer"):
        plan_cache(layers, available_bytes=GiB, max_model_len=4096, max_num_batched_tokens=512,
                   kv_sharing=[("layer.9", "layer.4")])  # type: ignore[arg-type]  # fmt: skip
    groups = [CacheGroupSpec(kv_cache_spec=FULL, layer_names=["a"], kv_sharing={"b": "a"})]
    with pytest.raises(InvalidArgumentError, match="shares a's KV cache in the groups given"):
        plan_cache(groups, available_bytes=GiB, max_model_len=64, max_num_batched_tokens=64,
                   kv_sharing={"b": "c"})  # fmt: skip
    plan = plan_cache(groups, available_bytes=GiB, max_model_len=64, max_num_batched_tokens=64,
                      kv_sharing={"b": "a"})  # fmt: skip
    assert plan.config.kv_sharing == {"b": "a"}


def test_jax_gives_a_sharing_layer_its_targets_arrays() -> None:
    pytest.importorskip("jax")
    from kvschema.jax import allocate, verify

    layers, sharing = gemma3n_like()
    plan = plan_cache(layers, available_bytes=2**24, max_model_len=1024, max_num_batched_tokens=64,
                      kv_sharing=sharing)  # fmt: skip
    arrays = allocate(plan, abstract=True)
    assert set(arrays) == set(layers)
    assert arrays["layer.9"] is arrays["layer.4"] and arrays["layer.6"] is arrays["layer.3"]
    assert arrays.nbytes == plan.num_pages * plan.bytes_per_page
    verify(plan, allocate(plan))


# -- compatibility ----------------------------------------------------------------------------


def config_of(sharing: dict[str, str] | None, names: list[str]) -> CacheGroupsConfig:
    return CacheGroupsConfig(
        num_pages=64,
        kv_cache_groups=[CacheGroupSpec(kv_cache_spec=FULL, layer_names=names, kv_sharing=sharing)],
    )


def test_peers_must_share_the_same_layers() -> None:
    shared = config_of({"c": "a"}, ["a", "b"])
    assert check_compatible(shared, shared).compatible
    other_target = config_of({"c": "b"}, ["a", "b"])
    report = check_compatible(shared, other_target)
    assert [(d.rule, d.layer, d.a, d.b) for d in report.differences] == [
        ("kv_sharing", "c", "a", "b")
    ]
    assert report.differences[0].path == "$.kv_cache_groups[0].kv_sharing['c']"
    own_cache = config_of(None, ["a", "b", "c"])
    report = check_compatible(shared, own_cache)
    assert [(d.rule, d.reason) for d in report.differences] == [
        ("kv_sharing", "c reads a's KV cache in a and keeps its own in b")
    ]
    missing = config_of(None, ["a", "b"])
    assert [d.rule for d in check_compatible(shared, missing).differences] == ["layer_names"]
    assert json.loads(check_compatible(own_cache, shared).model_dump_json())["compatible"] is False
