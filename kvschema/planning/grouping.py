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
from kvschema.spec.attention import (
    ATTENTION_SPECS,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    SlidingWindowSpec,
)
from kvschema.spec.base import _cdiv
from kvschema.spec.merge import merge_specs
from kvschema.spec.uniform import family
from kvschema.spec.union import CacheSpec, MambaSpec, UniformTypeSpec

__all__ = ["hybrid_groups", "layer_map", "model_order", "per_layer_groups", "unify_hybrid_specs"]

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
    for name, spec in out.items():
        if not isinstance(spec, (*ATTENTION_SPECS, MambaSpec)):
            raise InvalidArgumentError(
                f"layer {name!r} is a {type(spec).__name__}, not a per-layer spec", layer=name
            )
    return out


def _distinct(specs: dict[str, CacheSpec]) -> dict[CacheSpec, list[str]]:
    """Equal specs → their layers in layer order, in order of first appearance.

    Layers that share one spec object are collected by identity first: hashing a spec costs
    far more than a lookup by ``id``, and a layer map usually repeats a few objects.
    """
    by_object: dict[int, list[str]] = {}
    objects: list[CacheSpec] = []
    for name, spec in specs.items():
        names = by_object.get(id(spec))
        if names is None:
            by_object[id(spec)] = names = []
            objects.append(spec)
        names.append(name)
    buckets: dict[CacheSpec, list[str]] = {}
    joined: set[CacheSpec] = set()
    for spec in objects:
        names = by_object[id(spec)]
        bucket = buckets.get(spec)
        if bucket is None:
            buckets[spec] = names
        else:  # an equal spec in another object: one bucket, layers back in layer order
            bucket.extend(names)
            joined.add(spec)
    if joined:
        order = {name: index for index, name in enumerate(specs)}
        for spec in joined:
            buckets[spec].sort(key=order.__getitem__)
    return buckets


def _one_spec(distinct: list[CacheSpec]) -> CacheSpec | None:
    """The one spec every layer merges into (vLLM's ``is_kv_cache_spec_uniform``), else None.

    vLLM 0.33 (``FullAttentionSpec.merge``, kv_cache_interface.py) raises a ValueError it does
    not catch when non-MLA full-attention layers record two sliding windows (or two chunk
    sizes): it refuses to start, and so does this function.
    """
    if all(isinstance(s, FullAttentionSpec) and not s.use_mla for s in distinct):
        for field in ("sliding_window", "attention_chunk_size"):
            values = sorted({getattr(s, field) for s in distinct} - {None})
            if len(values) > 1:
                raise InvalidArgumentError(
                    f"full-attention layers record {len(values)} different {field} values "
                    f"({', '.join(map(str, values))}); vLLM 0.33 cannot merge them and refuses to "
                    'start ("All attention layers in the same KV cache group must have the same '
                    'window size.")',
                    field=field,
                    values=values,
                )
    try:
        return merge_specs(distinct)
    except SpecMergeError:
        return None


def _uniform_kind(distinct: list[CacheSpec]) -> str | None:
    """vLLM's ``UniformTypeKVCacheSpecs.is_uniform_type``: "attention", "mamba" or None.

    One page size (tokens per page) and, for attention, one family — all full attention (MLA
    and recorded windows included), one window, or one chunk size; for Mamba, one page in bytes.
    """
    if len({spec.page_size for spec in distinct}) != 1:
        return None
    if all(isinstance(spec, ATTENTION_SPECS) for spec in distinct):
        return "attention" if len({family(spec) for spec in distinct}) == 1 else None
    if all(isinstance(spec, MambaSpec) for spec in distinct):
        return "mamba" if len({spec.page_size_bytes for spec in distinct}) == 1 else None
    return None


def _uniform_type(specs: dict[str, CacheSpec], distinct: list[CacheSpec]) -> UniformTypeSpec | None:
    """The one uniform-type group of step 2, or None; Mamba of mixed shapes is refused."""
    kind = _uniform_kind(distinct)
    if kind == "mamba":
        raise InvalidArgumentError(
            "every layer keeps recurrent state of one page size but different shapes: vLLM 0.33 "
            "groups them in one UniformTypeKVCacheSpecs, which kvschema's uniform_type spec "
            "(attention layers only) cannot express; refusing rather than planning other numbers"
        )
    if kind is None:
        return None
    return UniformTypeSpec(page_size=distinct[0].page_size, kv_cache_specs=specs)


class _Unpaddable(Exception):
    """An MLA page that neither divides the largest page nor may be padded (vLLM: NotImplemented)."""


def _unify_pages(spec: CacheSpec, largest: int, name: str, page: int) -> CacheSpec:
    """vLLM 0.33's ``unify_kv_cache_spec_page_size`` for one spec (kv_cache_planning.py);
    ``page`` is the spec's ``page_size_bytes``."""
    if page == largest:
        return spec
    if isinstance(spec, ATTENTION_SPECS) and largest % page == 0:
        if spec.page_size_padded is not None:  # vLLM scales block_size and keeps the padding
            raise InvalidArgumentError(
                f"layer {name}: its padded page of {page} bytes divides the largest page "
                f"({largest} bytes); vLLM 0.33 would scale its page_size and keep the padding, "
                "and stops on an assertion; drop page_size_padded or pad it to the largest page",
                layer=name,
            )
        return spec._replace(page_size=spec.page_size * (largest // page))
    if isinstance(spec, ATTENTION_SPECS) and spec.use_mla:
        raise _Unpaddable(
            f"layer {name}: an MLA page of {page} bytes does not divide the largest page "
            f"({largest} bytes), and MLA pages cannot be padded"
        )
    return spec._replace(page_size_padded=largest)


_NOT_CARRIED = frozenset(
    {"kind", "sliding_window", "attention_chunk_size", "page_size", "page_size_padded"}
)


def _as_full_attention(spec: CacheSpec, page_size: int) -> FullAttentionSpec:
    """A sliding or chunked layer allocated as full attention, recording its window.

    vLLM 0.33's ``_promote_local_kv_cache_specs``: the block size becomes the full-attention
    layers' one, and a padded page grows with it (``max(padded, raw * new / old)``).
    """
    carried = {
        name: getattr(spec, name)
        for name in FullAttentionSpec.model_fields.keys() & type(spec).model_fields.keys()
        if name not in _NOT_CARRIED and not name.startswith("given_")
    }
    padded = spec.page_size_padded  # type: ignore[union-attr]
    if padded is not None:
        raw = spec.raw_page_size_bytes  # type: ignore[union-attr]
        padded = max(padded, raw * page_size // spec.page_size)
    window = (
        {"sliding_window": spec.sliding_window}
        if isinstance(spec, SlidingWindowSpec)
        else {"attention_chunk_size": spec.attention_chunk_size}  # type: ignore[union-attr]
    )
    return FullAttentionSpec(**carried, page_size=page_size, page_size_padded=padded, **window)


def unify_hybrid_specs(specs: dict[str, CacheSpec]) -> dict[str, CacheSpec]:
    """The layers' specs with the hybrid KV cache manager disabled: windows allocated as full.

    vLLM 0.33's ``unify_hybrid_kv_cache_specs`` / ``_promote_local_kv_cache_specs``
    (kv_cache_planning.py): when the specs are not already one spec or one uniform type, and a
    full-attention layer sits next to sliding-window or chunked layers, those become
    full-attention specs recording their window (computed as windows, allocated whole), with the
    full layers' page size.  Anything still not one spec or one uniform type — Mamba state,
    windows without a full layer, two page sizes among the full layers — is refused, as vLLM
    refuses to start ("Failed to promote local KV cache specs to one unified type.").

    >>> from kvschema import FullAttentionSpec, SlidingWindowSpec
    >>> full = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="fp32")
    >>> local = SlidingWindowSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="fp32",
    ...                           sliding_window=1)
    >>> unify_hybrid_specs({"a": full, "b": local})["b"] == full.model_copy(
    ...     update={"sliding_window": 1})
    True
    """
    buckets = _distinct(specs)
    distinct = list(buckets)
    if not distinct or _one_spec(distinct) is not None or _uniform_kind(distinct):
        return specs
    has_full = any(isinstance(spec, FullAttentionSpec) for spec in distinct)
    local = (SlidingWindowSpec, ChunkedLocalAttentionSpec)
    if has_full and any(isinstance(spec, local) for spec in distinct):
        sizes = {spec.page_size for spec in distinct if isinstance(spec, FullAttentionSpec)}
        specs = dict(specs)
        for spec, names in buckets.items():
            if isinstance(spec, local):
                size = next(iter(sizes)) if len(sizes) == 1 else spec.page_size
                specs.update(dict.fromkeys(names, _as_full_attention(spec, size)))
        distinct = list(_distinct(specs))
        if _one_spec(distinct) is not None or _uniform_kind(distinct):
            return specs
    if any(isinstance(spec, MambaSpec) for spec in distinct):
        reason = "recurrent-state (Mamba) layers need the hybrid KV cache manager"
    elif not has_full:
        reason = "windowed layers are allocated as full attention only next to a full layer"
    else:
        reason = "the layers still differ in page_size (tokens per page) or kind"
    raise InvalidArgumentError(
        "the hybrid KV cache manager is disabled, but vLLM 0.33 cannot give these layers one "
        f'spec: {reason} ("Failed to promote local KV cache specs to one unified type.")'
    )


def _full_allocation_fallback(
    specs: dict[str, CacheSpec],
) -> list[tuple[CacheSpec, list[str]]] | None:
    """MLA next to sliding-window layers whose pages cannot be unified: one full-allocation group.

    vLLM 0.33's ``_try_get_full_allocation_fallback_groups``: only for MLA plus ordinary
    sliding-window layers (no chunked ones); the sliding layers are promoted as with the hybrid
    manager disabled, and every layer goes in one uniform-type group.
    """
    distinct = list(_distinct(specs))
    if any(isinstance(spec, ChunkedLocalAttentionSpec) for spec in distinct):
        return None
    has_mla = any(isinstance(s, FullAttentionSpec) and s.use_mla for s in distinct)
    if not has_mla or not any(isinstance(spec, SlidingWindowSpec) for spec in distinct):
        return None
    try:
        promoted = unify_hybrid_specs(specs)
    except InvalidArgumentError:
        return None
    uniform = _uniform_type(promoted, list(_distinct(promoted)))
    return None if uniform is None else [(uniform, list(specs))]


def _merge_key(spec: CacheSpec) -> tuple[Any, ...]:
    """What specs must share to merge: their class and every field a merge does not fill in."""
    mergeable = type(spec)._MERGEABLE
    return (type(spec), *(v for k, v in spec.__dict__.items() if k not in mergeable))


def _buckets(unified: dict[CacheSpec, list[str]]) -> list[tuple[list[CacheSpec], list[str]]]:
    """Buckets of equal specs, one joining an earlier one when their specs merge (step 4).

    Each bucket's layers keep vLLM's order: its own layers, then those of buckets it took in.
    vLLM 0.33 (``_get_kv_cache_groups_uniform_page_size``, kv_cache_planning.py) tries every
    earlier bucket in turn; only buckets whose specs could merge are tried here, with the same
    outcome: the keys of ``unified`` differ, and unequal specs merge only when they share
    their class and every field but the ones a merge fills in (``_MERGEABLE``: the windows a
    full-attention spec records) — and those hold no two different values.  Linear in the
    number of distinct specs where trying every bucket was quadratic.
    """
    joined: list[tuple[list[CacheSpec], list[str]]] = []
    merged: list[CacheSpec] = []
    by_key: dict[tuple[Any, ...], list[int]] = {}  # earlier buckets a spec might merge into
    for spec, layers in unified.items():
        mergeable = type(spec)._MERGEABLE
        candidates = by_key.setdefault(_merge_key(spec), []) if mergeable else []
        for index in candidates:
            earlier = merged[index]
            if any(
                (mine := getattr(spec, field)) is not None
                and (theirs := getattr(earlier, field)) is not None
                and mine != theirs
                for field in mergeable
            ):
                continue  # two values of one field: the merge would fail
            try:
                merged[index] = merge_specs([earlier, spec])
            except SpecMergeError:
                continue
            joined[index][0].append(spec)
            joined[index][1].extend(layers)
            break
        else:
            candidates.append(len(merged))
            merged.append(spec)
            joined.append(([spec], list(layers)))
    return joined


def hybrid_groups(specs: dict[str, CacheSpec]) -> list[tuple[CacheSpec, list[str]]]:
    """Page-table groups as vLLM 0.33's hybrid allocator forms them (steps 1 to 4 of the planner).

    One spec for every layer if they all merge; else one uniform-type group for one family of
    mixed geometry; else pages made one size (or, for MLA beside sliding layers whose pages
    cannot be, one full-allocation group), equal specs bucketed, and buckets split into groups
    of about the smallest bucket's size.  No layers, no groups (an attention-free model).

    >>> from kvschema import FullAttentionSpec, SlidingWindowSpec
    >>> full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> local = SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16",
    ...                           sliding_window=1024)
    >>> groups = hybrid_groups({f"l{i}": full if i % 3 == 2 else local for i in range(6)})
    >>> [(spec.kind, names) for spec, names in groups]
    [('sliding_window', ['l0', 'l3']), ('sliding_window', ['l1', 'l4']), ('full_attention', ['l2', 'l5'])]
    """
    if not specs:
        return []
    buckets = _distinct(specs)
    distinct = list(buckets)
    one = _one_spec(distinct)  # 1. one spec for every layer
    if one is not None:
        return [(one, list(specs))]
    uniform = _uniform_type(specs, distinct)  # 2. one family, mixed geometry
    if uniform is not None:
        return [(uniform, list(specs))]
    page_bytes = [spec.page_size_bytes for spec in distinct]  # 3. one page size
    largest = max(page_bytes)
    unified: dict[CacheSpec, list[str]] = {}
    try:
        for (spec, names), page in zip(buckets.items(), page_bytes, strict=True):
            same = _unify_pages(spec, largest, names[0], page)
            unified.setdefault(same, []).extend(names)
    except _Unpaddable as err:
        fallback = _full_allocation_fallback(specs)
        if fallback is None:
            raise InvalidArgumentError(str(err)) from None
        return fallback
    if len(unified) < len(buckets):  # specs that became equal: their layers in layer order
        order = {name: index for index, name in enumerate(specs)}
        unified = {spec: sorted(names, key=order.__getitem__) for spec, names in unified.items()}
    joined = _buckets(unified)  # 4. equal groups
    sizes = [len(layers) for _, layers in joined]
    group_size = min(sizes)
    if max(sizes) < group_size * 1.5:
        group_size = max(sizes)
    groups: list[tuple[CacheSpec, list[str]]] = []
    for members, layers in joined:
        count = _cdiv(len(layers), group_size)
        spec_of = {n: m for m in members for n in unified[m]} if len(members) > 1 else {}
        for i in range(count):
            names = layers[i::count]
            if not spec_of:
                groups.append((members[0], names))
                continue
            # each group's spec merges its own layers' specs, as vLLM's does
            own = {id(spec_of[n]): spec_of[n] for n in names}
            groups.append((merge_specs(list(own.values())), names))
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
