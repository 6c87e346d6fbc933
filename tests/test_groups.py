"""CacheGroupSpec and CacheGroupsConfig rules."""

import pytest
from hypothesis import given
from pydantic import ValidationError

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
    assert cfg.model_dump()["schema_version"] == SCHEMA_VERSION == 1


def test_newer_schema_version_is_refused_saying_so() -> None:
    with pytest.raises(
        ValidationError, match="schema_version 2 is newer than this kvschema reads"
    ) as info:
        CacheGroupsConfig(
            schema_version=2, num_pages=1, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=FULL)]
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
