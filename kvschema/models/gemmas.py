"""Gemma 3n and Gemma 4: per-layer geometry and KV sharing (the last layers read earlier ones').

A layer that shares another's KV cache holds none of its own: vLLM 0.33 builds it with
``kv_sharing_target_layer_name`` and gives it no spec (``GPUModelRunner.get_kv_cache_spec``);
:func:`kvschema.planning.plan_cache` does the same with the map ``HFLayers.kv_sharing`` carries.

>>> from kvschema.models.fields import Fields
>>> layers = gemma3n(Fields({"num_hidden_layers": 10, "num_kv_shared_layers": 5,
...     "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 256,
...     "sliding_window": 512}, "gemma3n_text"))
>>> [layer.shares for layer in layers][-5:]
[3, 3, 3, 3, 4]
"""

from __future__ import annotations

from typing import Any

from kvschema.models.fields import Fields
from kvschema.models.layers import Attention, Layer, gqa, layer_types, one, window_of
from kvschema.models.readers import every

__all__ = ["gemma3n", "gemma4", "gemma4_assistant"]

_TYPES = {"full_attention": "full", "sliding_attention": "sliding"}


def _types(fields: Fields, count: int, period: int) -> list[str]:
    """The config's ``layer_types`` (full / sliding only), else every ``period``-th layer full."""
    types = layer_types(fields, count) or every(period, full_at=0)(fields, count)
    unknown = sorted({repr(t)[:40] for t in types if t not in _TYPES})
    if unknown:
        raise fields.error(
            f"layer_types must list full_attention / sliding_attention, got {', '.join(unknown)}",
            field="layer_types",
        )
    return types


def _causal(fields: Fields) -> None:
    mode = fields.get("use_bidirectional_attention")
    if mode is True or mode == "all" or fields.get("is_causal") is False:
        raise fields.error(
            f"bidirectional attention (use_bidirectional_attention {mode!r}): an encoder, which "
            "vLLM serves without a KV cache",
            field="use_bidirectional_attention",
        )


def _shared(fields: Fields, count: int) -> int:
    """Index of the first layer that reads an earlier layer's KV (``count`` when none)."""
    shared = fields.int("num_kv_shared_layers", default=0, minimum=0, maximum=count)
    return count - shared


def gemma3n(fields: Fields) -> list[Layer]:
    """Gemma 3n (``gemma3n.py``, ``Gemma3nAttention``): every 5th layer full, the rest sliding
    (``configuration_gemma3n.py``); the last ``num_kv_shared_layers`` layers keep no cache and
    read layer ``first - 2`` when sliding, ``first - 1`` when full (vLLM's rule, written for the
    4:1 pattern; for the released configs it is transformers' "last layer of the same type"; a
    config where it would point a layer at one of the other type is refused).

    >>> layers = gemma3n(Fields({"num_hidden_layers": 35, "num_kv_shared_layers": 15,
    ...     "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 256,
    ...     "sliding_window": 512}, "gemma3n_text"))
    >>> sum(layer.shares is None for layer in layers), layers[20].shares, layers[24].shares
    (20, 18, 19)
    """
    _causal(fields)
    count = fields.layers()
    kv, head = gqa(fields)
    window = window_of(fields)
    types = _types(fields, count, 5)
    first = _shared(fields, count)
    layers = []
    for index, kind in enumerate(types):
        sliding = kind == "sliding_attention" and window is not None
        cache = Attention(
            "sliding" if sliding else "full",
            kv_heads=kv,
            head_size=head,
            window=window if sliding else None,
        )
        target = None
        if index >= first:
            target = first - (2 if sliding else 1)
            if target < 0 or types[target] != kind:
                raise fields.error(
                    f"layer {index} ({kind}) would read layer {target}'s KV: vLLM's rule "
                    "(num_hidden_layers - num_kv_shared_layers - 2 for a sliding layer, - 1 for "
                    "a full one) assumes the released 4:1 pattern, which num_kv_shared_layers "
                    f"{count - first} and these layer types do not fit",
                    field="num_kv_shared_layers",
                )
        layers.append(one(cache, shares=target))
    return layers


def _overrides(fields: Fields, types: list[str]) -> dict[int, dict[str, Any]]:
    """Each layer's ``head_dim`` / ``num_key_value_heads`` overrides, as transformers 5's
    ``Gemma4TextConfig`` resolves them (``configuration_gemma4.py``, ``__post_init__``).

    A ``per_layer_config`` (what transformers 5 saves: ``{"05": {"head_dim": 512}, …}``) is
    taken as written; without one every full-attention layer gets ``global_head_dim`` (512 when
    absent) and, with ``attention_k_eq_v``, ``num_global_key_value_heads`` KV heads.
    """
    count = len(types)
    if fields.get("per_layer_config") is None:
        overrides: dict[str, Any] = {"head_dim": fields.int("global_head_dim", default=512)}
        if fields.flag("attention_k_eq_v", False):
            global_kv = fields.optional_int("num_global_key_value_heads")
            if global_kv is not None:
                overrides["num_key_value_heads"] = global_kv
        return {i: overrides for i, kind in enumerate(types) if kind == "full_attention"}
    found: dict[int, dict[str, Any]] = {}
    for key, value in fields.mapping("per_layer_config").items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < count:
            raise fields.error(
                f"per_layer_config key {key!r} is not a layer index below {count}",
                field="per_layer_config",
            )
        layer = Fields(value if isinstance(value, dict) else {}, f"{fields.model_type} layer {key}")
        if not isinstance(value, dict):
            raise fields.error(
                f"per_layer_config[{key!r}] must be an object, got {value!r:.40}",
                field="per_layer_config",
            )
        moved = sorted({"sliding_window", "attention_k_eq_v", "layer_types"} & set(value))
        if moved:
            raise fields.error(
                f"per_layer_config[{key!r}] overrides {', '.join(moved)}: vLLM 0.33 reads only "
                "head_dim and num_key_value_heads per layer",
                field="per_layer_config",
            )
        found[index] = {
            name: layer.int(name) for name in ("head_dim", "num_key_value_heads") if name in value
        }
    return found


def gemma4(fields: Fields) -> list[Layer]:
    """Gemma 4 text (``gemma4.py``): every 6th layer full and the last one always
    (``configuration_gemma4.py``), the rest sliding; per-layer head size and KV heads
    (:func:`_overrides`; ``attention_k_eq_v`` stores K in both slots — the cache still holds K
    and V); the last ``num_kv_shared_layers`` layers read the last earlier layer of their type.

    >>> layers = gemma4(Fields({"num_hidden_layers": 6, "num_attention_heads": 8,
    ...     "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 512}, "gemma4_text"))
    >>> [(c.kind, c.head_size) for layer in layers for _, c in layer.caches][-2:]
    [('sliding', 256), ('full', 512)]
    """
    _causal(fields)
    count = fields.layers()
    kv, head = gqa(fields)
    window = window_of(fields)
    types = _types(fields, count, 6)
    types[-1] = "full_attention"  # transformers forces the last layer to full attention
    overrides = _overrides(fields, types)
    first = _shared(fields, count)
    if first == 0:
        raise fields.error(
            "num_kv_shared_layers equals num_hidden_layers: every layer reads another model's "
            "KV (a Gemma 4 assistant); vLLM serves it only as a draft (gemma4_assistant)",
            field="num_kv_shared_layers",
        )
    layers = []
    for index, kind in enumerate(types):
        sliding = kind == "sliding_attention" and window is not None
        own = overrides.get(index, {})
        cache = Attention(
            "sliding" if sliding else "full",
            kv_heads=own.get("num_key_value_heads", kv),
            head_size=own.get("head_dim", head),
            window=window if sliding else None,
        )
        target = None
        if index >= first:
            earlier = types[:first]
            if kind not in earlier:
                raise fields.error(
                    f"layer {index} ({kind}) shares KV, but no layer before {first} is "
                    f"{kind} to share it from",
                    field="num_kv_shared_layers",
                )
            target = first - 1 - earlier[::-1].index(kind)
        layers.append(one(cache, shares=target))
    return layers


def gemma4_assistant(fields: Fields) -> list[Layer]:
    """A Gemma 4 assistant (draft) model: every layer reads its target's KV
    (``Gemma4AssistantConfig`` shares them all; vLLM's ``Gemma4MTPModel``): no cache of its own.

    >>> gemma4_assistant(Fields({"num_hidden_layers": 4}, "gemma4_text"))[0].caches
    ()
    """
    return [Layer()] * fields.layers()
