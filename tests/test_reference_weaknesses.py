"""The reference's ten weaknesses (../shared/reference/README.md), each shown fixed."""

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from kvschema import (
    CacheGroupsConfig,
    FullAttentionSpec,
    MambaSpec,
    MaskDetailsError,
    SlidingWindowSpec,
    SpecMergeError,
    dtype_size,
    groups_from_mask_details,
    json_schemas,
    merge_specs,
)

KW = {"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"}


def test_1_no_assert_validation_survives_python_O() -> None:
    code = (
        "from kvschema import SlidingWindowSpec\n"
        "try:\n"
        "    SlidingWindowSpec(page_size=16, num_kv_heads=1, head_size=1, dtype='bf16',"
        " sliding_window=4, use_mla=True)\n"
        "except ValueError as e:\n"
        "    print('refused')\n"
    )
    out = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "refused"


def test_2_each_window_keeps_its_own_group() -> None:
    groups = groups_from_mask_details(
        {0: {"mask_type": "sliding", "size": 512}, 1: {"mask_type": "sliding", "size": 4096}}, **KW
    )
    assert [g.kv_cache_spec.sliding_window for g in groups] == [512, 4096]  # type: ignore[union-attr]


def test_3_mla_is_never_dropped_silently() -> None:
    with pytest.raises(MaskDetailsError, match="cannot use MLA"):
        groups_from_mask_details({0: {"mask_type": "sliding", "size": 512}}, **KW, use_mla=True)


def test_4_missing_layers_are_reported_and_the_count_kept() -> None:
    with pytest.raises(MaskDetailsError, match=r"no detail for layer\(s\) 1"):
        groups_from_mask_details({0: {"mask_type": "full"}, 2: {"mask_type": "full"}}, **KW)
    (group,) = groups_from_mask_details({}, **KW, num_layers=4)
    assert group.layer_names == ["layer.0", "layer.1", "layer.2", "layer.3"]


def test_5_the_converter_yields_a_whole_config_with_pages() -> None:
    config = CacheGroupsConfig.from_mask_details({0: {"mask_type": "full"}}, num_pages=42, **KW)
    assert config.num_pages == 42


@pytest.mark.parametrize("field", ["page_size", "num_kv_heads", "head_size"])
def test_6_non_positive_sizes_are_refused(field: str) -> None:
    with pytest.raises(ValidationError):
        FullAttentionSpec(**{**KW, field: 0})
    with pytest.raises(ValidationError):
        SlidingWindowSpec(**KW, sliding_window=-1)


def test_7_sub_byte_dtypes_refused_bool_sized_and_type_id_spelling_free() -> None:
    with pytest.raises(ValueError, match="less than a byte"):
        dtype_size("int4")
    assert dtype_size("bool") == 1
    jnp = pytest.importorskip("jax.numpy")
    a = MambaSpec(page_size=1, shapes=[[4, 4]], dtype=jnp.bfloat16)
    b = MambaSpec(page_size=1, shapes=[[4, 4]], dtype=jnp.dtype("bfloat16"))
    assert a.type_id == b.type_id == "mamba_((4, 4),)_bfloat16"


def test_8_equal_bytes_different_geometry_do_not_merge() -> None:
    a = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    b = FullAttentionSpec(page_size=16, num_kv_heads=16, head_size=64, dtype="bf16")
    assert a.type_id == b.type_id
    with pytest.raises(SpecMergeError, match="one page table holds one geometry"):
        merge_specs([a, b])


def test_9_everything_serializes_and_has_a_schema() -> None:
    config = CacheGroupsConfig.from_mask_details(
        {0: {"mask_type": "sliding", "size": 64}}, num_pages=1, **KW
    )
    document = json.loads(config.model_dump_json())
    assert document["kv_cache_groups"][0]["kv_cache_spec"]["dtype"] == "bfloat16"
    assert set(json_schemas()) == {"cache-spec", "cache-group-spec", "cache-groups-config"}


def test_10_linear_attention_is_neither_a_crash_nor_full_attention() -> None:
    with pytest.raises(ValidationError, match="recurrent-state layer"):
        groups_from_mask_details({0: {"mask_type": "linear_attention"}}, **KW)
    state = MambaSpec(page_size=1, shapes=[[8, 3], [4, 32, 32]], dtype="bf16")
    assert state.max_memory_usage_bytes(max_model_len=1 << 20) == state.page_size_bytes
