"""Spec models: the reference formulas, serialization, and input rules."""

import json
from math import prod

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kvschema import (
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    InvalidArgumentError,
    MambaSpec,
    SlidingWindowSpec,
    dtype_size,
    parse_spec,
)
from kvschema.strategies import (
    cache_specs,
    chunked_local_attention_specs,
    full_attention_specs,
    mamba_specs,
    sliding_window_specs,
)

lengths = st.integers(1, 1 << 20)
batched = st.integers(1, 1 << 16)
GEOMETRY = {"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bfloat16"}


def cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def attention_page(spec: FullAttentionSpec | SlidingWindowSpec | ChunkedLocalAttentionSpec) -> int:
    """vLLM 0.33 ``AttentionSpec.page_size_bytes``: heads x tokens x bytes of one head and token,
    which are K + V, one MLA latent (``head_size_v = 0``), or an MLA record format's bytes
    (``MLAAttention.get_kv_cache_spec``: fp8_ds_mla 656, nvfp4_ds_mla 352)."""
    records = {"fp8_ds_mla": 656, "nvfp4_ds_mla": 352}
    if spec.cache_dtype_str is not None:
        per_head = records[spec.cache_dtype_str]
    elif spec.use_mla:
        per_head = spec.head_size * dtype_size(spec.dtype)
    else:
        v_size = spec.head_size if spec.head_size_v is None else spec.head_size_v
        per_head = (spec.head_size + v_size) * dtype_size(spec.dtype)
    return spec.page_size * spec.num_kv_heads * per_head


@given(full_attention_specs(), lengths)
def test_full_attention_formulas(spec: FullAttentionSpec, max_len: int) -> None:
    page = attention_page(spec)
    assert spec.page_size_bytes == page
    assert spec.type_id == f"full_attention_{spec.page_size}_{page}"
    assert (
        spec.max_memory_usage_bytes(max_model_len=max_len) == cdiv(max_len, spec.page_size) * page
    )


@given(sliding_window_specs(), lengths, batched)
def test_sliding_window_formulas(spec: SlidingWindowSpec, max_len: int, tokens: int) -> None:
    page = attention_page(spec)
    assert spec.type_id == f"sliding_window_{spec.sliding_window}_{spec.page_size}_{page}"
    held = min(spec.sliding_window - 1 + tokens, max_len)
    expected = (cdiv(held, spec.page_size) + 1) * page
    assert (
        spec.max_memory_usage_bytes(max_model_len=max_len, max_num_batched_tokens=tokens)
        == expected
    )


@given(chunked_local_attention_specs(), lengths, batched)
def test_chunked_formulas(spec: ChunkedLocalAttentionSpec, max_len: int, tokens: int) -> None:
    page = attention_page(spec)
    assert spec.type_id == f"local_attention_{spec.attention_chunk_size}_{spec.page_size}_{page}"
    held = min(spec.attention_chunk_size + tokens, max_len)
    expected = cdiv(held, spec.page_size) * page
    assert (
        spec.max_memory_usage_bytes(max_model_len=max_len, max_num_batched_tokens=tokens)
        == expected
    )


@given(mamba_specs(), lengths)
def test_mamba_formulas(spec: MambaSpec, max_len: int) -> None:
    shapes = tuple(tuple(s) for s in spec.shapes)
    if spec.dtypes is None:
        raw = sum(prod(shape) for shape in shapes) * dtype_size(spec.dtype)
        assert spec.type_id == f"mamba_{shapes}_{spec.dtype}"
    else:
        raw = sum(prod(shape) * dtype_size(d) for shape, d in zip(shapes, spec.dtypes, strict=True))
        assert spec.type_id == f"mamba_{shapes}_({', '.join(spec.dtypes)})"
    page = spec.page_size_padded if spec.page_size_padded is not None else raw
    assert spec.page_size_bytes == page >= raw
    # vLLM 0.33: one page with prefix caching off, two with it on (+ speculative, checkpoints)
    pages = 1 + spec.num_speculative_blocks
    if spec.mamba_cache_mode == "align":
        pages += 1 + spec.num_prefill_checkpoint_blocks
    assert spec.max_memory_usage_bytes(max_model_len=max_len) == page * pages


def test_mamba_dtype_forms() -> None:
    spec = MambaSpec(page_size=1, shapes=[[2, 3], [4]], dtypes=["bf16", "fp32"])
    assert spec.page_size_bytes == 6 * 2 + 4 * 4
    assert spec.type_id == "mamba_((2, 3), (4,))_(bfloat16, float32)"
    assert parse_spec(spec.model_dump_json()) == spec
    with pytest.raises(ValidationError, match="exactly one of them"):
        MambaSpec(page_size=1, shapes=[[4]])
    with pytest.raises(ValidationError, match="exactly one of them"):
        MambaSpec(page_size=1, shapes=[[4]], dtype="bf16", dtypes=["bf16"])
    with pytest.raises(ValidationError, match="dtypes has 1 entries for 2 state shapes"):
        MambaSpec(page_size=1, shapes=[[4], [2]], dtypes=["bf16"])


def test_mamba_type_id_reads_as_the_reference_writes_it() -> None:
    spec = MambaSpec(page_size=1, shapes=[[2, 3], [4, 5]], dtype="bf16")
    assert spec.type_id == "mamba_((2, 3), (4, 5))_bfloat16"
    assert spec.page_size_bytes == (6 + 20) * 2


def test_mla_page_holds_one_latent() -> None:
    spec = FullAttentionSpec(
        page_size=64, num_kv_heads=1, head_size=576, dtype="bf16", use_mla=True
    )
    assert spec.page_size_bytes == 64 * 576 * 2


@given(cache_specs())
def test_round_trip_through_json(spec: object) -> None:
    text = spec.model_dump_json()  # type: ignore[attr-defined]
    again = parse_spec(text)
    assert again == spec
    assert again.model_dump_json() == text
    assert parse_spec(json.loads(text)) == spec
    assert parse_spec(text.encode()) == spec


@given(cache_specs())
def test_serialized_form_carries_kind_fields_and_derived_values(spec: object) -> None:
    data = spec.model_dump(mode="json")  # type: ignore[attr-defined]
    assert data["kind"] == spec.kind  # type: ignore[attr-defined]
    assert data["type_id"] == spec.type_id  # type: ignore[attr-defined]
    assert data["page_size_bytes"] == spec.page_size_bytes  # type: ignore[attr-defined]
    input_only = {"given_type_id", "given_page_size_bytes"}
    assert set(type(spec).model_fields) - input_only <= set(data)
    assert not input_only & set(data)


@given(cache_specs())
def test_type_id_depends_only_on_the_fields(spec: object) -> None:
    fields = spec.model_dump(exclude={"type_id", "page_size_bytes"})  # type: ignore[attr-defined]
    rebuilt = type(spec).model_validate(fields)
    assert rebuilt.type_id == spec.type_id  # type: ignore[attr-defined]
    assert rebuilt.page_size_bytes == spec.page_size_bytes  # type: ignore[attr-defined]


def test_derived_values_must_agree_when_given() -> None:
    data = FullAttentionSpec(**GEOMETRY).model_dump(mode="json")
    data["page_size_bytes"] = 32768  # a peer that sized bf16 as one byte
    with pytest.raises(ValidationError) as info:
        parse_spec(data)
    (error,) = info.value.errors()
    assert error["type"] == "derived_mismatch"
    assert error["loc"][-1] == "page_size_bytes"
    assert "32768" in error["msg"] and "65536" in error["msg"]


def test_wrong_type_id_is_named() -> None:
    data = {**GEOMETRY, "kind": "full_attention", "type_id": "full_attention_16_1"}
    with pytest.raises(ValidationError, match="type_id is 'full_attention_16_1'"):
        parse_spec(data)


@given(cache_specs())
def test_derived_values_given_on_input_are_checked_then_dropped(spec: object) -> None:
    data = spec.model_dump()  # type: ignore[attr-defined]
    again = type(spec).model_validate(data)  # carries type_id and page_size_bytes
    assert again == spec
    assert again.given_type_id is None and again.given_page_size_bytes is None
    assert "given" not in repr(again)
    for key in ("type_id", "page_size_bytes"):
        wrong = {**data, key: data[key] + 1 if key == "page_size_bytes" else data[key] + "x"}
        with pytest.raises(ValidationError) as info:
            type(spec).model_validate(wrong)
        assert [(e["type"], e["loc"]) for e in info.value.errors()] == [
            ("derived_mismatch", (key,))
        ]


@pytest.mark.parametrize("value", [None, 65536.0, True, "65536"])
def test_derived_values_must_have_their_type(value: object) -> None:
    data = {**GEOMETRY, "kind": "full_attention", "page_size_bytes": value}
    with pytest.raises(ValidationError, match="derived"):
        parse_spec(data)


def test_a_derived_value_adds_no_error_to_a_broken_spec() -> None:
    data = {**GEOMETRY, "kind": "full_attention", "head_size": 0, "type_id": "nonsense"}
    with pytest.raises(ValidationError) as info:
        parse_spec(data)
    assert [e["type"] for e in info.value.errors()] == ["greater_than_equal"]
    mamba = {
        "kind": "mamba",
        "page_size": 1,
        "shapes": [[4]],
        "dtype": "fp32",
        "dtypes": ["fp32"],
        "page_size_bytes": 1,
    }
    with pytest.raises(ValidationError) as info:
        parse_spec(mamba)
    assert [e["type"] for e in info.value.errors()] == ["mamba_dtype_form"]


def test_derived_values_may_be_omitted() -> None:
    assert parse_spec({**GEOMETRY, "kind": "full_attention"}) == FullAttentionSpec(**GEOMETRY)


@pytest.mark.parametrize("field", ["page_size", "num_kv_heads", "head_size"])
@pytest.mark.parametrize("value", [0, -1, True, "16", 16.0, None, 2**53])
def test_integers_are_strict_and_positive(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        FullAttentionSpec(**{**GEOMETRY, field: value})
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("field", ["sliding_window"])
@pytest.mark.parametrize("value", [0, -4096, False, "4096", 4096.0])
def test_window_is_strict_and_positive(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        SlidingWindowSpec(**GEOMETRY, **{field: value})


@pytest.mark.parametrize("value", [0, "8192", 8192.5])
def test_chunk_is_strict_and_positive(value: object) -> None:
    with pytest.raises(ValidationError):
        ChunkedLocalAttentionSpec(**GEOMETRY, attention_chunk_size=value)


@pytest.mark.parametrize("value", [1, "true", "yes", None])
def test_flags_are_real_bools(value: object) -> None:
    with pytest.raises(ValidationError):
        FullAttentionSpec(**GEOMETRY, use_mla=value)


def test_lists_are_fine_where_tuples_are_expected() -> None:
    spec = MambaSpec(page_size=1, shapes=[[4, 8], [16]], dtype="fp32")
    assert spec.shapes == ((4, 8), (16,))


@pytest.mark.parametrize("shapes", [[], [[]], [[0, 4]], [[4, -1]], [["4"]], [[4.0]]])
def test_mamba_shapes_are_positive_ints(shapes: object) -> None:
    with pytest.raises(ValidationError):
        MambaSpec(page_size=1, shapes=shapes, dtype="fp32")


def test_padded_page_must_cover_the_raw_page() -> None:
    with pytest.raises(
        ValidationError, match="page_size_padded 15 is smaller than the raw page of 16"
    ):
        MambaSpec(page_size=1, shapes=[[4]], dtype="fp32", page_size_padded=15)
    assert (
        MambaSpec(page_size=1, shapes=[[4]], dtype="fp32", page_size_padded=64).page_size_bytes
        == 64
    )


def test_sliding_window_refuses_mla() -> None:
    with pytest.raises(ValidationError, match="cannot use MLA") as info:
        SlidingWindowSpec(**GEOMETRY, sliding_window=512, use_mla=True)
    assert info.value.errors()[0]["type"] == "mla_sliding_window"


def test_full_attention_refuses_window_and_chunk() -> None:
    with pytest.raises(ValidationError, match="never both") as info:
        FullAttentionSpec(**GEOMETRY, sliding_window=512, attention_chunk_size=8192)
    assert info.value.errors()[0]["type"] == "window_and_chunk"


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        parse_spec({**GEOMETRY, "kind": "full_attention", "window": 4})


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(
        ValidationError, match="full_attention.*sliding_window.*local_attention.*mamba"
    ):
        parse_spec({**GEOMETRY, "kind": "linear"})


def test_specs_are_frozen_and_hashable() -> None:
    spec = FullAttentionSpec(**GEOMETRY)
    with pytest.raises(ValidationError):
        spec.page_size = 32  # type: ignore[misc]
    assert hash(spec) == hash(FullAttentionSpec(**GEOMETRY))


def test_parse_spec_refuses_non_documents() -> None:
    with pytest.raises(ValidationError):
        parse_spec([1, 2, 3])
    with pytest.raises(ValidationError):
        parse_spec("{not json")
    with pytest.raises(ValidationError):
        parse_spec(b"\xff\xfe")


@pytest.mark.parametrize(
    "kwargs", [{"max_model_len": 0}, {"max_model_len": True}, {"max_model_len": "8"}]
)
def test_memory_arguments_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError, match="max_model_len must be an int >= 1"):
        FullAttentionSpec(**GEOMETRY).max_memory_usage_bytes(**kwargs)  # type: ignore[arg-type]


def test_windowed_layers_need_batched_tokens() -> None:
    spec = SlidingWindowSpec(**GEOMETRY, sliding_window=512)
    with pytest.raises(InvalidArgumentError, match="max_num_batched_tokens"):
        spec.max_memory_usage_bytes(max_model_len=4096)
