"""Merging the specs of layers that share one page table.

>>> from kvschema import FullAttentionSpec
>>> full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> merge_specs([full, full.model_copy(update={"sliding_window": 4096})]).sliding_window
4096
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kvschema.errors import SpecMergeError
from kvschema.spec.base import _merge_named, _named_specs
from kvschema.spec.union import SPEC_TYPES, CacheSpec

__all__ = ["merge_specs"]


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
    named = _named_specs(specs)
    for name, spec in named:
        if not isinstance(spec, SPEC_TYPES):
            raise SpecMergeError(f"{name} is a {type(spec).__name__}, not a cache spec", name=name)
    return _merge_named(named)  # type: ignore[no-any-return]
