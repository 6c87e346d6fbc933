"""CacheGroupSpec and CacheGroupsConfig rules."""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from kvschema import (
    SCHEMA_VERSION,
    CacheGroupsConfig,
    CacheGroupSpec,
    FullAttentionSpec,
    SlidingWindowSpec,
)
from kvschema.strategies import cache_groups_configs

FULL = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
SLIDING = SlidingWindowSpec(
    page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=512
)
MAMBA = {"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32"}


def config(*groups: CacheGroupSpec, num_pages: int = 64) -> CacheGroupsConfig:
    return CacheGroupsConfig(num_pages=num_pages, kv_cache_groups=list(groups))


@given(cache_groups_configs())
def test_round_trip(cfg: CacheGroupsConfig) -> None:
    text = cfg.model_dump_json()
    again = CacheGroupsConfig.model_validate_json(text)
    assert again == cfg
    assert again.model_dump_json() == text


@given(cache_groups_configs())
def test_every_layer_in_exactly_one_group(cfg: CacheGroupsConfig) -> None:
    names = [n for g in cfg.kv_cache_groups for n in g.layer_names or ()]
    assert len(names) == len(set(names))
    assert cfg.layer_count in (None, len(names))
    assert list(cfg.layer_specs()) == names


def test_schema_version_is_written_and_defaults_to_current() -> None:
    cfg = config(CacheGroupSpec(kv_cache_spec=FULL))
    assert cfg.model_dump()["schema_version"] == SCHEMA_VERSION == 2


def test_newer_schema_version_is_refused_saying_so() -> None:
    with pytest.raises(
        ValidationError, match="schema_version 3 is newer than this kvschema reads"
    ) as info:
        CacheGroupsConfig(
            schema_version=3, num_pages=1, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=FULL)]
        )
    assert info.value.errors()[0]["type"] == "schema_version_unsupported"


@pytest.mark.parametrize("pages", [0, -1, True, "64", 64.0])
def test_num_pages_is_a_strict_positive_int(pages: object) -> None:
    with pytest.raises(ValidationError):
        CacheGroupsConfig(num_pages=pages, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=FULL)])


def test_at_least_one_group() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        CacheGroupsConfig(num_pages=1, kv_cache_groups=[])


def test_layer_names_unique_across_groups() -> None:
    with pytest.raises(ValidationError, match="layer layer.1 is in group 0 and group 1") as info:
        config(
            CacheGroupSpec(kv_cache_spec=FULL, layer_names=["layer.0", "layer.1"]),
            CacheGroupSpec(kv_cache_spec=SLIDING, layer_names=["layer.2", "layer.1"]),
        )
    assert info.value.errors()[0]["loc"] == ("kv_cache_groups", 1, "layer_names", 1)


def test_layer_names_unique_within_a_group() -> None:
    with pytest.raises(ValidationError, match="listed twice in this group") as info:
        CacheGroupSpec(kv_cache_spec=FULL, layer_names=["a", "b", "a"])
    assert info.value.errors()[0]["loc"] == ("layer_names", 2)


@pytest.mark.parametrize("names", [[], [""], [3], ["x" * 257]])
def test_layer_names_non_empty_strings(names: list[object]) -> None:
    with pytest.raises(ValidationError):
        CacheGroupSpec(kv_cache_spec=FULL, layer_names=names)


def test_all_layers_only_for_a_lone_group() -> None:
    assert config(CacheGroupSpec(kv_cache_spec=FULL)).layer_count is None
    with pytest.raises(ValidationError, match="layer_names is null") as info:
        config(
            CacheGroupSpec(kv_cache_spec=FULL),
            CacheGroupSpec(kv_cache_spec=SLIDING, layer_names=["layer.1"]),
        )
    assert info.value.errors()[0]["loc"] == ("kv_cache_groups", 0, "layer_names")


def test_group_spec_is_discriminated_from_documents() -> None:
    cfg = CacheGroupsConfig.model_validate(
        {
            "num_pages": 10,
            "kv_cache_groups": [
                {"kv_cache_spec": SLIDING.model_dump(mode="json"), "layer_names": ["layer.0"]},
                {
                    "kv_cache_spec": {**FULL.model_dump(mode="json"), "dtype": "bf16"},
                    "layer_names": ["layer.1"],
                },
            ],
        }
    )
    assert cfg.kv_cache_groups[0].kv_cache_spec == SLIDING
    assert cfg.kv_cache_groups[1].kv_cache_spec == FULL


def _errors(call: Any) -> list[tuple[str, tuple[Any, ...]]] | None:
    try:
        call()
    except ValidationError as err:
        return sorted((e["type"], e["loc"]) for e in err.errors())
    return None


@given(
    config=cache_groups_configs(max_layers=24),
    moves=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=3),
    as_instances=st.booleans(),
)
def test_every_validation_path_gives_the_same_verdict(
    config: CacheGroupsConfig, moves: list[tuple[int, int]], as_instances: bool
) -> None:
    # model_validate* share one set of layer names across the groups; __init__, a TypeAdapter
    # and a caller's own context take the two-pass check.  Copying names between groups (or
    # within one) must be caught the same way by each, with the same errors.
    data = config.model_dump(mode="json")
    groups = data["kv_cache_groups"]
    named = [g for g in groups if g["layer_names"]]
    for source, target in moves:
        if named:
            src, dst = named[source % len(named)], named[target % len(named)]
            dst["layer_names"].append(src["layer_names"][source % len(src["layer_names"])])
    if as_instances:  # groups that are already models are not validated again
        data["kv_cache_groups"] = [
            CacheGroupSpec.model_validate(g)
            if len(set(g["layer_names"] or ())) == len(g["layer_names"] or ())
            else g
            for g in groups
        ]
    text = json.dumps(data, default=lambda m: m.model_dump(mode="json"))
    reference = _errors(lambda: CacheGroupsConfig(**data))
    assert _errors(lambda: CacheGroupsConfig.model_validate(data)) == reference
    assert _errors(lambda: CacheGroupsConfig.model_validate(data, context={})) == reference
    assert _errors(lambda: TypeAdapter(CacheGroupsConfig).validate_python(data)) == reference
    assert _errors(lambda: CacheGroupsConfig.model_validate_json(text)) == _errors(
        lambda: TypeAdapter(CacheGroupsConfig).validate_json(text)
    )
    if not moves:
        assert reference is None


def test_a_callers_context_is_left_alone() -> None:
    context: dict[str, Any] = {"mine": 1}
    config = CacheGroupsConfig.model_validate(
        {
            "num_pages": 4,
            "kv_cache_groups": [
                {"kv_cache_spec": MAMBA, "layer_names": ["a"]},
                {"kv_cache_spec": MAMBA, "layer_names": ["b"]},
            ],
        },
        context=context,
    )
    assert context == {"mine": 1} and config.layer_count == 2
