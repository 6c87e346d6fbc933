"""Attention specs: full, sliding-window and chunked local attention (MLA included).

>>> SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16",
...                   sliding_window=4096).page_size_bytes
65536
>>> FullAttentionSpec(page_size=64, num_kv_heads=1, head_size=576, dtype="uint8", use_mla=True,
...                   cache_dtype_str="fp8_ds_mla").page_size_bytes  # 656 bytes per token
41984
"""

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from kvschema._args import positive_int_arg
from kvschema.spec.base import (
    GivenPageBytes,
    GivenTypeId,
    PositiveInt,
    _add_derived_properties,
    _cdiv,
    _SpecBase,
    padded_too_small,
)
from kvschema.spec.dtypes import DTypeName, dtype_size

__all__ = [
    "ATTENTION_SPECS",
    "MLA_CACHE_FORMATS",
    "ChunkedLocalAttentionSpec",
    "FullAttentionSpec",
    "MLACacheFormat",
    "SlidingWindowSpec",
]

#: vLLM's MLA cache formats that store each token as one opaque record: format -> bytes per
#: token and KV head.  vLLM 0.33 ``MLAAttention.get_kv_cache_spec``
#: (model_executor/layers/attention/mla_attention.py) sets ``state_content_bytes`` to
#: ``{"fp8_ds_mla": 656, "nvfp4_ds_mla": 352}``, whatever the head size; the layouts are
#: described in v1/attention/backends/mla/flashmla_sparse.py (656 = 512 fp8 NoPE values +
#: 4 fp32 scales + 64 bf16 RoPE values; 352 = 512 packed fp4 values + 64 fp8 RoPE values +
#: 32 fp8 scales).
MLA_CACHE_FORMATS: dict[str, int] = {"fp8_ds_mla": 656, "nvfp4_ds_mla": 352}

#: The values ``cache_dtype_str`` takes (vLLM's names for the formats above).
MLACacheFormat = Literal["fp8_ds_mla", "nvfp4_ds_mla"]


def _attention_schema(schema: dict[str, Any]) -> None:
    """The derived values, and the MLA-only fields' conditions, which JSON Schema can state."""
    _add_derived_properties(schema)
    schema["allOf"] = [
        {
            "description": "An MLA spec stores one latent per token: no separate head_size_v.",
            "if": {"required": ["use_mla"], "properties": {"use_mla": {"const": True}}},
            "then": {"properties": {"head_size_v": {"type": "null"}}},
        },
        {
            "description": "cache_dtype_str names an MLA cache format: only with use_mla true.",
            "if": {
                "required": ["cache_dtype_str"],
                "properties": {"cache_dtype_str": {"type": "string"}},
            },
            "then": {"required": ["use_mla"], "properties": {"use_mla": {"const": True}}},
        },
    ]


def _full_attention_schema(schema: dict[str, Any]) -> None:
    _attention_schema(schema)
    recorded = ("sliding_window", "attention_chunk_size")
    schema["not"] = {
        "description": "A window and a chunk size are never both recorded.",
        "required": list(recorded),
        "properties": {name: {"type": "integer"} for name in recorded},
    }


# The validators of single fields.  Each sits inside its field's ``| None``, so a null value
# (what a document kvschema writes gives for every optional field it leaves unset) never calls
# into Python; ``info.data`` holds the fields declared before it.


def _v_heads(value: int, info: ValidationInfo) -> int | None:
    """None for V heads the size of K heads (one spec, one form); never with MLA."""
    data = info.data
    if data.get("use_mla"):
        raise PydanticCustomError(
            "mla_head_size_v",
            "an MLA spec stores one latent per token and no separate V: omit head_size_v "
            "(got {value})",
            {"value": value},
        )
    return None if value == data.get("head_size") else value


def _mla_format(value: str, info: ValidationInfo) -> str:
    data = info.data
    if "use_mla" in data and not data["use_mla"]:
        raise PydanticCustomError(
            "cache_dtype_str_not_mla",
            "cache_dtype_str '{value}' is an MLA cache format, but this {kind} spec is not "
            "MLA (use_mla=false); a plain fp8 cache is dtype fp8 without cache_dtype_str",
            {"value": value, "kind": data.get("kind", "attention")},
        )
    return value


def _padded_covers_raw(value: int, info: ValidationInfo) -> int:
    raw = _AttentionBase._raw_from(info.data)
    if raw is not None and value < raw:
        raise padded_too_small(value, raw)
    return value


def _one_window(value: int, info: ValidationInfo) -> int:
    window = info.data.get("sliding_window")
    if window is not None:
        raise PydanticCustomError(
            "window_and_chunk",
            "a full-attention spec records a sliding window or a chunk size, never both "
            "(sliding_window={window}, attention_chunk_size={chunk})",
            {"window": window, "chunk": value},
        )
    return value


#: ``cache_dtype_str``'s type: an MLA cache format, only with ``use_mla``.
_MLAFormatOrNone = Annotated[MLACacheFormat, AfterValidator(_mla_format)] | None


class _AttentionBase(_SpecBase):
    """Attention layers: K and V (or one MLA latent) per token and KV head.

    Page bytes follow vLLM 0.33 ``AttentionSpec.page_size_bytes``
    (v1/kv_cache_interface.py): ``num_kv_heads x page_size x`` the bytes of one head and token,
    ``(head_size + head_size_v) x dtype`` for K and V, ``head_size x dtype`` for an MLA latent
    (``MLAAttentionSpec`` fixes ``head_size_v = 0``), or the record of ``cache_dtype_str``.
    """

    model_config = ConfigDict(json_schema_extra=_attention_schema)

    num_kv_heads: PositiveInt = Field(description="KV heads this cache holds (per rank).")
    head_size: PositiveInt = Field(description="Elements per head and token.")
    dtype: DTypeName
    use_mla: StrictBool = Field(
        default=False, description="One latent vector per token (MLA) instead of K and V."
    )
    head_size_v: Annotated[PositiveInt, AfterValidator(_v_heads)] | None = Field(
        default=None,
        description="Elements per V head and token when V heads differ from K heads; "
        "null means head_size. Never with MLA.",
    )
    cache_dtype_str: _MLAFormatOrNone = Field(
        default=None,
        description="An MLA cache format storing each token as one record (fp8_ds_mla: 656 "
        "bytes, nvfp4_ds_mla: 352), whatever head_size and dtype; MLA specs only.",
    )
    page_size_padded: Annotated[PositiveInt, AfterValidator(_padded_covers_raw)] | None = Field(
        default=None,
        description="Bytes of a page padded up to share a page size with other layers; "
        ">= the raw page.",
    )

    @classmethod
    def _raw_from(cls, fields: Mapping[str, Any]) -> int | None:
        try:
            record = fields["cache_dtype_str"]
            if record is not None:
                per_head = MLA_CACHE_FORMATS[record]
            elif fields["use_mla"]:
                per_head = fields["head_size"] * dtype_size(fields["dtype"])
            else:
                v_size = fields["head_size_v"] or fields["head_size"]
                per_head = (fields["head_size"] + v_size) * dtype_size(fields["dtype"])
            raw: int = fields["page_size"] * fields["num_kv_heads"] * per_head
        except KeyError:
            return None
        return raw

    @property
    def raw_page_size_bytes(self) -> int:
        """Bytes of one page before padding."""
        return self._raw_from(self.__dict__) or 0

    @classmethod
    def _sets_newer(cls, fields: Mapping[str, Any]) -> bool:
        return fields["head_size_v"] is not None or fields["cache_dtype_str"] is not None


class FullAttentionSpec(_AttentionBase):
    """A full-attention layer: every token of a request keeps its page.

    ``sliding_window`` / ``attention_chunk_size`` record a window the layer computes with while
    its pages are kept whole (at most one of them).

    >>> FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=576, dtype="bf16",
    ...                   use_mla=True).page_size_bytes
    18432
    """

    model_config = ConfigDict(json_schema_extra=_full_attention_schema)
    _MERGEABLE: ClassVar[frozenset[str]] = frozenset({"sliding_window", "attention_chunk_size"})

    kind: Literal["full_attention"] = "full_attention"
    sliding_window: PositiveInt | None = Field(
        default=None, description="A window computed over pages kept whole (recorded only)."
    )
    attention_chunk_size: Annotated[PositiveInt, AfterValidator(_one_window)] | None = Field(
        default=None, description="A chunk size computed over pages kept whole (recorded only)."
    )
    given_type_id: GivenTypeId = None
    given_page_size_bytes: GivenPageBytes = None

    @classmethod
    def _type_id_from(cls, fields: Mapping[str, Any], page_bytes: int | None = None) -> str:
        page_bytes = page_bytes or cls._page_bytes_from(fields)
        return f"full_attention_{fields['page_size']}_{page_bytes}"

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """``cdiv(max_model_len, page_size) * page_size_bytes``.

        >>> FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64,
        ...                   dtype="fp16").max_memory_usage_bytes(max_model_len=100)
        57344
        """
        positive_int_arg("max_model_len", max_model_len)
        return _cdiv(max_model_len, self.page_size) * self.page_size_bytes


class SlidingWindowSpec(_AttentionBase):
    """A sliding-window layer: a request keeps only the pages its window can reach.

    >>> SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16",
    ...                   sliding_window=4096).type_id
    'sliding_window_4096_16_65536'
    """

    kind: Literal["sliding_window"] = "sliding_window"
    use_mla: StrictBool = Field(
        default=False,
        description="Always false: MLA has no sliding-window cache.",
        json_schema_extra={"const": False},
    )
    cache_dtype_str: _MLAFormatOrNone = Field(
        default=None,
        description="Always null: an MLA cache format, and MLA has no sliding-window cache.",
        json_schema_extra={"const": None},
    )
    sliding_window: PositiveInt = Field(description="Tokens the window reaches back.")
    given_type_id: GivenTypeId = None
    given_page_size_bytes: GivenPageBytes = None

    @field_validator("use_mla")
    @classmethod
    def _no_mla(cls, value: bool) -> bool:
        if value:
            raise PydanticCustomError(
                "mla_sliding_window",
                "a sliding-window spec cannot use MLA (use_mla=True); MLA layers are full attention",
            )
        return value

    @classmethod
    def _type_id_from(cls, fields: Mapping[str, Any], page_bytes: int | None = None) -> str:
        window, page_size = fields["sliding_window"], fields["page_size"]
        page_bytes = page_bytes or cls._page_bytes_from(fields)
        return f"sliding_window_{window}_{page_size}_{page_bytes}"

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """``(cdiv(min(window - 1 + batched, max_model_len), page_size) + 1) * page_size_bytes``.

        >>> SlidingWindowSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp32",
        ...     sliding_window=128).max_memory_usage_bytes(max_model_len=4096,
        ...                                                max_num_batched_tokens=64)
        106496
        """
        positive_int_arg("max_model_len", max_model_len)
        batched = positive_int_arg("max_num_batched_tokens", max_num_batched_tokens)
        tokens = min(self.sliding_window - 1 + batched, max_model_len)
        return (_cdiv(tokens, self.page_size) + 1) * self.page_size_bytes


class ChunkedLocalAttentionSpec(_AttentionBase):
    """A chunked local-attention layer: a request keeps the pages of its current chunk.

    >>> ChunkedLocalAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16",
    ...                           attention_chunk_size=8192).type_id
    'local_attention_8192_16_65536'
    """

    kind: Literal["local_attention"] = "local_attention"
    attention_chunk_size: PositiveInt = Field(description="Tokens per attention chunk.")
    given_type_id: GivenTypeId = None
    given_page_size_bytes: GivenPageBytes = None

    @classmethod
    def _type_id_from(cls, fields: Mapping[str, Any], page_bytes: int | None = None) -> str:
        chunk, page_size = fields["attention_chunk_size"], fields["page_size"]
        page_bytes = page_bytes or cls._page_bytes_from(fields)
        return f"local_attention_{chunk}_{page_size}_{page_bytes}"

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """``cdiv(min(chunk + batched, max_model_len), page_size) * page_size_bytes``.

        >>> ChunkedLocalAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp32",
        ...     attention_chunk_size=128).max_memory_usage_bytes(max_model_len=4096,
        ...                                                      max_num_batched_tokens=64)
        98304
        """
        positive_int_arg("max_model_len", max_model_len)
        batched = positive_int_arg("max_num_batched_tokens", max_num_batched_tokens)
        tokens = min(self.attention_chunk_size + batched, max_model_len)
        return _cdiv(tokens, self.page_size) * self.page_size_bytes


#: Every attention spec class (what shards by KV heads, and lays out as K/V pages).
ATTENTION_SPECS = (FullAttentionSpec, SlidingWindowSpec, ChunkedLocalAttentionSpec)
