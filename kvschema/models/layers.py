"""What one decoder layer keeps, as a family reader describes it, before tp and paging.

A reader (:mod:`kvschema.models.readers`, :mod:`kvschema.models.hybrids`) turns a config into one
:class:`Layer` per decoder layer: the caches it holds — :class:`Attention` (K/V per token, or one
MLA latent) and :class:`State` (a recurrent mixer's state per request) — or none, or the index of
an earlier layer whose KV cache it reads (vLLM's ``kv_sharing_target_layer_name``).
:func:`kvschema.models.hf.layers_from_hf_config` turns them into per-rank specs.

>>> layer = one(Attention("sliding", kv_heads=8, head_size=128, window=4096))
>>> layer.caches[0][1].kind, layer.shares
('sliding', None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kvschema.models.fields import Fields
from kvschema.models.mixers import Mixer

__all__ = [
    "NO_CACHE",
    "Attention",
    "Layer",
    "State",
    "gqa",
    "layer_types",
    "one",
    "window_of",
    "windows",
]

AttentionKind = Literal["full", "sliding", "chunked", "mla"]


@dataclass(frozen=True)
class Attention:
    """An attention cache: ``kv_heads`` (whole model) x K of ``head_size`` and V of
    ``head_size_v`` (None: the same) per token, or one MLA latent of ``head_size``.

    ``sharded=False`` keeps the heads whole on every rank (MLA latents, vLLM's
    ``max_tp_shards=1``); ``dtype`` fixes the cache dtype whatever ``kv_cache_dtype`` says (the
    sparse-attention indexer's uint8); ``sparse_mla`` marks the MLA cache of a DeepSeek
    sparse-attention model, whose quantized cache vLLM stores as ``fp8_ds_mla`` records.

    >>> Attention("mla", kv_heads=1, head_size=576, sharded=False).head_size
    576
    """

    kind: AttentionKind
    kv_heads: int
    head_size: int
    head_size_v: int | None = None
    window: int | None = None
    sharded: bool = True
    dtype: str | None = None
    sparse_mla: bool = False


@dataclass(frozen=True)
class State:
    """A recurrent mixer's state: ``inputs`` are the keyword arguments of its
    :mod:`kvschema.models.mixers` shape function (less tp); ``ssm_dtype`` the family's own SSM
    dtype, used when ``mamba_ssm_cache_dtype`` is ``auto``.

    >>> State("short_conv", (("intermediate_size", 2048), ("conv_kernel", 3))).mixer
    'short_conv'
    """

    mixer: Mixer
    inputs: tuple[tuple[str, int], ...]
    ssm_dtype: str | None = None


Cache = Attention | State


@dataclass(frozen=True)
class Layer:
    """One decoder layer: its caches by name suffix (``""`` when it holds one), or none.

    ``shares`` is the index of the layer whose KV cache it reads instead of holding its own;
    ``caches`` then describes the attention it computes (what a mask describes), not memory.

    >>> NO_CACHE.caches, NO_CACHE.shares
    ((), None)
    """

    caches: tuple[tuple[str, Cache], ...] = ()
    shares: int | None = None


NO_CACHE = Layer()


def one(cache: Cache, *, shares: int | None = None) -> Layer:
    """A layer holding one cache (or reading layer ``shares``'s).

    >>> one(State("mamba1", ()), shares=None).caches[0][0]
    ''
    """
    return Layer((("", cache),), shares)


def gqa(
    fields: Fields,
    *,
    head_dim: Literal["config", "hidden"] = "config",
    kv: str = "num_key_value_heads",
    heads: str = "num_attention_heads",
    hidden: str = "hidden_size",
) -> tuple[int, int]:
    """(KV heads, head size) as most vLLM modules read them.

    KV heads: ``kv`` (absent or null: the attention heads, as the config classes fill it in);
    head size: ``head_dim`` when set (``head_dim="config"``, vLLM's ``head_dim or hidden //
    heads``), else — or always, for modules that ignore ``head_dim`` (``head_dim="hidden"``) —
    ``hidden_size // num_attention_heads``, floored as the modules floor it.

    >>> gqa(Fields({"num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096,
    ...             "head_dim": 64}, "qwen2"), head_dim="hidden")
    (8, 128)
    """
    count = fields.int(heads)
    kv_heads = fields.optional_int(kv) or count
    size = fields.optional_int("head_dim") if head_dim == "config" else None
    if size is None:
        width = fields.int(hidden)
        size = width // count  # floored, as vLLM's modules and transformers' modeling floor it
        if size == 0:
            raise fields.error(
                f"no head_dim, and {hidden} {width} over {heads} {count} leaves no head size",
                field=hidden,
            )
    return kv_heads, size


def window_of(fields: Fields, name: str = "sliding_window") -> int | None:
    """A sliding window, None when unset, null or 0 (vLLM's ``ModelConfig`` turns a 0 window off).

    >>> window_of(Fields({"sliding_window": 0}, "mistral")) is None
    True
    """
    value = fields.optional_int(name, minimum=0)
    return value or None


_WINDOW_TYPES = {"full_attention": False, "sliding_attention": True}

#: transformers 5 renames these layer types wherever a config holds them
#: (``configuration_utils._LEGACY_LAYER_TYPE_REMAP``).
LEGACY_LAYER_TYPES = {
    "mamba": "linear_attention",
    "attention": "full_attention",
    "deepseek_sparse_attention": "indexed_attention",
    "qwen_sparse_attention": "indexed_attention",
}


def layer_types(fields: Fields, count: int, name: str = "layer_types") -> list[str] | None:
    """The config's ``layer_types`` (None when absent or null; legacy names renamed as
    transformers renames them), checked to list ``count`` strings.

    >>> layer_types(Fields({"layer_types": ["mamba", "attention"]}, "x"), 2)
    ['linear_attention', 'full_attention']
    """
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != count:
        got = f"{len(value)}" if isinstance(value, list) else repr(value)[:40]
        raise fields.error(f"{name} must list {count} entries, got {got}", field=name)
    odd = sorted({repr(t)[:40] for t in value if not isinstance(t, str)})
    if odd:
        raise fields.error(f"{name} must list strings, got {', '.join(odd)}", field=name)
    return [LEGACY_LAYER_TYPES.get(str(t), str(t)) for t in value]


def windows(
    fields: Fields,
    count: int,
    *,
    layer_types: list[str] | None,
    per_layer: bool,
    window: int | None,
    offset: int = 0,
) -> list[int | None]:
    """Each layer's window as vLLM 0.33 sets it.

    ``layer_types`` is the list the transformers config holds (the file's, else the one the
    config class generates; None when it has none), ``window`` its ``sliding_window`` (see
    :func:`window_of`).  The model-wide window
    (``CacheConfig.sliding_window``) is ``window`` only when ``layer_types`` is absent
    or all ``sliding_attention`` (``vllm/engine/arg_utils.py``), and every layer without a
    window of its own takes it (``Attention.__init__``).  Modules that read ``layer_types``
    (``per_layer=True``: Llama, Gemma 2/3, Granite, …) give each ``sliding_attention`` layer
    ``window + offset`` (Cohere 2 adds 1).

    >>> f = Fields({}, "gemma2")
    >>> windows(f, 2, layer_types=["sliding_attention", "full_attention"], per_layer=True,
    ...         window=512)
    [512, None]
    >>> windows(f, 2, layer_types=["sliding_attention", "full_attention"], per_layer=False,
    ...         window=512)
    [None, None]
    """
    sliding = (
        [False] * count
        if layer_types is None
        else [_WINDOW_TYPES[t] for t in _known_types(fields, layer_types, count)]
    )
    model_wide = window if layer_types is None or all(sliding) else None
    out: list[int | None] = []
    for is_sliding in sliding:
        own = window + offset if per_layer and is_sliding and window is not None else None
        out.append(own if own is not None else model_wide)
    return out


def _known_types(fields: Fields, layer_types: list[str], count: int) -> list[str]:
    unknown = sorted({repr(t)[:40] for t in layer_types if t not in _WINDOW_TYPES})
    if len(layer_types) != count or unknown:
        raise fields.error(
            f"layer_types must list {count} entries from full_attention, sliding_attention; "
            f"got {len(layer_types)}" + (f" with unknown {', '.join(unknown)}" if unknown else ""),
            field="layer_types",
        )
    return layer_types
