"""Groups of layers that share one page table, and a model's whole cache layout.

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> config = CacheGroupsConfig(num_pages=1024, kv_cache_groups=[
...     CacheGroupSpec(kv_cache_spec=spec, layer_names=["layer.0", "layer.1"])])
>>> config.schema_version, config.layer_count, config.content_version
(2, 2, 1)
"""

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, Self

from annotated_types import Ge
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema._reading import colons_at_most, refuse_duplicate_keys
from kvschema.layout.group import _SEEN, MAX_LAYERS, CacheGroupSpec, _error, _one_name_set
from kvschema.layout.parallel import Parallelism
from kvschema.spec.base import NEWER_FIELDS
from kvschema.spec.union import CacheSpec, PositiveInt, UniformTypeSpec, spec_keys_read

if TYPE_CHECKING:
    from kvschema.layout.masks import MaskDetailsInput

__all__ = ["FIELD_VERSIONS", "SCHEMA_VERSION", "CacheGroupSpec", "CacheGroupsConfig", "Parallelism"]

#: The schema version this kvschema writes, and the newest it reads.
#: 2 added ``head_size_v`` and ``cache_dtype_str`` (attention specs), the state-page counts of
#: Mamba specs, ``kv_sharing`` (groups) and ``parallelism`` (the config).
SCHEMA_VERSION = 2

#: Each optional field added after version 1 → the schema version that added it.  A document
#: that sets one (to anything but its default) needs a reader of that version; one that sets
#: none is readable by version 1 (see :attr:`CacheGroupsConfig.content_version`).
FIELD_VERSIONS: Mapping[str, int] = {
    "head_size_v": 2,
    "cache_dtype_str": 2,
    "kv_sharing": 2,
    "parallelism": 2,
    "mamba_cache_mode": 2,
    "num_speculative_blocks": 2,
    "num_prefill_checkpoint_blocks": 2,
}


# A model class -> its fields of FIELD_VERSIONS, a getter of their values as a tuple, and their
# defaults as a tuple (filled on first use).  One getter call per model: a version-1 document
# is checked in about a microsecond.
_VERSIONED: dict[type[BaseModel], tuple[tuple[str, ...], Callable[[Any], Any], tuple[Any, ...]]]
_VERSIONED = {}


def _nothing(node: Any) -> tuple[()]:
    return ()


def _versioned(
    cls: type[BaseModel],
) -> tuple[tuple[str, ...], Callable[[Any], Any], tuple[Any, ...]]:
    fields = cls.model_fields
    names = tuple(name for name in FIELD_VERSIONS if name in fields)
    if len(names) == 1:  # attrgetter of one name returns the value, of two or more a tuple
        names *= 2
    defaults = tuple(fields[name].default for name in names)
    getter = attrgetter(*names) if names else _nothing
    plan = _VERSIONED[cls] = (names, getter, defaults)
    return plan


def _fields_set(config: "CacheGroupsConfig") -> set[str]:
    """The fields of :data:`FIELD_VERSIONS` set to a non-default value in ``config`` or the
    models inside it: its groups, their specs and a uniform-type spec's members, each distinct
    spec object once.

    Only the versioned fields are read, and only the fields that hold models are descended
    into (``parallelism`` holds no versioned field); never a layer-name list.
    """
    nodes: list[BaseModel] = [config]
    seen: set[int] = set()
    for group in config.kv_cache_groups:
        nodes.append(group)
        spec = group.kv_cache_spec
        if id(spec) not in seen:
            seen.add(id(spec))
            nodes.append(spec)
            if type(spec) is UniformTypeSpec:
                nodes.extend(spec.kv_cache_specs.values())
    found: set[str] = set()
    for node in nodes:
        names, getter, defaults = _VERSIONED.get(type(node)) or _versioned(type(node))
        values = getter(node)
        if values != defaults:
            found.update(n for n, v, d in zip(names, values, defaults, strict=False) if v != d)
    return found


def _keys_read(config: "CacheGroupsConfig") -> int:
    """How many keys the JSON objects of a validated config held, each key counted once
    (pydantic keeps the last of two equal keys): the fields each model was given, and the
    entries of its mappings.  Never more than the document's keys."""
    keys = len(config.__pydantic_fields_set__)
    parallelism = config.parallelism
    if parallelism is not None:
        keys += len(parallelism.__pydantic_fields_set__)
    for group in config.kv_cache_groups:
        sharing = group.kv_sharing
        keys += len(group.__pydantic_fields_set__) + spec_keys_read(group.kv_cache_spec)
        if sharing is not None:
            keys += len(sharing)
    return keys


class CacheGroupsConfig(BaseModel):
    """A model's whole KV-cache layout: its groups and the page count they share.

    >>> from kvschema import FullAttentionSpec
    >>> CacheGroupsConfig(num_pages=8, kv_cache_groups=[CacheGroupSpec(
    ...     kv_cache_spec=FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64,
    ...                                     dtype="fp16"))]).kv_cache_groups[0].layer_names is None
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    schema_version: Annotated[int, Strict(), Ge(1)] = Field(
        default=SCHEMA_VERSION,
        description=f"Version of this document's schema; this kvschema reads 1..{SCHEMA_VERSION}.",
        json_schema_extra={"maximum": SCHEMA_VERSION},
    )
    num_pages: PositiveInt = Field(description="Pages in the pool every group draws from.")
    kv_cache_groups: list[CacheGroupSpec] = Field(
        min_length=1,
        max_length=MAX_LAYERS,
        description="The page-table groups; every layer belongs to exactly one.",
    )
    parallelism: Parallelism | None = Field(
        default=None,
        description="The parallel layout whose one rank the specs describe; absent: the whole "
        "model (a planner shards it).",
    )

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version > SCHEMA_VERSION:
            raise PydanticCustomError(
                "schema_version_unsupported",
                "schema_version {version} is newer than this kvschema reads (up to {current}); "
                "upgrade kvschema to read it",
                {"version": version, "current": SCHEMA_VERSION},
            )
        return version

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate a Python object (see pydantic's ``BaseModel.model_validate``)."""
        return super().model_validate(obj, **_one_name_set(kwargs))

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """Validate a JSON document (see pydantic's ``BaseModel.model_validate_json``).

        A key twice in one object is refused (``duplicate_key``), as the command line does.
        """
        try:
            if kwargs:
                config = super().model_validate_json(json_data, **_one_name_set(kwargs))
            else:  # the usual call: the versioned fields note themselves (see below)
                context: dict[object, Any] = {_SEEN: set(), NEWER_FIELDS: []}
                config = cls.__pydantic_validator__.validate_json(json_data, context=context)
        except ValidationError:
            refuse_duplicate_keys(json_data, cls.__name__)  # that error first, as ever
            raise
        # Every key of a JSON object is followed by one ':', so a text with no more ':' than the
        # keys the models read holds no key twice; only one with more is parsed again.
        if not colons_at_most(json_data, _keys_read(config)):
            refuse_duplicate_keys(json_data, cls.__name__)
        return config

    @property
    def content_version(self) -> int:
        """The oldest schema version that can read this layout: the newest field it sets.

        1 unless a group or spec sets a field that :data:`FIELD_VERSIONS` lists.  The
        canonical form writes this as ``schema_version``, so upgrading kvschema changes no
        fingerprint of a layout that uses none of the new fields.

        >>> from kvschema import FullAttentionSpec
        >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=192, head_size_v=128,
        ...                          dtype="bf16")
        >>> CacheGroupsConfig(num_pages=8, kv_cache_groups=[
        ...     CacheGroupSpec(kv_cache_spec=spec)]).content_version
        2
        """
        return max((FIELD_VERSIONS.get(name, 1) for name in _fields_set(self)), default=1)

    def fields_newer_than(self, version: int) -> list[str]:
        """The fields this layout sets that schema ``version`` does not have (sorted).

        >>> from kvschema import FullAttentionSpec
        >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp16")
        >>> CacheGroupsConfig(num_pages=8, kv_cache_groups=[CacheGroupSpec(
        ...     kv_cache_spec=spec, layer_names=["a"], kv_sharing={"b": "a"})]).fields_newer_than(1)
        ['kv_sharing']
        """
        return sorted({name for name in _fields_set(self) if FIELD_VERSIONS.get(name, 1) > version})

    @model_validator(mode="after")
    def _fields_of_its_version(self, info: ValidationInfo) -> Self:
        if self.schema_version >= SCHEMA_VERSION:
            return self
        # Validating JSON text, every model inside was built from it here, and each that set a
        # versioned field noted it in the context: none noted and no parallelism is the
        # answer without a walk.  Anything else (instances passed in, a context of the
        # caller's) walks the models.
        context = info.context
        noted = context.get(NEWER_FIELDS) if type(context) is dict else None
        if noted is not None and not noted and self.parallelism is None:
            return self
        newer = self.fields_newer_than(self.schema_version)
        if newer:
            error = _error(
                "field_newer_than_schema_version",
                "the document says schema_version {version} but sets {fields}, added in "
                "schema_version {needed}; write schema_version {needed}",
                {
                    "version": self.schema_version,
                    "fields": ", ".join(newer),
                    "needed": max(FIELD_VERSIONS[name] for name in newer),
                },
                ("schema_version",),
                self.schema_version,
            )
            raise ValidationError.from_exception_data(type(self).__name__, [error])
        return self

    @field_validator("kv_cache_groups")
    @classmethod
    def _layers_once(
        cls, groups: list[CacheGroupSpec], info: ValidationInfo
    ) -> list[CacheGroupSpec]:
        if len(groups) == 1:
            return groups
        listed = 0  # a group's own names and its sharing layers (never both: the group checks)
        for group in groups:
            names, sharing = group.layer_names, group.kv_sharing
            if names is None:
                break
            listed += len(names) if sharing is None else len(names) + len(sharing)
        else:
            if listed > MAX_LAYERS:  # one config, as one group: what a plan of it regroups
                raise PydanticCustomError(
                    "too_many_layers",
                    "the groups list {listed} layers together; a config lists at most {limit}",
                    {"listed": listed, "limit": MAX_LAYERS},
                )
            # Every name once, in every group: the union is as long as the lists.  The groups
            # built that union as they were validated (see _one_name_set); groups passed in as
            # instances were not, and a union without them falls short: the loops below decide.
            context = info.context
            seen = context.get(_SEEN) if type(context) is dict else None
            if seen is None:
                seen = set().union(
                    *(group.layer_names or () for group in groups),
                    *(group.kv_sharing or () for group in groups),
                )
            if len(seen) == listed:
                return groups
        errors: list[InitErrorDetails] = []
        for index, group in enumerate(groups):
            if group.layer_names is None:
                errors.append(
                    _error(
                        "all_layers_not_alone",
                        "layer_names is null (every layer) but the config has {count} "
                        "groups; list each group's layers",
                        {"count": len(groups)},
                        (index, "layer_names"),
                        None,
                    )
                )
        owner: dict[str, int] = {}
        for index, group in enumerate(groups):
            places = [
                *(
                    ((index, "layer_names", at), name)
                    for at, name in enumerate(group.layer_names or ())
                ),
                *(((index, "kv_sharing", name), name) for name in group.kv_sharing or ()),
            ]
            for loc, name in places:
                first = owner.setdefault(name, index)
                if first != index:
                    errors.append(
                        _error(
                            "layer_in_two_groups",
                            "layer {name} is in group {first} and group {again}; "
                            "a layer belongs to one group",
                            {"name": name, "first": first, "again": index},
                            loc,
                            name,
                        )
                    )
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return groups

    @property
    def layer_count(self) -> int | None:
        """Layers with a cache of their own across the groups (sharing layers not counted), or
        None when a lone group covers every layer."""
        if self.kv_cache_groups[0].layer_names is None:
            return None
        return sum(len(group.layer_names or ()) for group in self.kv_cache_groups)

    @property
    def kv_sharing(self) -> dict[str, str]:
        """Every group's sharing layers: layer → the layer whose KV cache it reads.

        >>> from kvschema import FullAttentionSpec
        >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp16")
        >>> CacheGroupsConfig(num_pages=8, kv_cache_groups=[CacheGroupSpec(
        ...     kv_cache_spec=spec, layer_names=["a"], kv_sharing={"b": "a"})]).kv_sharing
        {'b': 'a'}
        """
        return {
            name: target
            for group in self.kv_cache_groups
            for name, target in (group.kv_sharing or {}).items()
        }

    def layer_specs(self) -> dict[str, CacheSpec]:
        """Layer name → its group's spec, in group order (empty when layer_names is null).

        >>> from kvschema import FullAttentionSpec
        >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp16")
        >>> list(CacheGroupsConfig(num_pages=8, kv_cache_groups=[CacheGroupSpec(
        ...     kv_cache_spec=spec, layer_names=["a", "b"])]).layer_specs())
        ['a', 'b']
        """
        return {
            name: group.kv_cache_spec
            for group in self.kv_cache_groups
            for name in group.layer_names or ()
        }

    @classmethod
    def from_mask_details(
        cls,
        mask_details: "MaskDetailsInput | None",
        *,
        num_pages: int,
        page_size: int,
        num_kv_heads: int,
        head_size: int,
        dtype: Any,
        use_mla: bool = False,
        num_layers: int | None = None,
    ) -> "CacheGroupsConfig":
        """Groups from per-layer mask details (see :func:`groups_from_mask_details`) plus a page count.

        >>> config = CacheGroupsConfig.from_mask_details(
        ...     {0: {"mask_type": "sliding", "size": 512}, 1: {"mask_type": "full"}},
        ...     num_pages=64, page_size=16, num_kv_heads=4, head_size=64, dtype="bf16")
        >>> [g.kv_cache_spec.kind for g in config.kv_cache_groups]
        ['sliding_window', 'full_attention']
        """
        from kvschema.layout.masks import groups_from_mask_details  # built on first use

        groups = groups_from_mask_details(
            mask_details,
            page_size=page_size,
            num_kv_heads=num_kv_heads,
            head_size=head_size,
            dtype=dtype,
            use_mla=use_mla,
            num_layers=num_layers,
        )
        return cls(num_pages=num_pages, kv_cache_groups=groups)
