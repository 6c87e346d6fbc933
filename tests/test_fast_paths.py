"""The fast paths keep the verdicts of the plain ones they replace.

Each fast path (the targeted schema-version walk, the derived-value check, the planner's
grouping of distinct specs) is held here against a plain reference written the obvious way.
"""

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from json_texts import with_a_key_twice
from pydantic import BaseModel, ValidationError

from kvschema import (
    CacheGroupsConfig,
    CacheGroupSpec,
    FullAttentionSpec,
    Parallelism,
    UniformTypeSpec,
)
from kvschema.errors import SpecMergeError
from kvschema.exchange.canonical import to_canonical_json
from kvschema.layout.config import FIELD_VERSIONS, _fields_set, _keys_read
from kvschema.planning.grouping import _buckets
from kvschema.spec.merge import merge_specs
from kvschema.strategies import cache_groups_configs, cache_specs, layer_specs


def every_field_set(node: Any) -> Iterator[str]:
    """Every field set to a non-default value in ``node`` and every model inside it (the walk
    kvschema used before it read only the versioned fields)."""
    if isinstance(node, BaseModel):
        for name, field in type(node).model_fields.items():
            value = getattr(node, name)
            if value != field.default:
                yield name
                yield from every_field_set(value)
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from every_field_set(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from every_field_set(value)


@given(cache_groups_configs(), st.booleans(), st.booleans())
def test_version_walk_finds_what_a_full_walk_finds(
    config: CacheGroupsConfig, parallel: bool, shared: bool
) -> None:
    if parallel:
        config = config.model_copy(update={"parallelism": Parallelism(tensor_parallel_size=2)})
    if shared and len(config.kv_cache_groups) > 1:
        # one spec object in two groups: visited once, the same answer
        first, second, *rest = config.kv_cache_groups
        twin = CacheGroupSpec(kv_cache_spec=first.kv_cache_spec, layer_names=second.layer_names)
        config = config.model_copy(update={"kv_cache_groups": [first, twin, *rest]})
    expected = set(every_field_set(config)) & FIELD_VERSIONS.keys()
    assert _fields_set(config) == expected
    assert config.content_version == max((FIELD_VERSIONS[n] for n in expected), default=1)
    assert config.fields_newer_than(1) == sorted(expected)


def test_version_walk_reads_uniform_type_members() -> None:
    plain = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="bf16")
    wide_v = FullAttentionSpec(
        page_size=16, num_kv_heads=2, head_size=192, head_size_v=128, dtype="bf16"
    )
    uniform = UniformTypeSpec(page_size=16, kv_cache_specs={"a": plain, "b": wide_v})
    config = CacheGroupsConfig(
        num_pages=8, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=uniform, layer_names=["a", "b"])]
    )
    assert _fields_set(config) == {"head_size_v"} == set(every_field_set(config)) & {"head_size_v"}
    assert config.fields_newer_than(1) == ["head_size_v"]
    document = {**json.loads(config.model_dump_json()), "schema_version": 1}
    with pytest.raises(ValidationError, match="sets head_size_v, added in schema_version 2"):
        CacheGroupsConfig.model_validate(document)


@given(cache_specs())
def test_derived_check_reports_each_wrong_value_once(spec: Any) -> None:
    document = json.loads(spec.model_dump_json())
    assert type(spec).model_validate(document) == spec
    wrong = {**document, "type_id": document["type_id"] + "x", "page_size_bytes": 0}
    with pytest.raises(ValidationError) as info:
        type(spec).model_validate_json(json.dumps(wrong))
    assert [(e["type"], e["loc"], e["input"]) for e in info.value.errors()] == [
        ("derived_mismatch", ("type_id",), wrong["type_id"]),
        ("derived_mismatch", ("page_size_bytes",), 0),
    ]


def test_a_broken_uniform_type_spec_gets_its_own_errors_only() -> None:
    full = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="bf16")
    other = full.model_copy(update={"page_size": 32})
    document = {
        "kind": "uniform_type",
        "page_size": 16,
        "kv_cache_specs": {"a": full.model_dump(), "b": other.model_dump()},
        "type_id": "nonsense",
        "page_size_bytes": 1,
    }
    with pytest.raises(ValidationError) as info:
        UniformTypeSpec.model_validate(document)
    assert [e["type"] for e in info.value.errors()] == ["uniform_type_page_size"]


def every_bucket_tried(unified: dict[Any, list[str]]) -> list[tuple[list[Any], list[str]]]:
    """Step 4 as vLLM 0.33 writes it: each spec tries every earlier bucket in turn."""
    joined: list[tuple[list[Any], list[str]]] = []
    merged: list[Any] = []
    for spec, layers in unified.items():
        for index, earlier in enumerate(merged):
            try:
                merged[index] = merge_specs([earlier, spec])
            except SpecMergeError:
                continue
            joined[index][0].append(spec)
            joined[index][1].extend(layers)
            break
        else:
            merged.append(spec)
            joined.append(([spec], list(layers)))
    return joined


_windows = st.none() | st.sampled_from([128, 512, 4096])
_recording_full_specs = st.builds(
    lambda heads, window, chunk, mla: FullAttentionSpec(
        page_size=16,
        num_kv_heads=heads,
        head_size=64,
        dtype="bf16",
        use_mla=mla,
        sliding_window=window,
        attention_chunk_size=None if window is not None else chunk,
    ),
    st.sampled_from([1, 2]),
    _windows,
    _windows,
    st.booleans(),
)


@given(st.lists(_recording_full_specs | layer_specs(), min_size=1, max_size=24))
def test_buckets_join_as_trying_every_earlier_bucket(specs: list[Any]) -> None:
    unified = {spec: [f"layer.{i}"] for i, spec in enumerate(dict.fromkeys(specs))}
    assert _buckets(unified) == every_bucket_tried(unified)


@given(cache_specs())
def test_a_spec_read_with_derived_values_can_be_handed_on(spec: Any) -> None:
    """The check runs once: handed to a group, the spec's model validator runs again and
    must not take the dropped derived values for given ones."""
    read = type(spec).model_validate_json(spec.model_dump_json())
    assert not {"given_type_id", "given_page_size_bytes"} & read.model_fields_set
    names = list(spec.kv_cache_specs) if isinstance(spec, UniformTypeSpec) else ["layer.0"]
    group = CacheGroupSpec(kv_cache_spec=read, layer_names=names)
    assert group.kv_cache_spec == spec
    assert CacheGroupSpec.model_validate({"kv_cache_spec": read, "layer_names": names}) == group


def _keys_in(text: str) -> int:
    count = 0

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal count
        count += len(items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return count


@given(cache_groups_configs(), st.booleans(), st.data())
def test_duplicate_keys_are_refused_and_only_they(
    config: CacheGroupsConfig, written: bool, data: st.DataObject
) -> None:
    """The colon count decides nothing alone: a document it passes holds every key once, and
    one with a key twice (even twice the same value) is refused wherever the key is."""
    document = json.loads(config.model_dump_json())
    if not written:  # the fields only, as a deploy file gives them
        document = json.loads(to_canonical_json(config))
    text = json.dumps(document)
    again = CacheGroupsConfig.model_validate_json(text)
    assert _keys_read(again) == _keys_in(text) == text.count(":")  # the fast path is taken
    _, objects = with_a_key_twice(document, -1)
    twice, _ = with_a_key_twice(document, data.draw(st.integers(0, objects - 1)))
    with pytest.raises(ValidationError) as info:
        CacheGroupsConfig.model_validate_json(twice.encode())
    assert [e["type"] for e in info.value.errors()] == ["duplicate_key"]


def test_colons_inside_names_take_the_slow_path_and_pass() -> None:
    spec = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp16")
    config = CacheGroupsConfig(
        num_pages=8,
        kv_cache_groups=[CacheGroupSpec(kv_cache_spec=spec, layer_names=["enc:0", "dec:0"])],
    )
    text = config.model_dump_json()
    assert text.count(":") > _keys_read(config)
    assert CacheGroupsConfig.model_validate_json(text) == config


@given(cache_specs(), st.sampled_from(["page_size", "page_size_padded"]), st.integers(1, 1 << 20))
def test_a_spec_replaced_is_its_model_copy(spec: Any, field: str, value: int) -> None:
    """The planner's copies (a page padded or scaled) are what ``model_copy`` makes."""
    fast, slow = spec._replace(**{field: value}), spec.model_copy(update={field: value})
    assert type(fast) is type(slow)
    assert fast == slow and fast.__dict__ == slow.__dict__ and repr(fast) == repr(slow)
    assert fast.__pydantic_fields_set__ == slow.__pydantic_fields_set__
    assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)
    assert spec.__dict__.get(field) != value or fast == spec  # the original is left alone
    assert spec._replace(**{field: value}) is not spec


def _validated(model: BaseModel) -> BaseModel:
    """``model`` built again through validation, from the values and fields it was given."""
    given = {name: getattr(model, name) for name in model.__pydantic_fields_set__}
    return type(model)(**given)


@given(
    st.lists(layer_specs(), min_size=1, max_size=4),
    st.lists(st.integers(0, 3), min_size=1, max_size=30),
    st.sampled_from(["hybrid", "per_layer"]),
    st.sampled_from([1, 2]),
)
def test_a_plan_built_without_validation_is_the_validated_plan(
    kinds: list[Any], pattern: list[int], strategy: str, pp: int
) -> None:
    """The planner builds its groups and summaries without validating them again (their
    values hold by construction); validated, they are the same models, and so is the plan."""
    from kvschema import InvalidArgumentError, plan_cache
    from kvschema.planning.plan import CachePlan

    layers = {f"model.layers.{i}": kinds[k % len(kinds)] for i, k in enumerate(pattern)}
    try:
        plan = plan_cache(
            layers,
            available_bytes=2**50,
            max_model_len=4096,
            max_num_batched_tokens=512,
            strategy=strategy,  # type: ignore[arg-type]
            pipeline_parallel_size=min(pp, len(layers)),
        )
    except InvalidArgumentError:
        return  # what vLLM refuses, or a plan past 2**53 - 1
    assert plan.config is not None
    for group in plan.config.kv_cache_groups:
        again = _validated(group)
        assert again == group and again.__pydantic_fields_set__ == group.__pydantic_fields_set__
        assert list(again.__dict__) == list(group.__dict__)
    for summary in plan.groups:
        again = _validated(summary)
        assert again == summary and list(again.__dict__) == list(summary.__dict__)
        assert summary.type_id == next(
            g.kv_cache_spec.type_id
            for g in plan.config.kv_cache_groups
            if g.kv_cache_spec.type_id == summary.type_id
        )
    document = plan.model_dump_json()
    assert CachePlan.model_validate_json(document) == plan
    assert CachePlan.model_validate_json(document).model_dump_json() == document


@pytest.mark.parametrize("name", ["", "x" * 257, "layer.\ud800", "layer.é"])
def test_a_plan_with_names_a_group_refuses_is_validated(name: str) -> None:
    """Names the quick path does not vouch for take the validated path: what it raised
    before (an invalid name), or the same plan (a valid non-ASCII one)."""
    from kvschema import plan_cache

    spec = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="bf16")
    layers = {name: spec, "model.layers.1": spec}
    args = {"available_bytes": 2**30, "max_model_len": 1024, "max_num_batched_tokens": 64}
    if name == "layer.é":
        plan = plan_cache(layers, **args)  # type: ignore[arg-type]
        assert plan.config is not None and plan.config.kv_cache_groups[0].layer_names == [
            name,
            "model.layers.1",
        ]
        return
    with pytest.raises(ValidationError):
        plan_cache(layers, **args)  # type: ignore[arg-type]


@given(st.integers(1, 2**60), st.integers(1, 2**40))
def test_the_quick_json_check_finds_what_the_walk_finds(tokens: int, page: int) -> None:
    """json_exact's quick test answers as the walk of the whole dump does."""
    from kvschema import InvalidArgumentError, MambaSpec, plan_cache
    from kvschema.planning.plan import _over_max, _too_large

    state = MambaSpec(page_size=1, shapes=[[min(page, 2**30)]], dtype="fp32")
    try:
        plan = plan_cache(
            {"a": state}, available_bytes=2**52, max_model_len=4096, max_num_batched_tokens=tokens
        )
    except InvalidArgumentError as err:
        assert "2**53 - 1" in str(err)
        return
    assert _over_max(plan) is (_too_large(plan.model_dump(exclude={"config"}), "$") is not None)
    big = plan.model_copy(update={"padding_bytes": 2**53})
    assert _over_max(big) and _too_large(big.model_dump(exclude={"config"}), "$") is not None
