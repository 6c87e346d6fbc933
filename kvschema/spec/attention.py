"""Attention specs: full, sliding-window and chunked local attention (MLA included).

>>> SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16",
...                   sliding_window=4096).page_size_bytes
65536
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import (
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
)
from kvschema.spec.dtypes import DTypeName, dtype_size

__all__ = ["ATTENTION_SPECS", "ChunkedLocalAttentionSpec", "FullAttentionSpec", "SlidingWindowSpec"]


def _full_attention_schema(schema: dict[str, Any]) -> None:
    _add_derived_properties(schema)
    recorded = ("sliding_window", "attention_chunk_size")
    schema["not"] = {
        "description": "A window and a chunk size are never both recorded.",
        "required": list(recorded),
        "properties": {name: {"type": "integer"} for name in recorded},
    }


class _AttentionBase(_SpecBase):
    """Attention layers: K and V (or one MLA latent) per token and KV head."""

    num_kv_heads: PositiveInt = Field(description="KV heads this cache holds (per rank).")
    head_size: PositiveInt = Field(description="Elements per head and token.")
    dtype: DTypeName
    use_mla: StrictBool = Field(
        default=False, description="One latent vector per token (MLA) instead of K and V."
    )
    page_size_padded: PositiveInt | None = Field(
        default=None,
        description="Bytes of a page padded up to share a page size with other layers; "
        ">= the raw page.",
    )

    @classmethod
    def _raw_from(cls, fields: Mapping[str, Any]) -> int | None:
        try:
            coef = 1 if fields["use_mla"] else 2
            raw: int = (
                coef
                * fields["page_size"]
                * fields["num_kv_heads"]
                * fields["head_size"]
                * dtype_size(fields["dtype"])
            )
        except KeyError:
            return None
        return raw

    @property
    def raw_page_size_bytes(self) -> int:
        """Bytes of one page before padding."""
        return self._raw_from(self.__dict__) or 0


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
    attention_chunk_size: PositiveInt | None = Field(
        default=None, description="A chunk size computed over pages kept whole (recorded only)."
    )
    given_type_id: GivenTypeId = None
    given_page_size_bytes: GivenPageBytes = None

    @field_validator("attention_chunk_size")
    @classmethod
    def _one_window(cls, value: int | None, info: ValidationInfo) -> int | None:
        window = info.data.get("sliding_window")
        if value is not None and window is not None:
            raise PydanticCustomError(
                "window_and_chunk",
                "a full-attention spec records a sliding window or a chunk size, never both "
                "(sliding_window={window}, attention_chunk_size={chunk})",
                {"window": window, "chunk": value},
            )
        return value

    def _make_type_id(self) -> str:
        return f"full_attention_{self.page_size}_{self.page_size_bytes}"

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

    def _make_type_id(self) -> str:
        return f"sliding_window_{self.sliding_window}_{self.page_size}_{self.page_size_bytes}"

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

    def _make_type_id(self) -> str:
        return (
            f"local_attention_{self.attention_chunk_size}_{self.page_size}_{self.page_size_bytes}"
        )

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
