"""K and V heads of different sizes (``head_size_v``) and MLA record formats (``cache_dtype_str``).

The formulas are vLLM 0.33's: ``AttentionSpec.page_size_bytes`` (v1/kv_cache_interface.py) is
``num_kv_heads x block_size x (head_size + head_size_v) x dtype``; ``MLAAttentionSpec`` fixes
``head_size_v = 0``; ``MLAAttention.get_kv_cache_spec`` (model_executor/layers/attention/
mla_attention.py) sets 656 bytes per token for ``fp8_ds_mla`` and 352 for ``nvfp4_ds_mla``.
"""

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kvschema import (
    CacheGroupsConfig,
    CacheGroupSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    SlidingWindowSpec,
    SpecMergeError,
    UniformTypeSpec,
    check_compatible,
    fingerprint,
    json_schemas,
    merge_specs,
    parse_spec,
    plan_cache,
    to_canonical_json,
)
from kvschema.strategies import (
    chunked_local_attention_specs,
    full_attention_specs,
    sliding_window_specs,
)

GiB = 1024**3
# DeepSeek-V2-Lite served without MLA (vLLM's VLLM_MLA_DISABLE): K heads are
# qk_nope_head_dim + qk_rope_head_dim = 128 + 64, V heads v_head_dim = 128.
MHA_FALLBACK = FullAttentionSpec(
    page_size=16, num_kv_heads=16, head_size=192, head_size_v=128, dtype="bf16"
)
# DeepSeek-V3.2's MLA latent (kv_lora_rank + qk_rope_head_dim = 576) and indexer key cache
# (index_head_dim 128 fp8 values + 128 // 128 fp32 scales = 132 bytes), 64-token pages.
LATENT = FullAttentionSpec(page_size=64, num_kv_heads=1, head_size=576, dtype="bf16", use_mla=True)
DS_MLA = FullAttentionSpec(
    page_size=64,
    num_kv_heads=1,
    head_size=576,
    dtype="uint8",
    use_mla=True,
    cache_dtype_str="fp8_ds_mla",
)
INDEXER = FullAttentionSpec(
    page_size=64, num_kv_heads=1, head_size=132, dtype="uint8", use_mla=True
)

non_mla_specs = st.one_of(
    full_attention_specs().filter(lambda s: not s.use_mla),
    sliding_window_specs(),
    chunked_local_attention_specs().filter(lambda s: not s.use_mla),
)


# -- head_size_v -------------------------------------------------------------------------


def test_v_heads_of_their_own_size() -> None:
    assert MHA_FALLBACK.page_size_bytes == 16 * 16 * (192 + 128) * 2 == 163840
    assert MHA_FALLBACK.type_id == "full_attention_16_163840"
    window = SlidingWindowSpec(
        page_size=16, num_kv_heads=4, head_size=256, head_size_v=128, dtype="bf16",
        sliding_window=512,
    )  # fmt: skip
    assert window.page_size_bytes == 16 * 4 * (256 + 128) * 2
    local = ChunkedLocalAttentionSpec(
        page_size=16, num_kv_heads=4, head_size=64, head_size_v=256, dtype="fp32",
        attention_chunk_size=8192,
    )  # fmt: skip
    assert local.type_id == f"local_attention_8192_16_{16 * 4 * (64 + 256) * 4}"


@given(non_mla_specs)
def test_head_size_v_equal_to_head_size_is_the_spec_without_it(spec: object) -> None:
    document = spec.model_dump(mode="json", exclude={"type_id", "page_size_bytes"})  # type: ignore[attr-defined]
    k_sized = parse_spec({**document, "head_size_v": None})
    explicit = parse_spec({**document, "head_size_v": document["head_size"]})
    assert explicit == k_sized and explicit.head_size_v is None  # type: ignore[union-attr]
    assert (explicit.page_size_bytes, explicit.type_id) == (
        k_sized.page_size_bytes,
        k_sized.type_id,
    )
    assert to_canonical_json(explicit) == to_canonical_json(k_sized)
    assert parse_spec(document) == spec  # and the spec reads back as it was written


def test_head_size_v_equal_to_head_size_changes_nothing() -> None:
    plain = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    same = FullAttentionSpec(
        page_size=16, num_kv_heads=8, head_size=128, head_size_v=128, dtype="bf16"
    )
    assert same == plain and same.head_size_v is None
    assert (same.page_size_bytes, same.type_id) == (plain.page_size_bytes, plain.type_id)
    assert fingerprint(same) == fingerprint(plain)
    assert "head_size_v" not in to_canonical_json(same).decode()


def test_mla_has_no_separate_v() -> None:
    with pytest.raises(ValidationError, match="no separate V: omit head_size_v") as info:
        FullAttentionSpec(
            page_size=64, num_kv_heads=1, head_size=576, head_size_v=512, dtype="bf16",
            use_mla=True,
        )  # fmt: skip
    assert info.value.errors()[0]["type"] == "mla_head_size_v"
    # even one equal to head_size: an MLA spec never carries it
    with pytest.raises(ValidationError, match="omit head_size_v"):
        parse_spec({**LATENT.model_dump(mode="json"), "head_size_v": 576})


def test_head_sizes_that_give_one_page_do_not_merge() -> None:
    # K 192 + V 64 and K 128 + V 128 both take 256 elements: one type_id, two geometries.
    a = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=192, head_size_v=64, dtype="bf16")
    b = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    assert a.type_id == b.type_id
    with pytest.raises(SpecMergeError, match="differ in head_size .192 vs 128., head_size_v"):
        merge_specs({"layer.0": a, "layer.1": b})


def test_head_size_v_is_written_and_read_back() -> None:
    document = MHA_FALLBACK.model_dump(mode="json")
    assert document["head_size_v"] == 128
    assert parse_spec(document) == MHA_FALLBACK
    assert b'"head_size_v":128' in to_canonical_json(MHA_FALLBACK)


# -- MLA cache formats ---------------------------------------------------------------------


@pytest.mark.parametrize(("record", "per_token"), [("fp8_ds_mla", 656), ("nvfp4_ds_mla", 352)])
@pytest.mark.parametrize("head_size", [576, 512, 1])
@pytest.mark.parametrize("dtype", ["uint8", "bf16", "fp32"])
def test_a_record_format_sets_the_bytes_per_token(
    record: str, per_token: int, head_size: int, dtype: str
) -> None:
    spec = FullAttentionSpec(
        page_size=64, num_kv_heads=1, head_size=head_size, dtype=dtype, use_mla=True,
        cache_dtype_str=record,
    )  # fmt: skip
    assert spec.page_size_bytes == 64 * per_token
    assert spec.type_id == f"full_attention_64_{64 * per_token}"


def test_other_mla_dtypes_are_bytes_per_element() -> None:
    # vLLM's STR_DTYPE_TO_TORCH_DTYPE maps "fp8", "fp8_e4m3" and "fp8_e5m2" to uint8: 1 byte.
    for dtype in ("fp8", "fp8_e4m3", "fp8_e5m2", "uint8"):
        spec = LATENT.model_copy(update={"dtype": dtype})
        assert parse_spec(spec.model_dump(mode="json")).page_size_bytes == 64 * 576
    assert LATENT.page_size_bytes == 64 * 576 * 2  # auto / bf16: 1152 bytes per token


def test_record_formats_are_mla_only() -> None:
    for kind, extra in [
        ("full_attention", {}),
        ("local_attention", {"attention_chunk_size": 512}),
        ("sliding_window", {"sliding_window": 512}),
    ]:
        document = {
            "kind": kind, "page_size": 16, "num_kv_heads": 8, "head_size": 128,
            "dtype": "uint8", "cache_dtype_str": "fp8_ds_mla", **extra,
        }  # fmt: skip
        with pytest.raises(ValidationError, match="is an MLA cache format") as info:
            parse_spec(document)
        assert info.value.errors()[0]["type"] == "cache_dtype_str_not_mla"
    with pytest.raises(ValidationError, match="literal_error|Input should be"):
        parse_spec({**DS_MLA.model_dump(mode="json"), "cache_dtype_str": "fp8"})


def test_latent_and_indexer_do_not_merge_and_share_a_uniform_type_group() -> None:
    # vLLM's MLAAttentionSpec.merge asserts one cache_dtype_str per group ("must use the same
    # quantization method"): a fp8_ds_mla latent and an indexer (None) never merge.
    same_bytes = FullAttentionSpec(
        page_size=64, num_kv_heads=1, head_size=656, dtype="uint8", use_mla=True
    )
    assert same_bytes.type_id == DS_MLA.type_id
    with pytest.raises(SpecMergeError, match="cache_dtype_str"):
        merge_specs([DS_MLA, same_bytes])
    with pytest.raises(SpecMergeError):
        merge_specs([DS_MLA, INDEXER])
    group = UniformTypeSpec(page_size=64, kv_cache_specs={"attn": DS_MLA, "indexer": INDEXER})
    assert group.page_size_bytes == 64 * (656 + 132)


@pytest.mark.parametrize(("latent", "per_token"), [(DS_MLA, 656), (LATENT, 1152)])
def test_deepseek_v32_plans_one_uniform_type_group(
    latent: FullAttentionSpec, per_token: int
) -> None:
    # /tmp/notes/vllm_mla_maxlen.md §1.6 (kv_cache_utils.get_kv_cache_groups, step 4): 61 MLA
    # layers and 61 indexers share one UniformTypeKVCacheSpecs group; a block costs
    # 64 x 61 x (656 + 132) = 3,076,352 bytes with fp8_ds_mla, 64 x 61 x (1152 + 132) =
    # 5,012,736 with a bf16 latent.
    layers = {}
    for i in range(61):
        layers[f"model.layers.{i}.self_attn.attn"] = latent
        layers[f"model.layers.{i}.self_attn.indexer.k_cache"] = INDEXER
    plan = plan_cache(layers, available_bytes=40 * GiB, max_model_len=163840,
                      max_num_batched_tokens=8192)  # fmt: skip
    (group,) = plan.config.kv_cache_groups
    assert isinstance(group.kv_cache_spec, UniformTypeSpec)
    assert plan.bytes_per_page == 64 * 61 * (per_token + 132)
    assert plan.bytes_per_page == {656: 3_076_352, 1152: 5_012_736}[per_token]
    assert plan.num_pages == 40 * GiB // plan.bytes_per_page
    assert plan.pages_per_request == [163840 // 64]


# -- exchange: schema, compatibility -------------------------------------------------------


def test_the_schema_states_the_mla_only_rules() -> None:
    validator = jsonschema.Draft202012Validator(json_schemas()["cache-spec"])
    assert validator.is_valid(DS_MLA.model_dump(mode="json"))
    assert validator.is_valid(MHA_FALLBACK.model_dump(mode="json"))
    not_mla = {**MHA_FALLBACK.model_dump(mode="json"), "cache_dtype_str": "fp8_ds_mla"}
    assert not validator.is_valid(not_mla)
    mla_with_v = {**LATENT.model_dump(mode="json"), "head_size_v": 128}
    assert not validator.is_valid(mla_with_v)
    sliding = SlidingWindowSpec(
        page_size=16, num_kv_heads=1, head_size=64, dtype="uint8", sliding_window=8
    ).model_dump(mode="json")
    assert not validator.is_valid({**sliding, "cache_dtype_str": "nvfp4_ds_mla"})
    for document in (not_mla, mla_with_v):
        with pytest.raises(ValidationError):
            parse_spec(document)


def one_layer(spec: FullAttentionSpec) -> CacheGroupsConfig:
    return CacheGroupsConfig(
        num_pages=64, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=spec, layer_names=["x"])]
    )


def test_peers_must_agree_on_v_heads_and_record_format() -> None:
    plain_fp8 = DS_MLA.model_copy(update={"cache_dtype_str": None})
    report = check_compatible(one_layer(DS_MLA), one_layer(plain_fp8))
    assert [(d.rule, d.path.rsplit(".", 1)[1]) for d in report.differences] == [
        ("dtype", "cache_dtype_str")
    ]
    assert "fp8_ds_mla in a and plain uint8 in b" in report.differences[0].reason
    other_v = MHA_FALLBACK.model_copy(update={"head_size_v": 64})
    report = check_compatible(one_layer(MHA_FALLBACK), one_layer(other_v))
    assert [(d.rule, d.a, d.b) for d in report.differences] == [("head_size", 128, 64)]
    assert check_compatible(one_layer(DS_MLA), one_layer(DS_MLA), tp_b=8).compatible
    # K 128 (V 128) against K 192 + V 128: the K heads differ, the V heads do not
    k_only = MHA_FALLBACK.model_copy(update={"head_size": 128, "head_size_v": None})
    report = check_compatible(one_layer(MHA_FALLBACK), one_layer(k_only))
    assert [d.path.rsplit(".", 1)[1] for d in report.differences] == ["head_size"]


def test_jax_lays_out_k_and_v_and_records() -> None:
    pytest.importorskip("jax")
    from kvschema.jax import allocate, verify

    config = CacheGroupsConfig(
        num_pages=4,
        kv_cache_groups=[
            CacheGroupSpec(kv_cache_spec=MHA_FALLBACK, layer_names=["mha"]),
            CacheGroupSpec(kv_cache_spec=DS_MLA, layer_names=["mla"]),
        ],
    )
    arrays = allocate(config, abstract=True, layout="per_layer")
    assert arrays["mha"]["k"].shape == (4, 16, 16, 192)
    assert arrays["mha"]["v"].shape == (4, 16, 16, 128)
    assert arrays["mla"]["kv"].shape == (4, 64, 1, 656)
    assert arrays.nbytes == 4 * (MHA_FALLBACK.page_size_bytes + DS_MLA.page_size_bytes)
    verify(config, allocate(config, layout="per_layer"))
