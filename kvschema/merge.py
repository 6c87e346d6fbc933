"""Merging the specs of layers that share one page table.

>>> from kvschema import FullAttentionSpec
>>> full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> merge_specs([full, full.model_copy(update={"sliding_window": 4096})]).sliding_window
4096
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from kvschema.errors import SpecMergeError
from kvschema.specs import SPEC_TYPES, CacheSpec

__all__ = ["merge_specs"]


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

    >>> from kvschema import ChunkedLocalAttentionSpec
    >>> local = ChunkedLocalAttentionSpec(page_size=16, num_kv_heads=8, head_size=128,
    ...                                   dtype="bf16", attention_chunk_size=8192)
    >>> merge_specs({"layer.0": local, "layer.1": local}) == local
    True
    """
    named: list[tuple[str, Any]] = _named(specs)
    if not named:
        raise SpecMergeError("cannot merge an empty list of specs")
    for name, spec in named:
        if not isinstance(spec, SPEC_TYPES):
            raise SpecMergeError(f"{name} is a {type(spec).__name__}, not a cache spec", name=name)
    first_name = named[0][0]
    first: CacheSpec = named[0][1]
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
