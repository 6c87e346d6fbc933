"""What every cache spec shares: strict positive ints, layer names, derived values and their check.

>>> from kvschema import FullAttentionSpec
>>> FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16").type_id
'full_attention_16_65536'
"""

from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
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
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema.errors import InvalidArgumentError, SpecMergeError
from kvschema.spec.bounds import page_bytes_error

__all__ = ["MAX_INT", "NEWER_FIELDS", "LayerName", "PositiveInt", "padded_too_small"]

#: The largest integer a field takes: 2**53 - 1, the largest every JSON reader keeps exact.
MAX_INT = 2**53 - 1

#: Sets an attribute of a frozen model (what pydantic's own copies use).
_set_slot = object.__setattr__

#: A strict int in ``1..MAX_INT``: no bools, strings or floats.
PositiveInt = Annotated[int, Strict(), Ge(1), Le(MAX_INT)]


#: The validation-context key under which ``CacheGroupsConfig.model_validate_json`` collects the
#: models that set a field newer than schema version 1 (a list; see ``_SpecBase._sets_newer``).
NEWER_FIELDS = object()


def _given(key: str) -> Any:
    """The field info of the input-only field that takes ``key`` from a document."""
    return Field(
        validation_alias=key,
        exclude=True,
        repr=False,
        description=f"Input only: {key} as a document carries it, checked against the fields; "
        "always None.",
    )


#: The field a spec kind declares last to take a ``type_id`` a document carries (see ``_SpecBase``).
GivenTypeId = Annotated[Any, _given("type_id")]

#: The field a spec kind declares last to take a ``page_size_bytes`` a document carries.
GivenPageBytes = Annotated[Any, _given("page_size_bytes")]


def _cdiv(a: int, b: int) -> int:
    return -(a // -b)


def padded_too_small(padded: int, raw: int) -> PydanticCustomError:
    """The error of a ``page_size_padded`` below the raw page's bytes."""
    return PydanticCustomError(
        "page_size_padded_too_small",
        "page_size_padded {padded} is smaller than the raw page of {raw} bytes",
        {"padded": padded, "raw": raw},
    )


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


def _named_specs(specs: Iterable[Any] | Mapping[str, Any]) -> list[tuple[str, Any]]:
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


def _merge_named(named: list[tuple[str, Any]]) -> Any:
    """Merge named specs of one kind (``merge_specs`` after its checks of the kinds)."""
    if not named:
        raise SpecMergeError("cannot merge an empty list of specs")
    first_name = named[0][0]
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


# Specs whose rules held: (kind, field values but the input-only ones) -> (type_id,
# page_size_bytes, whether a field newer than schema version 1 is set).  Cleared when full.
_CHECKED: dict[tuple[Any, ...], tuple[str, int, bool]] = {}
_MEMO_SIZE = 4096

# A spec given both derived values: its fields set names them by their document keys once
# they are checked (see _SpecBase._check_derived).
_GIVEN = ("given_type_id", "given_page_size_bytes")
_DERIVED = ("type_id", "page_size_bytes")

# A spec kind -> the getter of its key in _CHECKED from its fields (None: not memoized).
_KEY_OF: dict[type, Callable[[dict[str, Any]], Any]] = {}


def _no_key(fields: dict[str, Any]) -> None:
    return None


def _key_of(cls: "type[_SpecBase]") -> Callable[[dict[str, Any]], Any]:
    names = [name for name in cls.model_fields if not name.startswith("given_")]
    getter = itemgetter(*names) if cls._MEMO and len(names) > 1 else _no_key
    _KEY_OF[cls] = getter
    return getter


class _SpecBase(BaseModel):
    """Fields, derived values and input checks shared by every spec kind.

    ``type_id`` and ``page_size_bytes`` are computed fields: written on output, and optional on
    input, where a value a document carries must agree with the fields.  Each kind takes them
    with two input-only fields declared after its own (``given_type_id: GivenTypeId = None``,
    ``given_page_size_bytes: GivenPageBytes = None``); the model validator compares them with
    the values computed once from the fields, and returns at once when neither was given.
    A kind's rules across fields go in ``_check_rules``, which that validator runs first.
    """

    model_config = ConfigDict(
        # a kind's validator is built on its first use: validating a config builds the
        # config's alone (the specs' schemas inside it), not one per spec class at import
        defer_build=True,
        frozen=True,
        extra="forbid",
        json_schema_extra=_add_derived_properties,
    )

    # Whether the rules' verdict may be memoized by the field values (all hashable).
    _MEMO: ClassVar[bool] = True

    # Fields that a merge may fill in from other members; every other field must agree.
    _MERGEABLE: ClassVar[frozenset[str]] = frozenset()

    kind: str  # each kind narrows it to its literal; declared here so it comes first
    page_size: PositiveInt = Field(description="Tokens per page.")

    @computed_field(description="Layers whose specs share it may share one page table.")  # type: ignore[prop-decorator]
    @property
    def type_id(self) -> str:
        """The page-table identity: layers whose specs share it may share one page table."""
        return self._type_id_from(self.__dict__)

    @computed_field(description="Bytes of one page.")  # type: ignore[prop-decorator]
    @property
    def page_size_bytes(self) -> int:
        """Bytes of one page (the padded size when ``page_size_padded`` is set)."""
        fields = self.__dict__
        padded: int | None = fields.get("page_size_padded")
        page_bytes = padded if padded is not None else self._raw_from(fields)
        if page_bytes is None:  # pragma: no cover - a validated spec has every field
            raise InvalidArgumentError(f"{type(self).__name__} is missing a field")
        return page_bytes

    # The derived values are computed from a mapping of field values — the instance's own, or
    # the validated fields of a spec being validated — so the check needs no model instance.

    @classmethod
    def _type_id_from(cls, fields: Mapping[str, Any], page_bytes: int | None = None) -> str:
        """``type_id`` from field values (every field present); ``page_bytes``, when the
        caller has it, saves computing it again."""
        raise NotImplementedError

    @classmethod
    def _raw_from(cls, fields: Mapping[str, Any]) -> int | None:
        """The unpadded page bytes from validated field values (None when one is missing)."""
        raise NotImplementedError

    @classmethod
    def _page_bytes_from(cls, fields: Mapping[str, Any]) -> int | None:
        """``page_size_bytes`` from field values: the padded page, else the raw one."""
        padded: int | None = fields.get("page_size_padded")
        return padded if padded is not None else cls._raw_from(fields)

    def max_memory_usage_bytes(
        self, *, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """The most bytes one request of ``max_model_len`` tokens can hold in this layer."""
        raise NotImplementedError

    def _replace(self, **update: Any) -> Self:
        """``self.model_copy(update=update)`` at a quarter of its cost: the same copy (fields
        replaced, nothing validated, the replaced fields added to the fields set), without
        pydantic's generic steps — a spec keeps no extra or private values to copy.  For the
        planner, which makes a copy per distinct spec (a page padded or scaled).

        >>> from kvschema import FullAttentionSpec
        >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
        >>> spec._replace(page_size=32) == spec.model_copy(update={"page_size": 32})
        True
        """
        cls = type(self)
        copied = cls.__new__(cls)
        _set_slot(copied, "__dict__", {**self.__dict__, **update})
        _set_slot(copied, "__pydantic_fields_set__", self.__pydantic_fields_set__ | update.keys())
        _set_slot(copied, "__pydantic_extra__", None)
        _set_slot(copied, "__pydantic_private__", None)
        return copied

    def _check_rules(self, page_bytes: int | None) -> None:
        """Raise the error of a rule across fields that this spec breaks (a kind's model rules;
        run by :meth:`_rules_then_derived` before the derived values are checked).
        ``page_bytes`` is the page's bytes, None when the fields give none (a broken form)."""

    @classmethod
    def _sets_newer(cls, fields: Mapping[str, Any]) -> bool:
        """Whether the validated ``fields`` set a field of a later schema version than 1 (one
        that ``kvschema.layout.config.FIELD_VERSIONS`` lists) to anything but its default."""
        return False

    def _mismatch(self, key: str, given: Any, computed: Any) -> InitErrorDetails:
        return {
            "type": PydanticCustomError(
                "derived_mismatch",
                "{field} is {given} but the fields give {computed}; "
                "it is derived, so omit it or make it agree",
                {"field": key, "given": repr(given), "computed": repr(computed)},
            ),
            "loc": (key,),
            "input": given,
        }

    @model_validator(mode="after")
    def _rules_then_derived(self, info: ValidationInfo) -> Self:
        """The kind's model rules (``_check_rules``), the derived values a document carries,
        then the page's bytes within ``MAX_INT``.

        The input-only fields take a derived value as it is; it must be the one computed from
        the fields (each computed once, without building a model), and the field is set back
        to None.  This runs once every field is valid, and after the kind's rules have held: a
        derived value checked against broken fields would only add noise.

        The rules and the derived values depend on the fields alone (strict types: equal
        values are the same values), so a spec whose fields passed before is looked up
        (``_CHECKED``): a document of three specs pays for computing them once per process.
        Inside ``CacheGroupsConfig.model_validate_json`` it also notes in the validation
        context whether the spec sets a field newer than schema version 1 (see
        ``_sets_newer``), so the config's schema-version check need not walk the specs.
        """
        fields = self.__dict__
        key_of = _KEY_OF.get(type(self)) or _key_of(type(self))
        key = key_of(fields)
        known = _CHECKED.get(key) if key is not None else None
        if known is None:
            known = self._checked(fields)
            if key is not None:
                if len(_CHECKED) >= _MEMO_SIZE:
                    _CHECKED.clear()
                _CHECKED[key] = known
        type_id, page_bytes, newer = known
        fields_set = self.__pydantic_fields_set__
        if "given_type_id" in fields_set:
            given_type, given_page = fields["given_type_id"], fields["given_page_size_bytes"]
            if (
                "given_page_size_bytes" in fields_set
                and type(given_type) is str
                and type(given_page) is int
                and given_type == type_id
                and given_page == page_bytes
            ):  # both given and right, as in every document kvschema writes: see below
                fields_set.difference_update(_GIVEN)
                fields_set.update(_DERIVED)
                fields["given_type_id"] = fields["given_page_size_bytes"] = None
            else:
                self._check_derived(fields, fields_set, type_id, page_bytes)
        elif "given_page_size_bytes" in fields_set:
            self._check_derived(fields, fields_set, type_id, page_bytes)
        if page_bytes > MAX_INT:
            error = page_bytes_error(page_bytes)
            if error is not None:
                raise error
        if newer:
            context = info.context
            noted = context.get(NEWER_FIELDS) if type(context) is dict else None
            if noted is not None:
                noted.append(type(self).__name__)
        return self

    def _checked(self, fields: dict[str, Any]) -> tuple[str, int, bool]:
        """Run the kind's rules (raising what breaks one, but the bound of the page's bytes);
        return the derived ``type_id`` and ``page_size_bytes``, and whether a field newer
        than schema version 1 is set (``_sets_newer``)."""
        padded: int | None = fields.get("page_size_padded")
        page_bytes = padded if padded is not None else self._raw_from(fields)
        self._check_rules(page_bytes)
        if page_bytes is None:  # pragma: no cover - a validated spec has every field
            raise InvalidArgumentError(f"{type(self).__name__} is missing a field")
        return self._type_id_from(fields, page_bytes), page_bytes, self._sets_newer(fields)

    def _check_derived(
        self, fields: dict[str, Any], fields_set: set[str], type_id: str, page_bytes: int
    ) -> None:
        """Compare the derived values a document gave with those of the fields; drop them."""
        type_given = "given_type_id" in fields_set
        page_given = "given_page_size_bytes" in fields_set
        # Checked once: an instance handed to another model runs this validator again.  The
        # fields set name the values by their document keys instead, so it still counts
        # every key the document gave (see CacheGroupsConfig.model_validate_json).
        fields_set.difference_update(("given_type_id", "given_page_size_bytes"))
        if type_given:
            fields_set.add("type_id")
        if page_given:
            fields_set.add("page_size_bytes")
        given_type, given_page = fields["given_type_id"], fields["given_page_size_bytes"]
        fields["given_type_id"] = fields["given_page_size_bytes"] = None
        errors: list[InitErrorDetails] = []
        if type_given and (type(given_type) is not str or given_type != type_id):
            errors.append(self._mismatch("type_id", given_type, type_id))
        if page_given and (type(given_page) is not int or given_page != page_bytes):
            errors.append(self._mismatch("page_size_bytes", given_page, page_bytes))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)

    @classmethod
    def merge(cls, specs: Iterable[Any] | Mapping[str, Any]) -> Self:
        """Merge specs of this kind into one; see :func:`merge_specs`.

        >>> from kvschema import SlidingWindowSpec
        >>> a = SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=64, dtype="bf16",
        ...                       sliding_window=512)
        >>> SlidingWindowSpec.merge([a, a]) == a
        True
        """
        named = _named_specs(specs)
        for name, spec in named:
            if not isinstance(spec, cls):
                raise SpecMergeError(
                    f"{cls.__name__}.merge got {name} of type {type(spec).__name__}",
                    name=name,
                )
        merged = _merge_named(named)
        if not isinstance(merged, cls):  # pragma: no cover - a merge returns a member's kind
            raise SpecMergeError(f"{cls.__name__}.merge produced a {type(merged).__name__}")
        return merged
