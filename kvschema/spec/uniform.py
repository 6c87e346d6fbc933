"""Uniform-type specs: one group of attention layers of one family but mixed geometry.

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="bf16")
>>> UniformTypeSpec(page_size=16, kv_cache_specs={"a": spec, "b": spec}).page_size_bytes
16384
"""

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    ValidationError,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema.spec.attention import ChunkedLocalAttentionSpec, FullAttentionSpec, SlidingWindowSpec
from kvschema.spec.base import GivenPageBytes, GivenTypeId, LayerName, _cdiv, _SpecBase
from kvschema.spec.bounds import page_bytes_error

__all__ = ["UniformTypeSpec", "family"]


_AttentionSpec = Annotated[
    FullAttentionSpec | SlidingWindowSpec | ChunkedLocalAttentionSpec,
    Field(discriminator="kind"),
]


def family(spec: Any) -> str:
    """What a layer keeps per request: full, one window, or one chunk size."""
    if isinstance(spec, SlidingWindowSpec):
        return f"sliding_window_{spec.sliding_window}"
    if isinstance(spec, ChunkedLocalAttentionSpec):
        return f"local_attention_{spec.attention_chunk_size}"
    return "full_attention"


class UniformTypeSpec(_SpecBase):
    """One group of attention layers that keep the same tokens but differ in heads, head size or dtype.

    Every member shares ``page_size`` and one family — all full attention (MLA and recorded
    windows included), all sliding with one window, or all chunked with one chunk size.  A page
    index spans every member, so its page bytes are the sum of theirs, and a request needs the
    most pages any member needs.

    >>> a = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> b = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=128, dtype="bf16")
    >>> spec = UniformTypeSpec(page_size=16, kv_cache_specs={"layer.0": a, "layer.1": b})
    >>> spec.type_id, spec.page_size_bytes
    ('uniform_type_full_attention_16_81920', 81920)
    """

    _MEMO: ClassVar[bool] = False  # its members are a mapping (memoized one by one)

    kind: Literal["uniform_type"] = "uniform_type"
    kv_cache_specs: dict[LayerName, _AttentionSpec] = Field(
        min_length=1, description="Each member layer's own spec."
    )
    given_type_id: GivenTypeId = None
    given_page_size_bytes: GivenPageBytes = None

    def _type_errors(self) -> list[InitErrorDetails]:
        """What breaks the rule of one page size and one family across the members."""
        errors: list[InitErrorDetails] = []
        families = {family(spec) for spec in self.kv_cache_specs.values()}
        for name, spec in self.kv_cache_specs.items():
            if spec.page_size != self.page_size:
                errors.append(
                    {
                        "type": PydanticCustomError(
                            "uniform_type_page_size",
                            "member {name} has page_size {member}, the group {group}",
                            {"name": name, "member": spec.page_size, "group": self.page_size},
                        ),
                        "loc": ("kv_cache_specs", name, "page_size"),
                        "input": spec.page_size,
                    }
                )
        if len(families) > 1:
            errors.append(
                {
                    "type": PydanticCustomError(
                        "uniform_type_family",
                        "members keep different tokens ({families}); a uniform-type group holds "
                        "one family: full, one window or one chunk size",
                        {"families": ", ".join(sorted(families))},
                    ),
                    "loc": ("kv_cache_specs",),
                    "input": sorted(families),
                }
            )
        return errors

    def _check_rules(self, page_bytes: int | None) -> None:
        errors = self._type_errors()
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        error = page_bytes_error(page_bytes) if page_bytes is not None else None
        if error is not None:
            raise error

    @classmethod
    def _raw_from(cls, fields: Mapping[str, Any]) -> int | None:
        specs = fields.get("kv_cache_specs")
        return None if specs is None else sum(s.page_size_bytes for s in specs.values())

    @classmethod
    def _type_id_from(cls, fields: Mapping[str, Any], page_bytes: int | None = None) -> str:
        first = next(iter(fields["kv_cache_specs"].values()))
        page_bytes = page_bytes or cls._page_bytes_from(fields)
        return f"uniform_type_{family(first)}_{fields['page_size']}_{page_bytes}"

    def pages_per_request(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """The most pages any member needs for one request."""
        return max(
            _cdiv(
                spec.max_memory_usage_bytes(
                    max_model_len=max_model_len, max_num_batched_tokens=max_num_batched_tokens
                ),
                spec.page_size_bytes,
            )
            for spec in self.kv_cache_specs.values()
        )

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """The most pages any member needs, times the summed page bytes.

        >>> a = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
        >>> UniformTypeSpec(page_size=16, kv_cache_specs={"a": a}).max_memory_usage_bytes(
        ...     max_model_len=100)
        458752
        """
        pages = self.pages_per_request(
            max_model_len=max_model_len, max_num_batched_tokens=max_num_batched_tokens
        )
        return pages * self.page_size_bytes
