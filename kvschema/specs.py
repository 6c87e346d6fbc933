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
from functools import cache
from math import prod
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias

from annotated_types import Ge, Le
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema.dtypes import DTypeName, dtype_size
from kvschema.errors import InvalidArgumentError, SpecMergeError, positive_int_arg

__all__ = [
    "MAX_INT",
    "CacheSpec",
    "ChunkedLocalAttentionSpec",
    "FullAttentionSpec",
    "LayerName",
    "MambaSpec",
    "PositiveInt",
    "SPEC_TYPES",
    "SlidingWindowSpec",
    "UniformTypeSpec",
    "parse_spec",
    "spec_adapter",
]

#: The largest integer a field takes: 2**53 - 1, the largest every JSON reader keeps exact.
MAX_INT = 2**53 - 1

#: A strict int in ``1..MAX_INT``: no bools, strings or floats.
PositiveInt = Annotated[int, Strict(), Ge(1), Le(MAX_INT)]

_DERIVED = ("type_id", "page_size_bytes")


def _cdiv(a: int, b: int) -> int:
    return -(a // -b)


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

    @classmethod
    def _raw_from(cls, fields: Mapping[str, Any]) -> int | None:
        """The unpadded page bytes from validated field values (None when one is missing)."""
        raise NotImplementedError

    def _page_bytes(self) -> int:
        padded: int | None = getattr(self, "page_size_padded", None)
        if padded is not None:
            return padded
        raw = self._raw_from(self.__dict__)
        if raw is None:  # pragma: no cover - a validated spec has every field
            raise InvalidArgumentError(f"{type(self).__name__} is missing a field")
        return raw

    @field_validator("page_size_padded", check_fields=False)
    @classmethod
    def _padded_covers_raw(cls, value: int | None, info: ValidationInfo) -> int | None:
        raw = cls._raw_from(info.data) if value is not None else None
        if value is not None and raw is not None and value < raw:
            raise PydanticCustomError(
                "page_size_padded_too_small",
                "page_size_padded {padded} is smaller than the raw page of {raw} bytes",
                {"padded": value, "raw": raw},
            )
        return value

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """The most bytes one request of ``max_model_len`` tokens can hold in this layer."""
        raise NotImplementedError

    @model_validator(mode="wrap")
    @classmethod
    def _check_derived(cls, data: Any, handler: Any) -> Any:
        if not isinstance(data, dict) or ("type_id" not in data and "page_size_bytes" not in data):
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
        from kvschema.merge import _named, merge_specs

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

    @model_validator(mode="after")
    def _one_dtype_form(self) -> MambaSpec:
        if (self.dtype is None) == (self.dtypes is None):
            raise PydanticCustomError(
                "mamba_dtype_form",
                "give dtype (every state) or dtypes (one per state), exactly one of them",
            )
        if self.dtypes is not None and len(self.dtypes) != len(self.shapes):
            raise PydanticCustomError(
                "mamba_dtypes_count",
                "dtypes has {dtypes} entries for {shapes} state shapes; give one per shape",
                {"dtypes": len(self.dtypes), "shapes": len(self.shapes)},
            )
        return self

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


_AttentionSpec = Annotated[
    FullAttentionSpec | SlidingWindowSpec | ChunkedLocalAttentionSpec,
    Field(discriminator="kind"),
]

#: A layer name: a non-empty string of at most 256 characters.
LayerName = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=256)]


def _family(spec: Any) -> str:
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

    kind: Literal["uniform_type"] = "uniform_type"
    kv_cache_specs: dict[LayerName, _AttentionSpec] = Field(
        min_length=1, description="Each member layer's own spec."
    )

    @model_validator(mode="after")
    def _one_type(self) -> UniformTypeSpec:
        errors: list[InitErrorDetails] = []
        families = {_family(spec) for spec in self.kv_cache_specs.values()}
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
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @classmethod
    def _raw_from(cls, fields: Mapping[str, Any]) -> int | None:
        specs = fields.get("kv_cache_specs")
        return None if specs is None else sum(s.page_size_bytes for s in specs.values())

    def _make_type_id(self) -> str:
        first = next(iter(self.kv_cache_specs.values()))
        return f"uniform_type_{_family(first)}_{self.page_size}_{self.page_size_bytes}"

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


#: Any spec, discriminated on ``kind``; usable as a field type.
CacheSpec: TypeAlias = Annotated[
    FullAttentionSpec | SlidingWindowSpec | ChunkedLocalAttentionSpec | MambaSpec | UniformTypeSpec,
    Field(discriminator="kind"),
]


@cache
def spec_adapter() -> TypeAdapter[Any]:
    """The validator of the ``CacheSpec`` union, built on first use and shared."""
    return TypeAdapter(CacheSpec, config=ConfigDict(title="CacheSpec"))


SPEC_TYPES = (
    FullAttentionSpec,
    SlidingWindowSpec,
    ChunkedLocalAttentionSpec,
    MambaSpec,
    UniformTypeSpec,
)


def parse_spec(data: Any) -> CacheSpec:
    """Validate one spec from a dict, a JSON ``str`` or ``bytes`` (or return a spec as is).

    >>> parse_spec('{"kind": "sliding_window", "page_size": 16, "num_kv_heads": 4, '
    ...            '"head_size": 64, "dtype": "fp16", "sliding_window": 1024}').type_id
    'sliding_window_1024_16_16384'
    """
    if isinstance(data, SPEC_TYPES):
        return data
    if isinstance(data, (str, bytes, bytearray)):
        return spec_adapter().validate_json(data)  # type: ignore[no-any-return]
    return spec_adapter().validate_python(data)  # type: ignore[no-any-return]
