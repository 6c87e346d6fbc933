"""Groups of layers that share one page table, and a model's whole cache layout.

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> config = CacheGroupsConfig(num_pages=1024, kv_cache_groups=[
...     CacheGroupSpec(kv_cache_spec=spec, layer_names=["layer.0", "layer.1"])])
>>> config.schema_version, config.layer_count
(1, 2)
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from annotated_types import Ge
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema._reading import refuse_duplicate_keys
from kvschema.layout.group import _SEEN, MAX_LAYERS, CacheGroupSpec, _error, _one_name_set
from kvschema.layout.masks import MaskDetailsInput, groups_from_mask_details
from kvschema.layout.parallel import Parallelism
from kvschema.spec.union import CacheSpec, PositiveInt

__all__ = ["SCHEMA_VERSION", "CacheGroupSpec", "CacheGroupsConfig", "Parallelism"]

#: The schema version this kvschema writes, and the newest it reads.
SCHEMA_VERSION = 1


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
        refuse_duplicate_keys(json_data, cls.__name__)
        return super().model_validate_json(json_data, **_one_name_set(kwargs))

    @field_validator("kv_cache_groups")
    @classmethod
    def _layers_once(
        cls, groups: list[CacheGroupSpec], info: ValidationInfo
    ) -> list[CacheGroupSpec]:
        if len(groups) == 1:
            return groups
        names = [group.layer_names for group in groups]
        if None not in names:
            context = info.context
            seen = context.get(_SEEN) if type(context) is dict else None
            listed = sum(map(len, names))  # type: ignore[arg-type]
            if listed > MAX_LAYERS:  # one config, as one group: what a plan of it regroups
                raise PydanticCustomError(
                    "too_many_layers",
                    "the groups list {listed} layers together; a config lists at most {limit}",
                    {"listed": listed, "limit": MAX_LAYERS},
                )
            # Every name once, in every group: the union is as long as the lists.  The groups
            # built that union as they were validated (see _one_name_set); groups passed in as
            # instances were not, and a union without them falls short: the loops below decide.
            if len(seen if seen is not None else set().union(*names)) == listed:  # type: ignore[arg-type]
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
            for position, name in enumerate(group.layer_names or ()):
                first = owner.setdefault(name, index)
                if first != index:
                    errors.append(
                        _error(
                            "layer_in_two_groups",
                            "layer {name} is in group {first} and group {again}; "
                            "a layer belongs to one group",
                            {"name": name, "first": first, "again": index},
                            (index, "layer_names", position),
                            name,
                        )
                    )
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return groups

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
