"""Mask details → groups: the converter's rules and laws."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import pytest
from hypothesis import given
from pydantic import ValidationError

from kvschema import (
    AttnMaskType,
    CacheGroupsConfig,
    FullAttentionSpec,
    InvalidArgumentError,
    MaskDetail,
    MaskDetailsError,
    SlidingWindowSpec,
    create_kv_cache_specs_from_config,
    groups_from_mask_details,
)
from kvschema.strategies import mask_details

KW = {"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"}


def convert(
    details: Mapping[object, object] | None, **extra: object
) -> list[tuple[str, list[str] | None]]:
    return [
        (g.kv_cache_spec.type_id, g.layer_names)
        for g in groups_from_mask_details(details, **KW, **extra)
    ]  # type: ignore[arg-type]


@given(mask_details())
def test_converter_laws(details: dict[int, MaskDetail]) -> None:
    groups = groups_from_mask_details(details, **KW, num_layers=len(details))
    names = [n for g in groups for n in g.layer_names or ()]
    # every layer in exactly one group
    assert sorted(names) == sorted(f"layer.{i}" for i in details)
    # groups' type_ids distinct, in order of first appearance
    type_ids = [g.kv_cache_spec.type_id for g in groups]
    assert len(set(type_ids)) == len(type_ids)
    firsts = [min(int(n.split(".")[1]) for n in g.layer_names or ()) for g in groups]
    assert firsts == sorted(firsts)
    for group in groups:
        indices = [int(n.split(".")[1]) for n in group.layer_names or ()]
        assert indices == sorted(indices)
        spec = group.kv_cache_spec
        for i in indices:
            detail = details[i]
            # windows and chunk sizes preserved, full layers ignore size
            if detail.mask_type is AttnMaskType.SLIDING:
                assert spec.kind == "sliding_window" and spec.sliding_window == detail.size  # type: ignore[union-attr]
            elif detail.mask_type is AttnMaskType.CHUNK:
                assert spec.kind == "local_attention" and spec.attention_chunk_size == detail.chunks  # type: ignore[union-attr]
            else:
                assert spec == FullAttentionSpec(**KW)


def test_different_windows_land_in_different_groups() -> None:
    details = {
        0: {"mask_type": "sliding", "size": 512},
        1: {"mask_type": "sliding", "size": 4096},
        2: {"mask_type": "full", "size": 4096},
        3: {"mask_type": "sliding", "size": 512},
    }
    assert convert(details) == [
        ("sliding_window_512_16_65536", ["layer.0", "layer.3"]),
        ("sliding_window_4096_16_65536", ["layer.1"]),
        ("full_attention_16_65536", ["layer.2"]),
    ]


def test_layers_sorted_by_index_not_by_key_order() -> None:
    details = {"10": {"mask_type": "full"}, 2: {"mask_type": "full"}}
    details.update({i: {"mask_type": "full"} for i in (0, 1, *range(3, 10))})
    ((_, names),) = convert(details)
    assert names == [f"layer.{i}" for i in range(11)]


@pytest.mark.parametrize(
    ("spelling", "kind"),
    [
        (AttnMaskType.SLIDING, "sliding_window"),
        ("ATTN_MASK_SLIDING", "sliding_window"),
        ("attn_mask_sliding", "sliding_window"),
        ("SLIDING", "sliding_window"),
        ("sliding", "sliding_window"),
        ("sliding_attention", "sliding_window"),
        ("Sliding_Attention", "sliding_window"),
        ("CHUNK", "local_attention"),
        ("chunk", "local_attention"),
        ("chunked_attention", "local_attention"),
        ("ATTN_MASK_CHUNK", "local_attention"),
        ("full_attention", "full_attention"),
        ("FULL", "full_attention"),
        ("ATTN_MASK_FULL", "full_attention"),
    ],
)
def test_mask_type_spellings(spelling: object, kind: str) -> None:
    groups = groups_from_mask_details(
        {0: {"mask_type": spelling, "size": 512, "chunks": 8192}}, **KW
    )
    assert groups[0].kv_cache_spec.kind == kind


def test_foreign_enum_and_attribute_objects() -> None:
    class ForeignMask(Enum):  # another library's enum with EasyDeL's names and values
        FULL = "ATTN_MASK_FULL"
        SLIDING = "ATTN_MASK_SLIDING"

    @dataclass
    class Detail:
        mask_type: ForeignMask
        size: int | None = None
        chunks: int | None = None
        offset: int | None = None

    groups = groups_from_mask_details(
        {0: Detail(ForeignMask.SLIDING, 128), 1: Detail(ForeignMask.FULL, 128)}, **KW
    )
    assert [g.kv_cache_spec.kind for g in groups] == ["sliding_window", "full_attention"]


def test_missing_size_and_chunks_keys_mean_none() -> None:
    with pytest.raises(MaskDetailsError, match=r"sliding layer\(s\) 1, 2 have no window") as info:
        convert(
            {0: {"mask_type": "full"}, 1: {"mask_type": "sliding"}, 2: {"mask_type": "sliding"}}
        )
    assert info.value.fields["no_window"] == [1, 2]
    with pytest.raises(MaskDetailsError, match=r"chunked layer\(s\) 0 have no chunk size"):
        convert({0: {"mask_type": "chunk", "size": 4}})


def test_mla_with_a_sliding_layer_is_an_error() -> None:
    with pytest.raises(MaskDetailsError, match=r"sliding layer\(s\) 1 cannot use MLA"):
        convert({0: {"mask_type": "full"}, 1: {"mask_type": "sliding", "size": 64}}, use_mla=True)
    ((type_id, _),) = convert({0: {"mask_type": "full"}}, use_mla=True)
    assert type_id == "full_attention_16_32768"


def test_gaps_are_an_error() -> None:
    with pytest.raises(MaskDetailsError, match=r"no detail for layer\(s\) 1, 3"):
        convert({0: {"mask_type": "full"}, 2: {"mask_type": "full"}, 4: {"mask_type": "full"}})
    with pytest.raises(MaskDetailsError, match=r"no detail for layer\(s\) 0"):
        convert({1: {"mask_type": "full"}})


def test_num_layers_requires_every_index_once() -> None:
    details = {0: {"mask_type": "full"}, 1: {"mask_type": "full"}}
    with pytest.raises(MaskDetailsError, match=r"no detail for layer\(s\) 2, 3"):
        convert(details, num_layers=4)
    with pytest.raises(MaskDetailsError, match=r"layer\(s\) 1 beyond num_layers=1"):
        convert(details, num_layers=1)
    assert convert(details, num_layers=2)[0][1] == ["layer.0", "layer.1"]
    with pytest.raises(InvalidArgumentError, match="num_layers"):
        convert(details, num_layers=0)


@pytest.mark.parametrize("key", [-1, "x", "1.0", " 1", True, 1.5, None])
def test_bad_layer_indices(key: object) -> None:
    with pytest.raises(MaskDetailsError, match="layer indices >= 0"):
        convert({key: {"mask_type": "full"}})


def test_index_given_twice() -> None:
    with pytest.raises(MaskDetailsError, match="given twice"):
        convert({0: {"mask_type": "full"}, "0": {"mask_type": "full"}})


def test_no_details_at_all() -> None:
    assert convert(None) == [("full_attention_16_65536", None)]
    assert convert({}) == [("full_attention_16_65536", None)]
    assert convert({}, num_layers=3) == [
        ("full_attention_16_65536", ["layer.0", "layer.1", "layer.2"])
    ]


def test_bad_details_are_validation_errors_at_their_layer() -> None:
    with pytest.raises(ValidationError) as info:
        convert(
            {
                0: {"mask_type": "sliding", "size": 0},
                1: {"mask_type": "nope"},
                2: {"mask_type": "full", "extra": 1},
            }
        )
    locs = {e["loc"][:2] for e in info.value.errors()}
    assert locs == {(0, "size"), (1, "mask_type"), (2, "extra")}


def test_linear_attention_is_named_not_treated_as_full() -> None:
    with pytest.raises(ValidationError, match="recurrent-state layer"):
        convert({0: {"mask_type": "linear_attention"}})


def test_spec_arguments_are_validated() -> None:
    with pytest.raises(ValidationError):
        groups_from_mask_details({}, page_size=0, num_kv_heads=8, head_size=128, dtype="bf16")
    with pytest.raises(MaskDetailsError, match="must map layer index"):
        convert([{"mask_type": "full"}])  # type: ignore[arg-type]


def test_from_mask_details_builds_a_whole_config() -> None:
    cfg = CacheGroupsConfig.from_mask_details(
        {0: {"mask_type": "sliding", "size": 1024}, 1: {"mask_type": "full"}}, num_pages=100, **KW
    )
    assert cfg.num_pages == 100
    assert cfg.kv_cache_groups[0].kv_cache_spec == SlidingWindowSpec(**KW, sliding_window=1024)


def test_reference_entry_point_reads_get_mask_details() -> None:
    class Config:
        num_hidden_layers = 3

        def get_mask_details(self) -> dict[int, object]:
            return {
                i: MaskDetail(mask_type="sliding" if i % 2 else "full", size=4096) for i in range(3)
            }

    groups = create_kv_cache_specs_from_config(Config(), 16, 8, 128, "bf16")
    assert [g.layer_names for g in groups] == [["layer.0", "layer.2"], ["layer.1"]]

    class Plain:
        pass

    (group,) = create_kv_cache_specs_from_config(Plain(), 16, 8, 128, "bf16", use_mla=True)
    assert group.layer_names is None and group.kv_cache_spec.use_mla  # type: ignore[union-attr]

    class Partial(Config):
        def get_mask_details(self) -> dict[int, object]:
            return {0: {"mask_type": "full"}}

    with pytest.raises(MaskDetailsError, match=r"no detail for layer\(s\) 1, 2"):
        create_kv_cache_specs_from_config(Partial(), 16, 8, 128, "bf16")
