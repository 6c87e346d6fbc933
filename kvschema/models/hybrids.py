"""Recurrent families: Mamba-1, Mamba-2, short-conv and gated delta-net states beside attention.

What ``linear_attention`` means depends on the family — Mamba-1 (Jamba), Mamba-2 (Nemotron-H,
Granite 4.0-H, Zamba2), gated delta-net (Qwen3-Next, Qwen3.5, OLMo-Hybrid), Kimi delta attention
(Kimi-Linear, :mod:`kvschema.models.mla`) — so each reader names its own mixer and reads its own fields, as the vLLM 0.33
module's ``get_mamba_state_shape_from_config`` does (cited per reader).

>>> from kvschema.models.fields import Fields
>>> layers = mamba(Fields({"num_hidden_layers": 1, "intermediate_size": 1536,
...     "state_size": 16, "conv_kernel": 4}, "mamba"))
>>> layers[0].caches[0][1].mixer, dict(layers[0].caches[0][1].inputs)["intermediate_size"]
('mamba1', 1536)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from kvschema.models.fields import Fields
from kvschema.models.layers import (
    LEGACY_LAYER_TYPES,
    NO_CACHE,
    Attention,
    Layer,
    State,
    gqa,
    layer_types,
    one,
    window_of,
)
from kvschema.models.mixers import Mixer

__all__ = [
    "falcon_h1",
    "gated_delta",
    "granite_hybrid",
    "jamba",
    "lfm2",
    "mamba",
    "mamba2",
    "nemotron_h",
    "nemotron_nas",
    "zamba2",
]


def _state(mixer: Mixer, ssm_dtype: str | None = None, **inputs: int) -> State:
    return State(mixer, tuple(inputs.items()), ssm_dtype)


def _attn(kv: int, head: int, window: int | None = None) -> Attention:
    return Attention(
        "sliding" if window else "full", kv_heads=kv, head_size=head, window=window or None
    )


# -- Mamba ------------------------------------------------------------------------------------


def _mamba1(fields: Fields, intermediate: int, state: str, conv: str) -> State:
    return _state(
        "mamba1",
        intermediate_size=intermediate,
        state_size=fields.int(state),
        conv_kernel=fields.int(conv),
    )


def mamba(fields: Fields) -> list[Layer]:
    """Mamba / Falcon-Mamba (``mamba.py``): every layer Mamba-1 — ``intermediate_size``,
    ``state_size``, ``conv_kernel`` (the config class sets ``intermediate_size`` to
    ``expand x hidden_size`` when absent).

    >>> len(mamba(Fields({"num_hidden_layers": 2, "hidden_size": 768, "expand": 2,
    ...     "state_size": 16, "conv_kernel": 4}, "mamba")))
    2
    """
    count = fields.layers()
    intermediate = fields.optional_int("intermediate_size") or (
        fields.int("expand") * fields.int("hidden_size")
    )
    return [one(_mamba1(fields, intermediate, "state_size", "conv_kernel"))] * count


def jamba(fields: Fields) -> list[Layer]:
    """Jamba (``jamba.py``): attention where ``i % attn_layer_period == attn_layer_offset``
    (``JambaConfig.layers_block_type``), Mamba-1 elsewhere (``mamba_expand x hidden_size``,
    ``mamba_d_state``, ``mamba_d_conv``); attention ``num_key_value_heads``, ``hidden_size //
    heads``.

    >>> [l.caches[0][1].__class__.__name__ for l in jamba(Fields({"num_hidden_layers": 2,
    ...     "attn_layer_period": 2, "attn_layer_offset": 1, "hidden_size": 64,
    ...     "num_attention_heads": 4, "mamba_expand": 2, "mamba_d_state": 16,
    ...     "mamba_d_conv": 4}, "jamba"))]
    ['State', 'Attention']
    """
    count = fields.layers()
    period = fields.int("attn_layer_period")
    offset = fields.int("attn_layer_offset", minimum=0, maximum=period - 1)
    kv, head = gqa(fields, head_dim="hidden")
    state = _mamba1(
        fields,
        fields.int("mamba_expand") * fields.int("hidden_size"),
        "mamba_d_state",
        "mamba_d_conv",
    )
    return [one(_attn(kv, head)) if i % period == offset else one(state) for i in range(count)]


def _mamba2(fields: Fields, *, intermediate: int, heads: int, head_dim: int, **names: str) -> State:
    return _state(
        "mamba2",
        ssm_dtype=names.get("ssm_dtype"),
        intermediate_size=intermediate,
        n_groups=fields.int(names["groups"]),
        num_heads=heads,
        head_dim=head_dim,
        state_size=fields.int(names["state"]),
        conv_kernel=fields.int(names["conv"]),
    )


def mamba2(fields: Fields) -> list[Layer]:
    """Mamba-2 (``mamba2.py``): every layer Mamba-2 — ``expand x hidden_size``, ``n_groups``,
    ``num_heads``, ``head_dim``, ``state_size``, ``conv_kernel``.

    >>> len(mamba2(Fields({"num_hidden_layers": 1, "expand": 2, "hidden_size": 4096,
    ...     "n_groups": 8, "num_heads": 128, "head_dim": 64, "state_size": 128,
    ...     "conv_kernel": 4}, "mamba2")))
    1
    """
    count = fields.layers()
    state = _mamba2(
        fields,
        intermediate=fields.int("expand") * fields.int("hidden_size"),
        heads=fields.int("num_heads"),
        head_dim=fields.int("head_dim"),
        groups="n_groups",
        state="state_size",
        conv="conv_kernel",
    )
    return [one(state)] * count


def _auto_head(fields: Fields, intermediate: int, heads: int) -> int:
    """``mamba_d_head``: ``"auto"`` is ``intermediate // heads`` (the config classes derive it)."""
    value = fields.get("mamba_d_head")
    if value == "auto":
        return intermediate // heads
    return fields.int("mamba_d_head")


def granite_hybrid(fields: Fields) -> list[Layer]:
    """Granite 4.0-H (``granitemoehybrid.py``): ``layer_types`` (legacy ``mamba`` /
    ``attention`` renamed), all Mamba-2 by default; attention ``num_key_value_heads``,
    ``hidden_size // heads``; state ``mamba_expand x hidden_size``, ``mamba_n_groups``,
    ``mamba_n_heads``, ``mamba_d_head``, ``mamba_d_state``, ``mamba_d_conv``.

    >>> [type(c).__name__ for l in granite_hybrid(Fields({"num_hidden_layers": 2,
    ...     "layer_types": ["mamba", "attention"], "hidden_size": 64, "num_attention_heads": 4,
    ...     "mamba_expand": 2, "mamba_n_heads": 4, "mamba_d_head": "auto", "mamba_n_groups": 1,
    ...     "mamba_d_state": 16, "mamba_d_conv": 4}, "granitemoehybrid")) for _, c in l.caches]
    ['State', 'Attention']
    """
    count = fields.layers()
    types = layer_types(fields, count) or ["linear_attention"] * count

    def state() -> Layer:
        intermediate = fields.int("mamba_expand") * fields.int("hidden_size")
        heads = fields.int("mamba_n_heads")
        return one(
            _mamba2(
                fields,
                intermediate=intermediate,
                heads=heads,
                head_dim=_auto_head(fields, intermediate, heads),
                groups="mamba_n_groups",
                state="mamba_d_state",
                conv="mamba_d_conv",
            )
        )

    known = {"linear_attention": state, "full_attention": lambda: _attention(fields, "hidden")}
    return _pick(fields, known, types)


def _attention(
    fields: Fields, head_dim: Literal["config", "hidden"], window: bool = False
) -> Layer:
    """A full-attention layer of ``num_key_value_heads`` (windowed by ``sliding_window`` when
    ``window``)."""
    kv, head = gqa(fields, head_dim=head_dim)
    return one(_attn(kv, head, window_of(fields) if window else None))


def _pick(fields: Fields, known: dict[str, Callable[[], Layer]], kinds: list[str]) -> list[Layer]:
    """Each listed kind's layer, built once and only when listed (a family's fields for a kind
    it does not use are not required); an unknown kind is an error naming the ones this family
    has (and their legacy names, which transformers renames)."""
    unknown = sorted({repr(kind)[:40] for kind in kinds if kind not in known})
    if unknown:
        names = sorted({*known, *(old for old, new in LEGACY_LAYER_TYPES.items() if new in known)})
        raise fields.error(
            f"layer_types must list {len(kinds)} entries from {', '.join(names)}; got unknown "
            f"{', '.join(unknown)}",
            field="layer_types",
        )
    built = {kind: known[kind]() for kind in dict.fromkeys(kinds)}
    return [built[kind] for kind in kinds]


def falcon_h1(fields: Fields) -> list[Layer]:
    """Falcon-H1 (``falcon_h1.py``): every layer runs attention and Mamba-2 side by side
    (``layer.i.attn``, ``layer.i.mamba``); attention ``num_key_value_heads``, ``head_dim`` or
    ``hidden_size // heads``; state ``mamba_d_ssm`` (else ``mamba_expand x hidden_size``).

    >>> [n for n, _ in falcon_h1(Fields({"num_hidden_layers": 1, "hidden_size": 64,
    ...     "num_attention_heads": 4, "mamba_d_ssm": 128, "mamba_n_heads": 4,
    ...     "mamba_d_head": "auto", "mamba_n_groups": 1, "mamba_d_state": 16,
    ...     "mamba_d_conv": 4}, "falcon_h1"))[0].caches]
    ['.attn', '.mamba']
    """
    count = fields.layers()
    kv, head = gqa(fields)
    intermediate = fields.optional_int("mamba_d_ssm") or (
        fields.int("mamba_expand") * fields.int("hidden_size")
    )
    heads = fields.int("mamba_n_heads")
    state = _mamba2(
        fields,
        intermediate=intermediate,
        heads=heads,
        head_dim=_auto_head(fields, intermediate, heads),
        groups="mamba_n_groups",
        state="mamba_d_state",
        conv="mamba_d_conv",
    )
    return [Layer(((".attn", _attn(kv, head)), (".mamba", state)))] * count


_NEMOTRON = {"M": "linear_attention", "*": "full_attention", "-": "mlp", "E": "moe"}


def _either(fields: Fields, name: str, legacy: str) -> int:
    return fields.int(legacy) if legacy in fields and name not in fields else fields.int(name)


def nemotron_h(fields: Fields) -> list[Layer]:
    """Nemotron-H (``nemotron_h.py``): ``layers_block_type`` (transformers 5's form; the layer
    count is its length) or ``hybrid_override_pattern`` (``M`` Mamba-2, ``*`` attention, ``-``
    MLP and ``E`` MoE without a cache).  State ``mamba_num_heads x mamba_head_dim``,
    ``n_groups``, ``ssm_state_size``, ``conv_kernel`` (legacy ``mamba_n_groups`` /
    ``mamba_d_conv`` accepted), SSM state in ``mamba_ssm_cache_dtype`` (float32 when absent);
    attention ``num_key_value_heads``, ``head_dim`` or ``hidden_size // heads``, windowed by
    ``sliding_window`` when set.

    >>> [len(l.caches) for l in nemotron_h(Fields({"layers_block_type": ["mlp",
    ...     "full_attention"], "num_attention_heads": 4, "head_dim": 8}, "nemotron_h"))]
    [0, 1]
    """
    listed = next((n for n in ("layers_block_type", "layer_types") if n in fields.config), None)
    if listed is None and "hybrid_override_pattern" not in fields.config:
        listed = "layers_block_type"  # the config class's default
    if listed is not None:
        count = len(fields.sequence(listed))
        types = layer_types(fields, count, listed) or []
    else:
        pattern = fields.get("hybrid_override_pattern")
        given = fields.optional_int("num_hidden_layers", maximum=100_000)
        if (
            not isinstance(pattern, str)
            or (given is not None and len(pattern) != given)
            or set(pattern) - set(_NEMOTRON)
        ):
            size = "" if given is None else f"{given} "
            raise fields.error(
                f"hybrid_override_pattern must be {size}characters of M (Mamba), * (attention), "
                f"- (MLP) and E (MoE); got {pattern!r:.80}",
                field="hybrid_override_pattern",
            )
        types = [_NEMOTRON[c] for c in pattern]

    def state() -> Layer:
        heads = fields.int("mamba_num_heads")
        head_dim = fields.int("mamba_head_dim")
        legacy = {"n_groups": "mamba_n_groups", "conv_kernel": "mamba_d_conv"}
        names = {k: v if v in fields and k not in fields else k for k, v in legacy.items()}
        return one(
            _mamba2(
                fields,
                intermediate=heads * head_dim,
                heads=heads,
                head_dim=head_dim,
                groups=names["n_groups"],
                state="ssm_state_size",
                conv=names["conv_kernel"],
                ssm_dtype=fields.text("mamba_ssm_cache_dtype") or "float32",
            )
        )

    known = {
        "linear_attention": state,
        "full_attention": lambda: _attention(fields, "config", window=True),
        "mlp": lambda: NO_CACHE,
        "moe": lambda: NO_CACHE,
    }
    return _pick(fields, known, types)


def zamba2(fields: Fields) -> list[Layer]:
    """Zamba2 (``zamba2.py``): every layer Mamba-2; ``hybrid`` layers of ``layers_block_type``
    also run the shared attention block with a KV cache of their own (``layer.i.attn``,
    ``layer.i.mamba``): as many KV heads as heads, ``2 x hidden_size // heads`` each (the config
    class's ``attention_head_dim``).  State ``mamba_expand x hidden_size``, ``mamba_ngroups``,
    ``n_mamba_heads``, head ``mamba_expand x hidden_size // n_mamba_heads``.

    >>> [len(l.caches) for l in zamba2(Fields({"layers_block_type": ["mamba", "hybrid"],
    ...     "hidden_size": 64, "num_attention_heads": 4, "mamba_expand": 2, "mamba_ngroups": 1,
    ...     "n_mamba_heads": 2, "mamba_d_state": 16, "mamba_d_conv": 4}, "zamba2"))]
    [1, 2]
    """
    if fields.get("layers_block_type") is None:
        raise fields.error("layers_block_type missing: vLLM builds Zamba2's layers from it")
    count = len(fields.sequence("layers_block_type"))
    types = layer_types(fields, count, "layers_block_type") or []
    hidden = fields.int("hidden_size")
    heads = fields.int("num_attention_heads")
    intermediate = fields.int("mamba_expand") * hidden
    mamba_heads = fields.int("n_mamba_heads")
    state = _mamba2(
        fields,
        intermediate=intermediate,
        heads=mamba_heads,
        head_dim=intermediate // mamba_heads,
        groups="mamba_ngroups",
        state="mamba_d_state",
        conv="mamba_d_conv",
    )
    attn = _attn(heads, 2 * hidden // heads)
    known = {
        "linear_attention": lambda: one(state),
        "hybrid": lambda: Layer(((".attn", attn), (".mamba", state))),
    }
    return _pick(fields, known, types)


def lfm2(*, channels: str) -> Any:
    """LFM2 (``lfm2.py``, ``channels="conv_dim"``) and LFM2-MoE (``lfm2_moe.py``,
    ``"hidden_size"``): ``full_attention`` layers by ``layer_types`` (LFM2: else
    ``full_attn_idxs``, all layers when neither is set), short convolutions elsewhere, each
    with one state ``(conv_L_cache - 1, channels)``; attention ``num_key_value_heads``,
    ``hidden_size // heads``.

    >>> [type(l.caches[0][1]).__name__ for l in lfm2(channels="conv_dim")(Fields({
    ...     "num_hidden_layers": 2, "full_attn_idxs": [1], "hidden_size": 64,
    ...     "num_attention_heads": 4, "conv_dim": 64, "conv_L_cache": 3}, "lfm2"))]
    ['State', 'Attention']
    """

    def read(fields: Fields) -> list[Layer]:
        count = fields.layers()
        types = layer_types(fields, count)
        if types is None and channels == "conv_dim":
            full = (
                set(fields.ints("full_attn_idxs"))
                if fields.get("full_attn_idxs") is not None
                else set(range(count))
            )
            types = ["full_attention" if i in full else "conv" for i in range(count)]
        if types is None:
            raise fields.error("layer_types missing: vLLM reads each layer's kind from it")

        def conv() -> Layer:
            return one(
                _state(
                    "short_conv",
                    intermediate_size=fields.int(channels),
                    conv_kernel=fields.int("conv_L_cache"),
                )
            )

        known = {"full_attention": lambda: _attention(fields, "hidden"), "conv": conv}
        return _pick(fields, known, types)

    return read


def gated_delta(*, head_dim: Literal["config", "hidden"], ssm_field: str | None = None) -> Any:
    """Gated delta-net hybrids: Qwen3-Next (``qwen3_next.py``), Qwen3.5 (``qwen3_5.py``,
    ``ssm_field="mamba_ssm_dtype"``), OLMo-Hybrid (``olmo_hybrid.py``, ``head_dim="hidden"``).
    ``layer_types``, else full attention every ``full_attention_interval``-th layer (4); state
    ``linear_num_key_heads``, ``linear_num_value_heads``, ``linear_key_head_dim``,
    ``linear_value_head_dim``, ``linear_conv_kernel_dim``.

    >>> [type(l.caches[0][1]).__name__ for l in gated_delta(head_dim="config")(Fields({
    ...     "num_hidden_layers": 2, "full_attention_interval": 2, "num_attention_heads": 16,
    ...     "num_key_value_heads": 2, "head_dim": 256, "linear_num_key_heads": 16,
    ...     "linear_num_value_heads": 32, "linear_key_head_dim": 128,
    ...     "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4}, "qwen3_next"))]
    ['State', 'Attention']
    """

    def read(fields: Fields) -> list[Layer]:
        count = fields.layers()
        types = layer_types(fields, count)
        if types is None:
            interval = fields.int("full_attention_interval", default=4)
            types = [
                "linear_attention" if (i + 1) % interval else "full_attention" for i in range(count)
            ]

        def delta() -> Layer:
            return one(
                _state(
                    "gated_delta_net",
                    ssm_dtype=fields.text(ssm_field) if ssm_field else None,
                    num_k_heads=fields.int("linear_num_key_heads"),
                    num_v_heads=fields.int("linear_num_value_heads"),
                    head_k_dim=fields.int("linear_key_head_dim"),
                    head_v_dim=fields.int("linear_value_head_dim"),
                    conv_kernel=fields.int("linear_conv_kernel_dim"),
                )
            )

        known = {
            "linear_attention": delta,
            "full_attention": lambda: _attention(fields, head_dim),
        }
        return _pick(fields, known, types)

    return read


def nemotron_nas(fields: Fields) -> list[Layer]:
    """Nemotron-NAS / DeciLM (``nemotron_nas.py``): ``block_configs[i].attention`` — ``no_op``
    keeps no cache; else ``num_attention_heads // n_heads_in_group`` KV heads, ``head_dim`` or
    ``hidden_size // heads`` (``LlamaAttention``).  ``replace_with_linear`` blocks have no
    counterpart in vLLM 0.33 and are refused.

    >>> [len(l.caches) for l in nemotron_nas(Fields({"num_hidden_layers": 2,
    ...     "num_attention_heads": 64, "hidden_size": 8192, "block_configs": [
    ...     {"attention": {"no_op": True}}, {"attention": {"n_heads_in_group": 8}}]},
    ...     "nemotron-nas"))]
    [0, 1]
    """
    count = fields.layers()
    blocks = fields.sequence("block_configs", count)
    heads = fields.int("num_attention_heads")
    _, head = gqa(fields)
    layers = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise fields.error(f"block_configs[{index}] must be an object, got {block!r:.40}")
        attention = Fields(block, f"{fields.model_type} block {index}").sub("attention")
        if attention.flag("no_op", False):
            layers.append(NO_CACHE)
            continue
        if attention.flag("replace_with_linear", False):
            raise fields.error(
                f"block_configs[{index}].attention.replace_with_linear: a linear layer in place "
                "of attention, which vLLM 0.33's DeciLM model does not build",
                field="block_configs",
            )
        group = attention.int("n_heads_in_group")
        if heads % group:
            raise fields.error(
                f"block_configs[{index}]: n_heads_in_group {group} does not divide "
                f"num_attention_heads {heads}",
                field="block_configs",
            )
        layers.append(one(_attn(heads // group, head)))
    return layers
