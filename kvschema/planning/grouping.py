"""Grouping layers into page tables, as vLLM v1's hybrid allocator and EasyDeL's pool do.

The planner's steps 1 to 4 (see :func:`~kvschema.plan_cache`): which layers share a page table, with
which spec.  Sizing the pool is the planner's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kvschema.errors import InvalidArgumentError, SpecMergeError
from kvschema.layout.config import CacheGroupSpec
from kvschema.spec.attention import ATTENTION_SPECS
from kvschema.spec.base import _cdiv
from kvschema.spec.merge import merge_specs
from kvschema.spec.uniform import family
from kvschema.spec.union import CacheSpec, MambaSpec, UniformTypeSpec

__all__ = ["hybrid_groups", "layer_map", "model_order", "per_layer_groups"]

_RUNS = re.compile(r"(\d+)|(\D+)")


def model_order(name: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts layer names in the model's order: ``layer.2`` before ``layer.10``.

    >>> sorted(["layer.10", "layer.2", "model.layers.1.attn"], key=model_order)
    ['layer.2', 'layer.10', 'model.layers.1.attn']
    """
    return tuple((0, int(digits)) if digits else (1, text) for digits, text in _RUNS.findall(name))


def layer_map(layers: Mapping[str, Any] | Sequence[CacheGroupSpec]) -> dict[str, CacheSpec]:
    """Layer name → its own spec, from a layer map or from groups (uniform-type members split).

    >>> from kvschema import FullAttentionSpec
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp16")
    >>> list(layer_map([CacheGroupSpec(kv_cache_spec=spec, layer_names=["a", "b"])]))
    ['a', 'b']
    """
    if isinstance(layers, Mapping):
        out = dict(layers)
    elif isinstance(layers, Sequence) and not isinstance(layers, (str, bytes)):
        out = {}
        for index, group in enumerate(layers):
            if not isinstance(group, CacheGroupSpec):
                raise InvalidArgumentError(
                    f"layers[{index}] is a {type(group).__name__}, not a CacheGroupSpec"
                )
            spec = group.kv_cache_spec
            if group.layer_names is None:
                raise InvalidArgumentError(
                    "planning needs each group's layer_names (null means 'every layer', "
                    "which does not say how many)"
                )
            for name in group.layer_names:
                member = spec.kv_cache_specs[name] if isinstance(spec, UniformTypeSpec) else spec
                if name in out:
                    raise InvalidArgumentError(f"layer {name} is in two groups", layer=name)
                out[name] = member
        # groups list layers group by group: the model's order is the names' natural order
        out = {name: out[name] for name in sorted(out, key=model_order)}
    else:
        raise InvalidArgumentError(
            "layers must map layer name to spec, or be a list of CacheGroupSpec; "
            f"got {type(layers).__name__}"
        )
    if not out:
        raise InvalidArgumentError("layers is empty: nothing to plan")
    for name, spec in out.items():
        if not isinstance(spec, (*ATTENTION_SPECS, MambaSpec)):
            raise InvalidArgumentError(
                f"layer {name!r} is a {type(spec).__name__}, not a per-layer spec", layer=name
            )
    return out


def _distinct(specs: dict[str, CacheSpec]) -> dict[CacheSpec, list[str]]:
    """Equal specs → their layers, in order of first appearance."""
    buckets: dict[CacheSpec, list[str]] = {}
    for name, spec in specs.items():
        buckets.setdefault(spec, []).append(name)
    return buckets


def _uniform_type(specs: dict[str, CacheSpec], distinct: list[CacheSpec]) -> UniformTypeSpec | None:
    if not all(isinstance(spec, ATTENTION_SPECS) for spec in distinct):
        return None
    if len({spec.page_size for spec in distinct}) != 1 or len({family(s) for s in distinct}) != 1:
        return None
    return UniformTypeSpec(page_size=distinct[0].page_size, kv_cache_specs=specs)


def _unify_pages(spec: CacheSpec, largest: int, name: str) -> CacheSpec:
    page = spec.page_size_bytes
    if page == largest:
        return spec
    if isinstance(spec, ATTENTION_SPECS) and largest % page == 0:
        return spec.model_copy(update={"page_size": spec.page_size * (largest // page)})
    if isinstance(spec, ATTENTION_SPECS) and spec.use_mla:
        raise InvalidArgumentError(
            f"layer {name}: an MLA page of {page} bytes does not divide the largest page "
            f"({largest} bytes), and MLA pages cannot be padded",
            layer=name,
        )
    return spec.model_copy(update={"page_size_padded": largest})


def hybrid_groups(specs: dict[str, CacheSpec]) -> list[tuple[CacheSpec, list[str]]]:
    """Page-table groups as vLLM v1's hybrid allocator forms them (steps 1 to 4 of the planner).

    One spec for every layer if they all merge; else one uniform-type group for one family of
    mixed geometry; else pages made one size, equal specs bucketed, and buckets split into
    groups of about the smallest bucket's size.

    >>> from kvschema import FullAttentionSpec, SlidingWindowSpec
    >>> full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> local = SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16",
    ...                           sliding_window=1024)
    >>> groups = hybrid_groups({f"l{i}": full if i % 3 == 2 else local for i in range(6)})
    >>> [(spec.kind, names) for spec, names in groups]
    [('sliding_window', ['l0', 'l3']), ('sliding_window', ['l1', 'l4']), ('full_attention', ['l2', 'l5'])]
    """
    buckets = _distinct(specs)
    distinct = list(buckets)
    names = list(specs)
    try:  # 1. one spec for every layer
        return [(merge_specs({buckets[s][0]: s for s in distinct}), names)]
    except SpecMergeError:
        pass
    uniform = _uniform_type(specs, distinct)  # 2. one family, mixed geometry
    if uniform is not None:
        return [(uniform, names)]
    largest = max(spec.page_size_bytes for spec in distinct)  # 3. one page size
    unified: dict[CacheSpec, list[str]] = {}
    for spec, layers in buckets.items():
        unified.setdefault(_unify_pages(spec, largest, layers[0]), []).extend(layers)
    joined: list[tuple[CacheSpec, list[str]]] = []  # 4. buckets, joined when they merge
    for spec, layers in unified.items():
        for index, (earlier, earlier_layers) in enumerate(joined):
            try:
                merged = merge_specs([earlier, spec])
            except SpecMergeError:
                continue
            joined[index] = (merged, earlier_layers + layers)
            break
        else:
            joined.append((spec, list(layers)))
    order = {name: i for i, name in enumerate(names)}
    joined = [(spec, sorted(layers, key=order.__getitem__)) for spec, layers in joined]
    sizes = [len(layers) for _, layers in joined]
    group_size = min(sizes)
    if max(sizes) < group_size * 1.5:
        group_size = max(sizes)
    groups: list[tuple[CacheSpec, list[str]]] = []
    for spec, layers in joined:
        count = _cdiv(len(layers), group_size)
        groups.extend((spec, layers[i::count]) for i in range(count))
    return groups


def per_layer_groups(specs: dict[str, CacheSpec]) -> list[tuple[CacheSpec, list[str]]]:
    """One group per ``type_id`` (per geometry when merging fails), as EasyDeL's per-layer pool.

    >>> from kvschema import FullAttentionSpec
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp16")
    >>> [(s.kind, names) for s, names in per_layer_groups({"a": spec, "b": spec})]
    [('full_attention', ['a', 'b'])]
    """
    by_type: dict[str, dict[CacheSpec, list[str]]] = {}
    for spec, layers in _distinct(specs).items():
        by_type.setdefault(spec.type_id, {})[spec] = layers
    groups: list[tuple[CacheSpec, list[str]]] = []
    order = {name: i for i, name in enumerate(specs)}
    for buckets in by_type.values():
        try:
            merged = merge_specs({layers[0]: spec for spec, layers in buckets.items()})
        except SpecMergeError:  # equal type_id, different geometry: one group per geometry
            groups.extend(buckets.items())
            continue
        layers = sorted((n for names in buckets.values() for n in names), key=order.__getitem__)
        groups.append((merged, layers))
    return groups
