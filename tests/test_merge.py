"""merge_specs and Spec.merge: the reference's rules plus the geometry check."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema import (
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    MambaSpec,
    SlidingWindowSpec,
    SpecMergeError,
    merge_specs,
)
from kvschema.strategies import cache_specs, full_attention_specs

GEOMETRY = {"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bfloat16"}
FULL = FullAttentionSpec(**GEOMETRY)


@given(cache_specs(), st.integers(1, 8))
def test_merging_equal_specs_returns_that_spec(spec: object, count: int) -> None:
    assert merge_specs([spec] * count) == spec


@given(full_attention_specs(), st.data())
def test_order_does_not_matter(spec: FullAttentionSpec, data: st.DataObject) -> None:
    plain = spec.model_copy(update={"sliding_window": None, "attention_chunk_size": None})
    members = [plain, spec, plain]
    shuffled = data.draw(st.permutations(members))
    assert merge_specs(shuffled) == merge_specs(members) == spec


@given(st.lists(st.integers(1, 1 << 16), min_size=2, max_size=5, unique=True))
def test_conflicting_windows_raise(windows: list[int]) -> None:
    specs = [FULL.model_copy(update={"sliding_window": w}) for w in windows]
    with pytest.raises(SpecMergeError, match="different sliding_window values"):
        merge_specs(specs)


def test_full_merge_records_the_one_window() -> None:
    merged = merge_specs([FULL, FULL.model_copy(update={"sliding_window": 4096}), FULL])
    assert merged.sliding_window == 4096  # type: ignore[union-attr]
    merged = FullAttentionSpec.merge([FULL, FULL.model_copy(update={"attention_chunk_size": 8192})])
    assert merged.attention_chunk_size == 8192


def test_full_merge_refuses_a_window_and_a_chunk() -> None:
    specs = [
        FULL.model_copy(update={"sliding_window": 4096}),
        FULL.model_copy(update={"attention_chunk_size": 8192}),
    ]
    with pytest.raises(SpecMergeError, match="both a sliding window and a chunk size"):
        merge_specs(specs)


def test_different_type_ids_do_not_merge() -> None:
    sliding = SlidingWindowSpec(**GEOMETRY, sliding_window=512)
    with pytest.raises(
        SpecMergeError, match="type_id full_attention_16_65536 and .* sliding_window_512"
    ):
        merge_specs([FULL, sliding])


def test_same_page_bytes_different_geometry_do_not_merge() -> None:
    other = FullAttentionSpec(page_size=16, num_kv_heads=16, head_size=64, dtype="bfloat16")
    assert other.type_id == FULL.type_id
    with pytest.raises(SpecMergeError, match=r"num_kv_heads \(8 vs 16\), head_size \(128 vs 64\)"):
        merge_specs([FULL, other])


def test_same_bytes_different_dtype_and_mla_do_not_merge() -> None:
    fp32_half_heads = FullAttentionSpec(page_size=16, num_kv_heads=4, head_size=128, dtype="fp32")
    assert fp32_half_heads.type_id == FULL.type_id
    with pytest.raises(SpecMergeError, match="dtype"):
        merge_specs([FULL, fp32_half_heads])
    mla = FullAttentionSpec(
        page_size=16, num_kv_heads=16, head_size=128, dtype="bf16", use_mla=True
    )
    assert mla.type_id == FULL.type_id
    with pytest.raises(SpecMergeError, match="use_mla"):
        merge_specs([FULL, mla])


def test_mamba_specs_with_equal_type_id_but_different_padding_do_not_merge() -> None:
    a = MambaSpec(page_size=1, shapes=[[4]], dtype="fp32")
    b = MambaSpec(page_size=1, shapes=[[4]], dtype="fp32", page_size_padded=64)
    with pytest.raises(SpecMergeError, match="page_size_padded"):
        merge_specs([a, b])


def test_mapping_names_the_layers_in_errors() -> None:
    other = FULL.model_copy(update={"head_size": 64, "num_kv_heads": 16})
    with pytest.raises(SpecMergeError, match="layer.0 and layer.7"):
        merge_specs({"layer.0": FULL, "layer.7": other})


def test_empty_and_foreign_inputs_are_errors() -> None:
    with pytest.raises(SpecMergeError, match="empty"):
        merge_specs([])
    with pytest.raises(SpecMergeError, match="spec 1 is a dict"):
        merge_specs([FULL, {"kind": "full_attention"}])
    with pytest.raises(SpecMergeError, match="list or mapping"):
        merge_specs(FULL)  # type: ignore[arg-type]


def test_classmethod_checks_the_kind() -> None:
    chunked = ChunkedLocalAttentionSpec(**GEOMETRY, attention_chunk_size=8192)
    assert ChunkedLocalAttentionSpec.merge([chunked, chunked]) == chunked
    with pytest.raises(
        SpecMergeError, match="SlidingWindowSpec.merge got spec 0 of type FullAttentionSpec"
    ):
        SlidingWindowSpec.merge([FULL])
