"""Recurrent-state specs: Mamba and linear-attention layers keep one page of state per request.

>>> MambaSpec(page_size=1, shapes=[[4, 4]], dtype="fp32").page_size_bytes
64
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kvschema._args import positive_int_arg
from kvschema.spec.base import GivenPageBytes, GivenTypeId, PositiveInt, _SpecBase
from kvschema.spec.dtypes import DTypeName, dtype_size

__all__ = ["MambaSpec"]


_Shape = Annotated[tuple[PositiveInt, ...], Field(min_length=1, max_length=16)]


class MambaSpec(_SpecBase):
    """A recurrent-state layer (Mamba, linear attention): one page of fixed-size state per request.

    ``dtype`` gives every state one dtype; ``dtypes`` gives one per state (an SSM state kept in
    float32 beside a bf16 conv state, as Nemotron-H does).

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
    page_size_padded: PositiveInt | None = Field(
        default=None,
        description="Bytes of a page padded up to share a page size with other layers; "
        ">= the raw page.",
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
        return None

    @model_validator(mode="after")
    def _one_dtype_form(self) -> MambaSpec:
        error = self._form_error()
        if error is not None:
            raise error
        return self

    def _consistent(self) -> bool:
        return self._form_error() is None

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

    def _make_type_id(self) -> str:
        if self.dtypes is not None:
            return f"mamba_{self.shapes}_({', '.join(self.dtypes)})"
        return f"mamba_{self.shapes}_{self.dtype}"

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """One page: the state does not grow with the request.

        >>> MambaSpec(page_size=1, shapes=((4,),), dtype="fp32").max_memory_usage_bytes(
        ...     max_model_len=10)
        16
        """
        positive_int_arg("max_model_len", max_model_len)
        return self.page_size_bytes
