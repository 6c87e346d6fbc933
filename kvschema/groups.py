"""Groups of layers that share one page table, and a model's whole cache layout.

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> config = CacheGroupsConfig(num_pages=1024, kv_cache_groups=[
...     CacheGroupSpec(kv_cache_spec=spec, layer_names=["layer.0", "layer.1"])])
>>> config.schema_version, config.layer_count
(1, 2)
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any

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

from kvschema.specs import CacheSpec, LayerName, PositiveInt, UniformTypeSpec

if TYPE_CHECKING:
    from kvschema.masks import MaskDetailsInput

__all__ = ["MAX_LAYERS", "SCHEMA_VERSION", "CacheGroupSpec", "CacheGroupsConfig", "LayerName"]

#: The schema version this kvschema writes, and the newest it reads.
SCHEMA_VERSION = 1

#: The most layer names one group (and one config) may list.
MAX_LAYERS = 100_000


def _error(
    kind: str, template: str, context: dict[str, Any], loc: tuple[Any, ...], value: Any
) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, template, context), "loc": loc, "input": value}


def _short(names: list[str]) -> str:
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


class CacheGroupSpec(BaseModel):
    """Layers that share one page table, described by one spec.

    ``layer_names=None`` means every layer of the model (allowed only for a lone group).

    >>> from kvschema import SlidingWindowSpec
    >>> group = CacheGroupSpec(
    ...     kv_cache_spec=SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=128,
    ...                                     dtype="bf16", sliding_window=1024),
    ...     layer_names=["layer.0", "layer.2"])
    >>> group.kv_cache_spec.type_id
    'sliding_window_1024_16_65536'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kv_cache_spec: CacheSpec = Field(description="The spec every layer of the group shares.")
    layer_names: (
        Annotated[
            list[LayerName],
            Field(min_length=1, max_length=MAX_LAYERS, json_schema_extra={"uniqueItems": True}),
        ]
        | None
    ) = Field(
        default=None,
        description="The group's layers, each once; null means every layer (a lone group only).",
    )

    @field_validator("layer_names")
    @classmethod
    def _unique_names(cls, names: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if names is None:
            return names
        unique = set(names)
        spec = info.data.get("kv_cache_spec")
        if isinstance(spec, UniformTypeSpec) and set(spec.kv_cache_specs) != unique:
            members = list(spec.kv_cache_specs)  # a JSON object's key order means nothing
            raise PydanticCustomError(
                "uniform_type_layers",
                "a uniform-type group's layer_names must be its members ({members}), got {names}",
                {"members": _short(members), "names": _short(names)},
            )
        if len(unique) == len(names):
            return names
        seen: dict[str, int] = {}
        errors: list[InitErrorDetails] = []
        for position, name in enumerate(names):
            if name in seen:
                errors.append(
                    _error(
                        "duplicate_layer",
                        "layer {name} is listed twice in this group (positions {first} and {again})",
                        {"name": name, "first": seen[name], "again": position},
                        (position,),
                        name,
                    )
                )
            else:
                seen[name] = position
        raise ValidationError.from_exception_data(cls.__name__, errors)


class CacheGroupsConfig(BaseModel):
    """A model's whole KV-cache layout: its groups and the page count they share.

    >>> from kvschema import FullAttentionSpec
    >>> CacheGroupsConfig(num_pages=8, kv_cache_groups=[CacheGroupSpec(
    ...     kv_cache_spec=FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64,
    ...                                     dtype="fp16"))]).kv_cache_groups[0].layer_names is None
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

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

    @model_validator(mode="after")
    def _layers_once(self) -> CacheGroupsConfig:
        groups = self.kv_cache_groups
        if len(groups) == 1:
            return self
        names = [group.layer_names for group in groups]
        if None not in names:  # the usual case, checked at C speed; the loop below explains
            listed = sum(map(len, names))  # type: ignore[arg-type]
            if len(set(chain.from_iterable(names))) == listed:  # type: ignore[arg-type]
                return self
        errors: list[InitErrorDetails] = []
        if len(groups) > 1:
            for index, group in enumerate(groups):
                if group.layer_names is None:
                    errors.append(
                        _error(
                            "all_layers_not_alone",
                            "layer_names is null (every layer) but the config has {count} "
                            "groups; list each group's layers",
                            {"count": len(groups)},
                            ("kv_cache_groups", index, "layer_names"),
                            None,
                        )
                    )
        owner: dict[str, int] = {}
        for index, group in enumerate(groups):
            for position, name in enumerate(group.layer_names or ()):
                first = owner.setdefault(name, index)
                if first != index:
                    errors.append(
                        _error(
                            "layer_in_two_groups",
                            "layer {name} is in group {first} and group {again}; "
                            "a layer belongs to one group",
                            {"name": name, "first": first, "again": index},
                            ("kv_cache_groups", index, "layer_names", position),
                            name,
                        )
                    )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def layer_count(self) -> int | None:
        """Layers named across the groups, or None when a lone group covers every layer."""
        if self.kv_cache_groups[0].layer_names is None:
            return None
        return sum(len(group.layer_names or ()) for group in self.kv_cache_groups)

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
        mask_details: MaskDetailsInput | None,
        *,
        num_pages: int,
        page_size: int,
        num_kv_heads: int,
        head_size: int,
        dtype: Any,
        use_mla: bool = False,
        num_layers: int | None = None,
    ) -> CacheGroupsConfig:
        """Groups from per-layer mask details (see :func:`groups_from_mask_details`) plus a page count.

        >>> config = CacheGroupsConfig.from_mask_details(
        ...     {0: {"mask_type": "sliding", "size": 512}, 1: {"mask_type": "full"}},
        ...     num_pages=64, page_size=16, num_kv_heads=4, head_size=64, dtype="bf16")
        >>> [g.kv_cache_spec.kind for g in config.kv_cache_groups]
        ['sliding_window', 'full_attention']
        """
        from kvschema.masks import groups_from_mask_details

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
