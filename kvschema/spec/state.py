"""Recurrent-state specs: Mamba and linear-attention layers keep fixed-size pages of state.

How many pages one request holds follows vLLM 0.33's ``mamba_cache_mode``
(``vllm/v1/kv_cache_interface.py::MambaSpec.max_memory_usage_bytes``): one with prefix caching
off (``"none"``), two with it on (``"align"``: the running state and the last cached one), plus
one per speculative token and one per prefill checkpoint.

>>> MambaSpec(page_size=1, shapes=[[4, 4]], dtype="fp32").page_size_bytes
64
"""

from collections.abc import Mapping
from math import prod
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    NonNegativeInt,
    Strict,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from kvschema._args import positive_int_arg
from kvschema.spec.base import (
    MAX_INT,
    GivenPageBytes,
    GivenTypeId,
    PositiveInt,
    _SpecBase,
    padded_too_small,
)
from kvschema.spec.bounds import page_bytes_error
from kvschema.spec.dtypes import DTypeName, dtype_size

__all__ = ["MambaCacheMode", "MambaSpec"]


_Shape = Annotated[tuple[PositiveInt, ...], Field(min_length=1, max_length=16)]

#: A strict int in ``0..2**53 - 1``: no bools, strings or floats.
_Count = Annotated[NonNegativeInt, Strict(), Field(le=MAX_INT)]

#: vLLM 0.33's ``CacheConfig.mamba_cache_mode`` values (``vllm/config/cache.py::MambaCacheMode``):
#: ``"none"`` with prefix caching off, ``"align"`` with it on.  0.33 has no ``"all"`` mode.
MambaCacheMode = Literal["none", "align"]


def _padded_covers_raw(value: int, info: ValidationInfo) -> int:
    """The padded page holds the raw one (called for a number only: see attention.py)."""
    raw = MambaSpec._raw_from(info.data)
    if raw is not None and value < raw:
        raise padded_too_small(value, raw)
    return value


class MambaSpec(_SpecBase):
    """A recurrent-state layer (Mamba, linear attention): fixed-size pages of state per request.

    ``dtype`` gives every state one dtype; ``dtypes`` gives one per state (an SSM state kept in
    float32 beside a bf16 conv state, as Nemotron-H does).  ``mamba_cache_mode``,
    ``num_speculative_blocks`` and ``num_prefill_checkpoint_blocks`` say how many pages one
    request holds (:attr:`pages_per_request`); at their defaults it is one, as before they existed.

    >>> spec = MambaSpec(page_size=1, shapes=((2, 3), (4, 5)), dtype="bf16")
    >>> spec.type_id, spec.page_size_bytes
    ('mamba_((2, 3), (4, 5))_bfloat16', 52)
    >>> mixed = MambaSpec(page_size=1, shapes=((2, 3), (4, 5)), dtypes=("bf16", "fp32"))
    >>> mixed.type_id, mixed.page_size_bytes
    ('mamba_((2, 3), (4, 5))_(bfloat16, float32)', 92)
    """

    kind: Literal["mamba"] = "mamba"
    shapes: Annotated[tuple[_Shape, ...], Field(min_length=1, max_length=16)] = Field(
        description="Shape of each state tensor of one request."
    )
    dtype: DTypeName | None = Field(
        default=None, description="The dtype of every state (or give dtypes)."
    )
    dtypes: tuple[DTypeName, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="One dtype per state, in the order of shapes (or give dtype).",
    )
    page_size_padded: Annotated[PositiveInt, AfterValidator(_padded_covers_raw)] | None = Field(
        default=None,
        description="Bytes of a page padded up to share a page size with other layers; "
        ">= the raw page.",
    )
    mamba_cache_mode: MambaCacheMode = Field(
        default="none",
        description="vLLM's mamba_cache_mode: 'none' (prefix caching off) keeps one state "
        "page per request, 'align' (prefix caching on) two.",
    )
    num_speculative_blocks: _Count = Field(
        default=0, description="Extra state pages per request, one per speculative token."
    )
    num_prefill_checkpoint_blocks: _Count = Field(
        default=0,
        description="Extra state pages per request for prefill checkpoints ('align' mode only).",
    )
    given_type_id: GivenTypeId = None
    given_page_size_bytes: GivenPageBytes = None

    def _form_error(self) -> PydanticCustomError | None:
        """What breaks the dtype rule: exactly one of dtype and dtypes, one dtype per shape."""
        if (self.dtype is None) == (self.dtypes is None):
            return PydanticCustomError(
                "mamba_dtype_form",
                "give dtype (every state) or dtypes (one per state), exactly one of them",
            )
        if self.dtypes is not None and len(self.dtypes) != len(self.shapes):
            return PydanticCustomError(
                "mamba_dtypes_count",
                "dtypes has {dtypes} entries for {shapes} state shapes; give one per shape",
                {"dtypes": len(self.dtypes), "shapes": len(self.shapes)},
            )
        if self.num_prefill_checkpoint_blocks and self.mamba_cache_mode != "align":
            return PydanticCustomError(
                "mamba_checkpoint_mode",
                "num_prefill_checkpoint_blocks is {blocks}, but prefill checkpoints exist only "
                "with mamba_cache_mode 'align' (prefix caching on), not '{mode}'",
                {
                    "blocks": self.num_prefill_checkpoint_blocks,
                    "mode": self.mamba_cache_mode,
                },
            )
        return None

    def _check_rules(self, page_bytes: int | None) -> None:
        error = self._form_error()
        if error is None and page_bytes is not None:
            error = page_bytes_error(page_bytes)
        if error is not None:
            raise error

    @classmethod
    def _sets_newer(cls, fields: Mapping[str, Any]) -> bool:
        newer: bool = (
            fields["mamba_cache_mode"] != "none"
            or fields["num_speculative_blocks"] != 0
            or fields["num_prefill_checkpoint_blocks"] != 0
        )
        return newer

    @classmethod
    def _raw_from(cls, fields: Mapping[str, Any]) -> int | None:
        shapes, dtype, dtypes = fields.get("shapes"), fields.get("dtype"), fields.get("dtypes")
        if shapes is None:
            return None
        if dtypes is not None:
            if len(dtypes) != len(shapes):
                return None
            total: int = sum(prod(s) * dtype_size(d) for s, d in zip(shapes, dtypes, strict=True))
            return total
        if dtype is None:
            return None
        elements: int = sum(prod(shape) for shape in shapes)
        return elements * dtype_size(dtype)

    @property
    def raw_page_size_bytes(self) -> int:
        """Bytes of one page before padding."""
        return self._raw_from(self.__dict__) or 0

    @classmethod
    def _type_id_from(cls, fields: Mapping[str, Any], page_bytes: int | None = None) -> str:
        dtypes = fields["dtypes"]
        if dtypes is not None:
            return f"mamba_{fields['shapes']}_({', '.join(dtypes)})"
        return f"mamba_{fields['shapes']}_{fields['dtype']}"

    @property
    def pages_per_request(self) -> int:
        """State pages one request holds, whatever its length.

        ``"none"``: ``1 + num_speculative_blocks``; ``"align"``: ``2 + num_speculative_blocks +
        num_prefill_checkpoint_blocks`` (vLLM 0.33, ``MambaSpec.max_memory_usage_bytes``).

        >>> MambaSpec(page_size=16, shapes=((4,),), dtype="fp32", mamba_cache_mode="align",
        ...           num_speculative_blocks=1).pages_per_request
        3
        """
        if self.mamba_cache_mode == "align":
            return 2 + self.num_speculative_blocks + self.num_prefill_checkpoint_blocks
        return 1 + self.num_speculative_blocks

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """``pages_per_request`` pages: the state does not grow with the request.

        >>> spec = MambaSpec(page_size=1, shapes=((4,),), dtype="fp32")
        >>> spec.max_memory_usage_bytes(max_model_len=10)
        16
        >>> spec.model_copy(update={"mamba_cache_mode": "align"}).max_memory_usage_bytes(
        ...     max_model_len=10)
        32
        """
        positive_int_arg("max_model_len", max_model_len)
        return self.page_size_bytes * self.pages_per_request
