"""What every cache spec shares: strict positive ints, layer names, derived values and their check.

>>> from kvschema import FullAttentionSpec
>>> FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16").type_id
'full_attention_16_65536'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Self

from annotated_types import Ge, Le
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema.errors import InvalidArgumentError, SpecMergeError

__all__ = ["MAX_INT", "LayerName", "PositiveInt"]

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


#: A layer name: a non-empty string of at most 256 characters.
LayerName = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=256)]


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

        >>> from kvschema import SlidingWindowSpec
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
