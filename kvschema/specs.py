"""Per-layer cache specs: what one layer's paged KV cache holds, and how big a page is.

Each spec is a frozen Pydantic model with a literal ``kind``.  Its derived values —
``type_id`` (layers whose specs share it may share a page table) and ``page_size_bytes`` —
are computed from the fields with the reference formulas, written on output, and checked on
input when a document carries them.

>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> spec.type_id, spec.page_size_bytes
('full_attention_16_65536', 65536)
>>> spec.max_memory_usage_bytes(max_model_len=4096)
16777216
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import prod
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias

from annotated_types import Ge, Le
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema.dtypes import DTypeName, dtype_size
from kvschema.errors import InvalidArgumentError, SpecMergeError

__all__ = [
    "MAX_INT",
    "SPEC_ADAPTER",
    "CacheSpec",
    "ChunkedLocalAttentionSpec",
    "FullAttentionSpec",
    "MambaSpec",
    "PositiveInt",
    "SlidingWindowSpec",
    "merge_specs",
    "parse_spec",
]

#: The largest integer a field takes: 2**53 - 1, the largest every JSON reader keeps exact.
MAX_INT = 2**53 - 1

#: A strict int in ``1..MAX_INT``: no bools, strings or floats.
PositiveInt = Annotated[int, Strict(), Ge(1), Le(MAX_INT)]

_DERIVED = ("type_id", "page_size_bytes")


def _cdiv(a: int, b: int) -> int:
    return -(a // -b)


def _check_length(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}", **{name: value})
    return value


def _add_derived_properties(schema: dict[str, Any]) -> None:
    props = schema.setdefault("properties", {})
    props["type_id"] = {
        "type": "string",
        "description": "Derived from the fields; optional on input, checked when given.",
    }
    props["page_size_bytes"] = {
        "type": "integer",
        "minimum": 1,
        "description": "Derived from the fields; optional on input, checked when given.",
    }
    required = schema.setdefault("required", [])
    if "kind" not in required:
        required.insert(0, "kind")


def _full_attention_schema(schema: dict[str, Any]) -> None:
    _add_derived_properties(schema)
    recorded = ("sliding_window", "attention_chunk_size")
    schema["not"] = {
        "description": "A window and a chunk size are never both recorded.",
        "required": list(recorded),
        "properties": {name: {"type": "integer"} for name in recorded},
    }


class _SpecBase(BaseModel):
    """Fields, derived values and input checks shared by every spec kind."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra=_add_derived_properties,
    )

    # Fields that a merge may fill in from other members; every other field must agree.
    _MERGEABLE: ClassVar[frozenset[str]] = frozenset()

    kind: str  # each kind narrows it to its literal; declared here so it comes first
    page_size: PositiveInt = Field(description="Tokens per page.")

    @computed_field(description="Layers whose specs share it may share one page table.")  # type: ignore[prop-decorator]
    @property
    def type_id(self) -> str:
        """The page-table identity: layers whose specs share it may share one page table."""
        return self._make_type_id()

    @computed_field(description="Bytes of one page.")  # type: ignore[prop-decorator]
    @property
    def page_size_bytes(self) -> int:
        """Bytes of one page (the padded size when ``page_size_padded`` is set)."""
        return self._page_bytes()

    def _make_type_id(self) -> str:
        raise NotImplementedError

    def _page_bytes(self) -> int:
        raise NotImplementedError

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """The most bytes one request of ``max_model_len`` tokens can hold in this layer."""
        raise NotImplementedError

    @model_validator(mode="wrap")
    @classmethod
    def _check_derived(cls, data: Any, handler: Any) -> Any:
        if not isinstance(data, dict) or not any(key in data for key in _DERIVED):
            return handler(data)
        given = {key: data[key] for key in _DERIVED if key in data}
        spec = handler({key: value for key, value in data.items() if key not in _DERIVED})
        errors: list[InitErrorDetails] = []
        for key, value in given.items():
            computed = getattr(spec, key)
            if value != computed or type(value) is not type(computed):
                errors.append(
                    {
                        "type": PydanticCustomError(
                            "derived_mismatch",
                            "{field} is {given} but the fields give {computed}; "
                            "it is derived, so omit it or make it agree",
                            {"field": key, "given": repr(value), "computed": repr(computed)},
                        ),
                        "loc": (key,),
                        "input": value,
                    }
                )
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return spec

    @classmethod
    def merge(cls, specs: Iterable[Any] | Mapping[str, Any]) -> Self:
        """Merge specs of this kind into one; see :func:`merge_specs`.

        >>> a = SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=64, dtype="bf16",
        ...                       sliding_window=512)
        >>> SlidingWindowSpec.merge([a, a]) == a
        True
        """
        named = _named(specs)
        for name, spec in named:
            if not isinstance(spec, cls):
                raise SpecMergeError(
                    f"{cls.__name__}.merge got {name} of type {type(spec).__name__}",
                    name=name,
                )
        merged = merge_specs(dict(named) if isinstance(specs, Mapping) else [s for _, s in named])
        if not isinstance(merged, cls):  # pragma: no cover - merge_specs returns a member's kind
            raise SpecMergeError(f"{cls.__name__}.merge produced a {type(merged).__name__}")
        return merged


class _AttentionBase(_SpecBase):
    """Attention layers: K and V (or one MLA latent) per token and KV head."""

    num_kv_heads: PositiveInt = Field(description="KV heads this cache holds (per rank).")
    head_size: PositiveInt = Field(description="Elements per head and token.")
    dtype: DTypeName
    use_mla: StrictBool = Field(
        default=False, description="One latent vector per token (MLA) instead of K and V."
    )

    def _page_bytes(self) -> int:
        coef = 1 if self.use_mla else 2
        return coef * self.page_size * self.num_kv_heads * self.head_size * dtype_size(self.dtype)


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
        _check_length("max_model_len", max_model_len)
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
        _check_length("max_model_len", max_model_len)
        batched = _check_length("max_num_batched_tokens", max_num_batched_tokens)
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
        _check_length("max_model_len", max_model_len)
        batched = _check_length("max_num_batched_tokens", max_num_batched_tokens)
        tokens = min(self.attention_chunk_size + batched, max_model_len)
        return _cdiv(tokens, self.page_size) * self.page_size_bytes


_Shape = Annotated[tuple[PositiveInt, ...], Field(min_length=1, max_length=16)]


class MambaSpec(_SpecBase):
    """A recurrent-state layer (Mamba, linear attention): one page of fixed-size state per request.

    >>> spec = MambaSpec(page_size=1, shapes=((2, 3), (4, 5)), dtype="bf16")
    >>> spec.type_id, spec.page_size_bytes
    ('mamba_((2, 3), (4, 5))_bfloat16', 52)
    """

    kind: Literal["mamba"] = "mamba"
    shapes: Annotated[tuple[_Shape, ...], Field(min_length=1, max_length=16)] = Field(
        description="Shape of each state tensor of one request."
    )
    dtype: DTypeName
    page_size_padded: PositiveInt | None = Field(
        default=None, description="Bytes of a page padded up to share a page size; >= the raw page."
    )

    @field_validator("page_size_padded")
    @classmethod
    def _padded_covers_raw(cls, value: int | None, info: ValidationInfo) -> int | None:
        shapes, dtype = info.data.get("shapes"), info.data.get("dtype")
        if value is None or shapes is None or dtype is None:
            return value
        raw = sum(prod(shape) for shape in shapes) * dtype_size(dtype)
        if value < raw:
            raise PydanticCustomError(
                "page_size_padded_too_small",
                "page_size_padded {padded} is smaller than the raw page of {raw} bytes",
                {"padded": value, "raw": raw},
            )
        return value

    def _raw_page_bytes(self) -> int:
        return sum(prod(shape) for shape in self.shapes) * dtype_size(self.dtype)

    def _page_bytes(self) -> int:
        return (
            self.page_size_padded if self.page_size_padded is not None else self._raw_page_bytes()
        )

    def _make_type_id(self) -> str:
        return f"mamba_{self.shapes}_{self.dtype}"

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """One page: the state does not grow with the request.

        >>> MambaSpec(page_size=1, shapes=((4,),), dtype="fp32").max_memory_usage_bytes(
        ...     max_model_len=10)
        16
        """
        _check_length("max_model_len", max_model_len)
        return self.page_size_bytes


#: Any spec, discriminated on ``kind``; usable as a field type.
CacheSpec: TypeAlias = Annotated[
    FullAttentionSpec | SlidingWindowSpec | ChunkedLocalAttentionSpec | MambaSpec,
    Field(discriminator="kind"),
]

#: The validator of the ``CacheSpec`` union, built once and shared.
SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(CacheSpec, config=ConfigDict(title="CacheSpec"))
_SPEC_TYPES = (FullAttentionSpec, SlidingWindowSpec, ChunkedLocalAttentionSpec, MambaSpec)


def parse_spec(data: Any) -> CacheSpec:
    """Validate one spec from a dict, a JSON ``str`` or ``bytes`` (or return a spec as is).

    >>> parse_spec('{"kind": "sliding_window", "page_size": 16, "num_kv_heads": 4, '
    ...            '"head_size": 64, "dtype": "fp16", "sliding_window": 1024}').type_id
    'sliding_window_1024_16_16384'
    """
    if isinstance(data, _SPEC_TYPES):
        return data
    if isinstance(data, (str, bytes, bytearray)):
        return SPEC_ADAPTER.validate_json(data)  # type: ignore[no-any-return]
    return SPEC_ADAPTER.validate_python(data)  # type: ignore[no-any-return]


def _named(specs: Iterable[Any] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    if isinstance(specs, Mapping):
        return [(str(name), spec) for name, spec in specs.items()]
    if isinstance(specs, (str, bytes, BaseModel)) or not isinstance(specs, Iterable):
        raise SpecMergeError(f"merge takes a list or mapping of specs, got {type(specs).__name__}")
    return [(f"spec {i}", spec) for i, spec in enumerate(specs)]


def _merged_value(field: str, named: list[tuple[str, Any]]) -> Any:
    carriers: dict[Any, str] = {}
    for name, spec in named:
        value = getattr(spec, field)
        if value is not None:
            carriers.setdefault(value, name)
    if len(carriers) > 1:
        listed = ", ".join(f"{value} ({name})" for value, name in carriers.items())
        raise SpecMergeError(
            f"specs in one group record different {field} values: {listed}; "
            "a group holds at most one",
            field=field,
            values=sorted(carriers),
        )
    return next(iter(carriers), None)


def merge_specs(specs: Iterable[Any] | Mapping[str, Any]) -> CacheSpec:
    """Merge the specs of layers that share one page table into one spec.

    They must share a ``type_id`` and a geometry (kind, heads, head size, dtype, MLA…).  A
    full-attention merge keeps the one sliding window or chunk size its members record (never
    two windows, never a window and a chunk size).  A mapping's keys name the members in errors.

    >>> full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> merge_specs([full, full.model_copy(update={"sliding_window": 4096})]).sliding_window
    4096
    """
    named: list[tuple[str, Any]] = _named(specs)
    if not named:
        raise SpecMergeError("cannot merge an empty list of specs")
    for name, spec in named:
        if not isinstance(spec, _SPEC_TYPES):
            raise SpecMergeError(f"{name} is a {type(spec).__name__}, not a cache spec", name=name)
    first_name = named[0][0]
    first: FullAttentionSpec | SlidingWindowSpec | ChunkedLocalAttentionSpec | MambaSpec
    first = named[0][1]
    if all(spec == first for _, spec in named[1:]):
        return first
    mergeable = type(first)._MERGEABLE
    for name, spec in named[1:]:
        if spec.type_id != first.type_id:
            raise SpecMergeError(
                f"{first_name} has type_id {first.type_id} and {name} has {spec.type_id}; "
                "layers in one group must share a type_id",
                type_ids=[first.type_id, spec.type_id],
            )
        differing = [
            f"{field} ({getattr(first, field)!r} vs {getattr(spec, field)!r})"
            for field in type(first).model_fields
            if field not in mergeable and getattr(first, field) != getattr(spec, field)
        ]
        if differing:
            raise SpecMergeError(
                f"{first_name} and {name} share type_id {first.type_id} but differ in "
                f"{', '.join(differing)}; one page table holds one geometry",
                type_id=first.type_id,
            )
    if not mergeable:
        return first
    update = {field: _merged_value(field, named) for field in sorted(mergeable)}
    if all(value is not None for value in update.values()):
        raise SpecMergeError(
            "specs in one group record both a sliding window and a chunk size "
            f"(sliding_window={update['sliding_window']}, "
            f"attention_chunk_size={update['attention_chunk_size']}); a group holds one or the other",
            **update,
        )
    return first.model_copy(update=update)
