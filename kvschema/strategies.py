"""Hypothesis strategies for kvschema's models, for property tests (yours and ours).

Needs hypothesis (``pip install 'kvschema[test]'``).

>>> from hypothesis import given
>>> from kvschema import parse_spec
>>> @given(cache_specs())
... def test_round_trip(spec):
...     assert parse_spec(spec.model_dump_json()) == spec
>>> test_round_trip()
"""

from __future__ import annotations

from math import prod
from typing import Any

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "kvschema.strategies needs hypothesis; install it with: pip install 'kvschema[test]'"
    ) from exc

from kvschema.layout.config import CacheGroupsConfig, CacheGroupSpec
from kvschema.layout.masks import AttnMaskType, MaskDetail
from kvschema.spec.attention import MLA_CACHE_FORMATS
from kvschema.spec.dtypes import DTYPE_ALIASES, DTYPE_SIZES, dtype_size
from kvschema.spec.union import (
    CacheSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    MambaSpec,
    SlidingWindowSpec,
    UniformTypeSpec,
)

__all__ = [
    "attention_geometries",
    "attention_layouts",
    "cache_group_specs",
    "cache_groups_configs",
    "cache_specs",
    "chunked_local_attention_specs",
    "dtype_inputs",
    "dtypes",
    "full_attention_specs",
    "kv_sharing_maps",
    "layer_specs",
    "mamba_specs",
    "mask_details",
    "sliding_window_specs",
    "uniform_type_specs",
]

#: Canonical dtype names.
dtypes = st.sampled_from(sorted(DTYPE_SIZES))
#: Anything a document may name a dtype with: canonical names and aliases.
dtype_inputs = st.sampled_from(sorted({*DTYPE_SIZES, *DTYPE_ALIASES}))

_page_sizes = st.sampled_from([1, 8, 16, 32, 64, 128, 256]) | st.integers(1, 4096)
_heads = st.sampled_from([1, 2, 4, 8, 16, 32]) | st.integers(1, 256)
_head_sizes = st.sampled_from([64, 80, 96, 128, 192, 256, 576]) | st.integers(1, 1024)
_windows = st.sampled_from([128, 512, 1024, 2047, 4096, 8192]) | st.integers(1, 1 << 20)


def attention_geometries() -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments shared by attention specs: page size, heads, head size, dtype."""
    return st.fixed_dictionaries(
        {
            "page_size": _page_sizes,
            "num_kv_heads": _heads,
            "head_size": _head_sizes,
            "dtype": dtypes,
        }
    )


@st.composite
def attention_layouts(draw: st.DrawFn, *, mla: bool | None = None) -> dict[str, Any]:
    """How K and V are stored: ``use_mla``, and sometimes ``head_size_v`` (not MLA) or an MLA
    ``cache_dtype_str``.  ``mla`` fixes MLA on or off; None draws it.

    >>> from hypothesis import find
    >>> find(attention_layouts(), lambda layout: "cache_dtype_str" in layout)
    {'use_mla': True, 'cache_dtype_str': 'fp8_ds_mla'}
    """
    use_mla = draw(st.booleans()) if mla is None else mla
    if use_mla:
        record = draw(st.none() | st.sampled_from(sorted(MLA_CACHE_FORMATS)))
        return {"use_mla": True} if record is None else {"use_mla": True, "cache_dtype_str": record}
    v_size = draw(st.none() | _head_sizes)
    return {} if v_size is None else {"head_size_v": v_size}


@st.composite
def full_attention_specs(draw: st.DrawFn) -> FullAttentionSpec:
    """Full-attention specs, MLA or not, recording a window, a chunk size or neither.

    Some have V heads of their own size (``head_size_v``), some MLA ones a record format
    (``cache_dtype_str``).
    """
    recorded = draw(
        st.sampled_from(["none", "window", "chunk"]).flatmap(
            lambda which: st.fixed_dictionaries(
                {}
                if which == "none"
                else {"sliding_window" if which == "window" else "attention_chunk_size": _windows}
            )
        )
    )
    return FullAttentionSpec(
        **draw(attention_geometries()), **draw(attention_layouts()), **recorded
    )


def sliding_window_specs() -> st.SearchStrategy[SlidingWindowSpec]:
    """Sliding-window specs, some with V heads of their own size."""
    return st.builds(
        lambda geometry, layout, window: SlidingWindowSpec(
            **geometry, **layout, sliding_window=window
        ),
        attention_geometries(),
        attention_layouts(mla=False),
        _windows,
    )


def chunked_local_attention_specs() -> st.SearchStrategy[ChunkedLocalAttentionSpec]:
    """Chunked local-attention specs, MLA or not."""
    return st.builds(
        lambda geometry, chunk, layout: ChunkedLocalAttentionSpec(
            **geometry, attention_chunk_size=chunk, **layout
        ),
        attention_geometries(),
        _windows,
        attention_layouts(),
    )


@st.composite
def mamba_specs(draw: st.DrawFn) -> MambaSpec:
    """Recurrent-state specs with one to three states, sometimes padded, in either cache mode."""
    shapes = draw(
        st.lists(
            st.lists(st.integers(1, 512), min_size=1, max_size=3).map(tuple), min_size=1, max_size=3
        )
    )
    if draw(st.booleans()):
        dtype = draw(dtypes)
        form: dict[str, Any] = {"dtype": dtype}
        raw = sum(prod(shape) for shape in shapes) * dtype_size(dtype)
    else:
        per_state = draw(st.lists(dtypes, min_size=len(shapes), max_size=len(shapes)))
        form = {"dtypes": tuple(per_state)}
        raw = sum(prod(s) * dtype_size(d) for s, d in zip(shapes, per_state, strict=True))
    padded = draw(st.none() | st.integers(raw, raw * 2))
    mode = draw(st.sampled_from(["none", "align"]))
    return MambaSpec(
        page_size=draw(_page_sizes),
        shapes=tuple(shapes),
        page_size_padded=padded,
        mamba_cache_mode=mode,
        num_speculative_blocks=draw(st.integers(0, 3)),
        num_prefill_checkpoint_blocks=draw(st.integers(0, 1)) if mode == "align" else 0,
        **form,
    )


@st.composite
def uniform_type_specs(draw: st.DrawFn) -> UniformTypeSpec:
    """Uniform-type specs: 1..6 attention layers of one family and page size, geometry varying."""
    family = draw(st.sampled_from(["full", "window", "chunk"]))
    page_size, extra = draw(_page_sizes), draw(_windows)
    members: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 6))):
        geometry = {**draw(attention_geometries()), "page_size": page_size}
        if family == "window":
            members[f"layer.{index}"] = SlidingWindowSpec(**geometry, sliding_window=extra)
        elif family == "chunk":
            members[f"layer.{index}"] = ChunkedLocalAttentionSpec(
                **geometry, attention_chunk_size=extra
            )
        else:
            members[f"layer.{index}"] = FullAttentionSpec(**geometry, **draw(attention_layouts()))
    return UniformTypeSpec(page_size=page_size, kv_cache_specs=members)


def layer_specs() -> st.SearchStrategy[CacheSpec]:
    """Any valid per-layer spec: full, sliding, chunked or Mamba."""
    return st.one_of(
        full_attention_specs(),
        sliding_window_specs(),
        chunked_local_attention_specs(),
        mamba_specs(),
    )


def cache_specs() -> st.SearchStrategy[CacheSpec]:
    """Any valid spec, uniform-type group specs included."""
    return st.one_of(layer_specs(), uniform_type_specs())


@st.composite
def kv_sharing_maps(
    draw: st.DrawFn, targets: list[str], *, first: int, max_size: int = 4
) -> dict[str, str] | None:
    """Sometimes None, else ``layer.{first}``, ``layer.{first + 1}``… each sharing the KV cache
    of one of ``targets`` (layers of an attention group).

    >>> from hypothesis import find
    >>> find(kv_sharing_maps(["layer.0"], first=1), lambda sharing: sharing is not None)
    {'layer.1': 'layer.0'}
    """
    count = draw(st.integers(0, max_size))
    if not count:
        return None
    return {f"layer.{first + i}": draw(st.sampled_from(targets)) for i in range(count)}


def _shares_kv(spec: CacheSpec) -> bool:
    """Whether layers of a group of ``spec`` may share their KV cache (attention layers do)."""
    return not isinstance(spec, MambaSpec)


@st.composite
def cache_group_specs(draw: st.DrawFn) -> CacheGroupSpec:
    """Groups of one spec and 1..16 distinct layer names; attention groups sometimes with
    layers that share a member's KV cache (``kv_sharing``)."""
    spec = draw(cache_specs())
    if isinstance(spec, UniformTypeSpec):
        names = list(spec.kv_cache_specs)
    else:
        names = [f"layer.{i}" for i in range(draw(st.integers(1, 16)))]
    sharing = draw(kv_sharing_maps(names, first=len(names))) if _shares_kv(spec) else None
    return CacheGroupSpec(kv_cache_spec=spec, layer_names=names, kv_sharing=sharing)


@st.composite
def cache_groups_configs(draw: st.DrawFn, max_layers: int = 64) -> CacheGroupsConfig:
    """Whole configs: one to four groups with distinct type_ids over ``layer.0..n-1``.

    Sometimes a lone uniform-type group, whose layer names are its members; attention groups
    sometimes with layers sharing a member's KV cache (named after every group's layers).
    """
    num_pages = draw(st.integers(1, 1 << 20))
    if draw(st.integers(0, 9)) == 0:
        uniform = draw(uniform_type_specs())
        members = list(uniform.kv_cache_specs)
        shared = draw(kv_sharing_maps(members, first=len(members)))
        return CacheGroupsConfig(
            num_pages=num_pages,
            kv_cache_groups=[
                CacheGroupSpec(kv_cache_spec=uniform, layer_names=members, kv_sharing=shared)
            ],
        )
    specs = draw(st.lists(layer_specs(), min_size=1, max_size=4, unique_by=lambda s: s.type_id))
    if len(specs) == 1 and draw(st.booleans()):
        return CacheGroupsConfig(
            num_pages=num_pages, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=specs[0])]
        )
    count = draw(st.integers(len(specs), max(len(specs), max_layers)))
    owners = list(range(len(specs))) + draw(
        st.lists(
            st.integers(0, len(specs) - 1), min_size=count - len(specs), max_size=count - len(specs)
        )
    )
    owners = draw(st.permutations(owners))
    names: list[list[str]] = [[] for _ in specs]
    for index, owner in enumerate(owners):
        names[owner].append(f"layer.{index}")
    sharing: list[dict[str, str] | None] = []
    for spec, group in zip(specs, names, strict=True):
        first = count + sum(len(m or ()) for m in sharing)  # sharing layers named after the rest
        sharing.append(draw(kv_sharing_maps(group, first=first)) if _shares_kv(spec) else None)
    return CacheGroupsConfig(
        num_pages=num_pages,
        kv_cache_groups=[
            CacheGroupSpec(kv_cache_spec=spec, layer_names=group, kv_sharing=shared)
            for spec, group, shared in zip(specs, names, sharing, strict=True)
        ],
    )


@st.composite
def mask_details(draw: st.DrawFn, max_layers: int = 48) -> dict[int, MaskDetail]:
    """Mask details for layers ``0..n-1``: full, sliding (a few windows) and chunked layers.

    Full layers sometimes carry the model's global window in ``size``, as EasyDeL hands it.
    """
    count = draw(st.integers(1, max_layers))
    windows = draw(st.lists(_windows, min_size=1, max_size=3, unique=True))
    chunks = draw(st.lists(_windows, min_size=1, max_size=2, unique=True))
    details = {}
    for index in range(count):
        kind = draw(st.sampled_from(list(AttnMaskType)))
        if kind is AttnMaskType.FULL:
            detail = MaskDetail(mask_type=kind, size=draw(st.none() | st.sampled_from(windows)))
        elif kind is AttnMaskType.SLIDING:
            detail = MaskDetail(mask_type=kind, size=draw(st.sampled_from(windows)))
        else:
            detail = MaskDetail(mask_type=kind, chunks=draw(st.sampled_from(chunks)))
        details[index] = detail
    return details
