"""Attention-only families: each reader turns a config into one :class:`Layer` per decoder layer.

Each rule is the vLLM 0.33 module's (``vllm/model_executor/models/<module>.py``, cited per reader)
applied to the config as transformers 5 loads it: a ``layer_types`` the file leaves out is the
one the config class generates (``T/models/<family>/configuration_<family>.py``).

>>> from kvschema.models.fields import Fields
>>> layers = gemma2(Fields({"num_hidden_layers": 2, "num_attention_heads": 8,
...     "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 4096}, "gemma2"))
>>> [layer.caches[0][1].window for layer in layers]
[4096, None]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from kvschema.models.fields import Fields
from kvschema.models.layers import (
    Attention,
    Layer,
    gqa,
    layer_types,
    one,
    window_of,
    windows,
)

__all__ = [
    "Reader",
    "attention",
    "chatglm",
    "dbrx",
    "every",
    "falcon",
    "gemma2",
    "gemma3",
    "gpt_oss",
    "hrm",
    "llama4",
    "mhsa",
    "mimo_v2",
    "minicpm3",
    "qwen",
    "qwen2_moe",
    "qwen3_moe",
    "step3_text",
]

#: A family's rule: the config's fields → one layer record per decoder layer.
Reader = Callable[[Fields], list[Layer]]
#: A config class's default ``layer_types``: (fields, layer count) → the list (None: none).
Generator = Callable[[Fields, int], list[str] | None]
#: A generator that always gives a list.
Pattern = Callable[[Fields, int], list[str]]


def _attention(kv: int, head: int, window: int | None, head_v: int | None = None) -> Layer:
    kind: Literal["full", "sliding"] = "sliding" if window is not None else "full"
    return one(Attention(kind, kv_heads=kv, head_size=head, head_size_v=head_v, window=window))


def attention(
    *,
    head_dim: Literal["config", "hidden"] = "config",
    per_layer: bool = True,
    offset: int = 0,
    generate: Generator | None = None,
) -> Reader:
    """The rule most vLLM modules follow (``llama.py`` and kin).

    KV heads ``num_key_value_heads``; head size ``head_dim or hidden_size // heads``
    (``head_dim="hidden"``: always ``hidden_size // heads``); windows by :func:`windows`, with
    ``layer_types`` the file's or ``generate``'s (the config class's default).

    >>> read = attention(generate=every(2, full_at=0))
    >>> [l.caches[0][1].kind for l in read(Fields({"num_hidden_layers": 2, "hidden_size": 64,
    ...     "num_attention_heads": 2, "sliding_window": 8}, "gemma2"))]
    ['sliding', 'full']
    """

    def read(fields: Fields) -> list[Layer]:
        count = fields.layers()
        kv, head = gqa(fields, head_dim=head_dim)
        types = layer_types(fields, count)
        if types is None and generate is not None:
            types = generate(fields, count)
        found = windows(
            fields,
            count,
            layer_types=types,
            per_layer=per_layer,
            offset=offset,
            window=window_of(fields),
        )
        return [_attention(kv, head, window) for window in found]

    return read


def every(period: int, *, full_at: int, field: str | None = None) -> Pattern:
    """``layer_types`` with a full-attention layer where ``(i + 1) % period == full_at % period``
    (``field``, when the config names the period, overrides it); the rest sliding.

    >>> every(4, full_at=0)(Fields({}, "cohere2"), 5)
    ['sliding_attention', 'sliding_attention', 'sliding_attention', 'full_attention', 'sliding_attention']
    """

    def generate(fields: Fields, count: int) -> list[str]:
        step = period if field is None else fields.int(field, default=period)
        return [
            "full_attention" if (i + 1) % step == full_at % step else "sliding_attention"
            for i in range(count)
        ]

    return generate


def mhsa(*, head_dim: Literal["config", "hidden"] = "hidden") -> Reader:
    """Every layer full multi-head attention: as many KV heads as heads (GPT-2, GPT-J, BLOOM,
    OPT, GPT-NeoX: ``gpt2.py``, ``gpt_j.py``, ``bloom.py``, ``opt.py``; vLLM's convertor
    falls back to the attention heads when a config names no KV heads).

    >>> [l.caches[0][1].kv_heads for l in mhsa()(Fields({"num_hidden_layers": 1,
    ...     "num_attention_heads": 12, "hidden_size": 768}, "gpt2"))]
    [12]
    """

    def read(fields: Fields) -> list[Layer]:
        count = fields.layers()
        heads = fields.int("num_attention_heads")
        _, head = gqa(fields, head_dim=head_dim, kv="num_attention_heads")
        return [_attention(heads, head, None)] * count

    return read


def _refuse_mixed(fields: Fields, types: list[str] | None) -> None:
    """vLLM's Qwen2Model asserts ``max_window_layers == num_hidden_layers`` when layer types mix
    (``qwen2.py``, ``Qwen2Model.__init__``): a model with windows on some layers only fails."""
    if types is not None and len(set(types)) > 1:
        raise fields.error(
            "sliding windows on some layers only (use_sliding_window with max_window_layers "
            f"{fields.get('max_window_layers')!r} < num_hidden_layers): vLLM 0.33's Qwen2 / "
            "Qwen3 model refuses it (Qwen2Model asserts max_window_layers == num_hidden_layers)",
            field="max_window_layers",
        )


def qwen(*, head_dim: Literal["config", "hidden"]) -> Reader:
    """Qwen2 (``head_dim="hidden"``: ``qwen2.py`` ignores ``head_dim``) and Qwen3 (``qwen3.py``).

    The config classes drop the window unless ``use_sliding_window`` and mark layers from
    ``max_window_layers`` on sliding (``configuration_qwen2.py``, ``configuration_qwen3.py``);
    vLLM windows every layer when all are sliding and refuses a mix.

    >>> layers = qwen(head_dim="hidden")(Fields({"num_hidden_layers": 2, "hidden_size": 64,
    ...     "num_attention_heads": 4, "use_sliding_window": True, "sliding_window": 32,
    ...     "max_window_layers": 0}, "qwen2"))
    >>> [l.caches[0][1].window for l in layers]
    [32, 32]
    """

    def read(fields: Fields) -> list[Layer]:
        count = fields.layers()
        kv, head = gqa(fields, head_dim=head_dim)
        use = fields.flag("use_sliding_window", False)
        window = window_of(fields) if use else None
        types = layer_types(fields, count)
        if types is None and window is None:
            types = ["full_attention"] * count
        elif types is None:
            first = fields.int("max_window_layers", minimum=0)
            types = ["sliding_attention" if i >= first else "full_attention" for i in range(count)]
        _refuse_mixed(fields, types)
        found = windows(fields, count, layer_types=types, per_layer=False, offset=0, window=window)
        return [_attention(kv, head, w) for w in found]

    return read


def qwen2_moe(fields: Fields) -> list[Layer]:
    """Qwen2-MoE (``qwen2_moe.py``: ``hidden_size // heads``, no per-layer window).

    ``Qwen2MoeConfig`` sets the window to 0 unless ``use_sliding_window`` and alternates
    sliding layers below ``max_window_layers``; a mixed list leaves vLLM no model-wide window.

    >>> layers = qwen2_moe(Fields({"num_hidden_layers": 4, "hidden_size": 64,
    ...     "num_attention_heads": 4, "use_sliding_window": True, "sliding_window": 32,
    ...     "max_window_layers": 28}, "qwen2_moe"))
    >>> {l.caches[0][1].kind for l in layers}
    {'full'}
    """
    count = fields.layers()
    kv, head = gqa(fields, head_dim="hidden")
    use = fields.flag("use_sliding_window", False)
    window = window_of(fields) if use else None
    types = layer_types(fields, count)
    if types is None:
        first = fields.int("max_window_layers", minimum=0)
        types = [
            "sliding_attention" if (i + 1) % 2 and i < first and use else "full_attention"
            for i in range(count)
        ]
    found = windows(fields, count, layer_types=types, per_layer=False, offset=0, window=window)
    return [_attention(kv, head, w) for w in found]


def qwen3_moe(fields: Fields) -> list[Layer]:
    """Qwen3-MoE (``qwen3_moe.py``): ``head_dim or hidden_size // heads``; no ``layer_types``
    nor ``max_window_layers`` in its config class, so a window (``use_sliding_window``) is on
    every layer (``configuration_qwen3_moe.py``, ``modeling_qwen3_moe.py``).

    >>> layers = qwen3_moe(Fields({"num_hidden_layers": 2, "hidden_size": 2048,
    ...     "num_attention_heads": 32, "num_key_value_heads": 4}, "qwen3_moe"))
    >>> layers[0].caches[0][1].head_size
    64
    """
    count = fields.layers()
    kv, head = gqa(fields)
    window = window_of(fields) if fields.flag("use_sliding_window", False) else None
    types = layer_types(fields, count)
    found = windows(fields, count, layer_types=types, per_layer=False, offset=0, window=window)
    return [_attention(kv, head, w) for w in found]


def _refuse_bidirectional(fields: Fields) -> None:
    mode = fields.get("use_bidirectional_attention")
    if mode is True or mode == "all" or fields.get("is_causal") is False:
        raise fields.error(
            "bidirectional attention (use_bidirectional_attention 'all' / is_causal false): an "
            "encoder, which vLLM serves without a KV cache",
            field="use_bidirectional_attention",
        )


def gemma2(fields: Fields) -> list[Layer]:
    """Gemma 2 (``gemma2.py``): ``layer_types``, by default even layers sliding
    (``configuration_gemma2.py``); ``head_dim``.

    >>> len(gemma2(Fields({"num_hidden_layers": 3, "num_attention_heads": 8,
    ...     "head_dim": 256, "sliding_window": 4096}, "gemma2")))
    3
    """
    _refuse_bidirectional(fields)
    return attention(generate=every(2, full_at=0))(fields)


def gemma3(fields: Fields) -> list[Layer]:
    """Gemma 3 (``gemma3.py``): every ``sliding_window_pattern``-th layer full (6 by default,
    ``configuration_gemma3.py``), the rest sliding; ``head_dim``.

    >>> [l.caches[0][1].kind for l in gemma3(Fields({"num_hidden_layers": 2,
    ...     "num_attention_heads": 8, "head_dim": 256, "sliding_window": 1024,
    ...     "sliding_window_pattern": 2}, "gemma3_text"))]
    ['sliding', 'full']
    """
    _refuse_bidirectional(fields)
    return attention(generate=every(6, full_at=0, field="sliding_window_pattern"))(fields)


def gpt_oss(fields: Fields) -> list[Layer]:
    """gpt-oss (``gpt_oss.py``): even layers slide over ``sliding_window``, odd ones are full —
    vLLM's own rule (``layer_idx % 2 == 0``), whatever ``layer_types`` says; ``head_dim``.

    >>> [l.caches[0][1].window for l in gpt_oss(Fields({"num_hidden_layers": 2,
    ...     "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
    ...     "sliding_window": 128}, "gpt_oss"))]
    [128, None]
    """
    count = fields.layers()
    kv, head = gqa(fields)
    window = fields.int("sliding_window")
    windows(fields, count, layer_types=layer_types(fields, count), per_layer=True, window=window)
    return [_attention(kv, head, window if i % 2 == 0 else None) for i in range(count)]


def llama4(fields: Fields) -> list[Layer]:
    """Llama 4 (``llama4.py``): chunked local attention of ``attention_chunk_size`` on the RoPE
    layers (``no_rope_layers[i] == 1``; by default all but every ``no_rope_layer_interval``-th,
    an empty list meaning that default), full attention on the NoPE layers.

    >>> [l.caches[0][1].kind for l in llama4(Fields({"num_hidden_layers": 4,
    ...     "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
    ...     "attention_chunk_size": 8192, "no_rope_layer_interval": 4}, "llama4_text"))]
    ['chunked', 'chunked', 'chunked', 'full']
    """
    count = fields.layers()
    kv, head = gqa(fields)
    if fields.get("no_rope_layers"):
        rope = fields.ints("no_rope_layers", maximum=1)
        if len(rope) != count:
            raise fields.error(
                f"no_rope_layers must list {count} flags, got {len(rope)}", field="no_rope_layers"
            )
    else:
        interval = fields.int("no_rope_layer_interval")
        rope = [int((i + 1) % interval != 0) for i in range(count)]
    chunk = fields.optional_int("attention_chunk_size")
    layers = []
    for uses_rope in rope:
        if chunk is not None and uses_rope:
            layers.append(one(Attention("chunked", kv_heads=kv, head_size=head, window=chunk)))
        else:
            layers.append(_attention(kv, head, None))
    return layers


def falcon(fields: Fields) -> list[Layer]:
    """Falcon (``falcon.py``, ``FalconAttention``): KV heads ``num_kv_heads`` with the new
    decoder architecture (Falcon-40B/180B), 1 with ``multi_query`` (Falcon-7B), else one per
    head; head size ``hidden_size // num_attention_heads``.  Legacy ``RefinedWeb`` configs
    (vLLM's ``RWConfig``) name them ``n_head_kv`` (default 1), and ``hidden_size`` 8192 means
    the new architecture.

    >>> falcon(Fields({"num_hidden_layers": 1, "num_attention_heads": 71,
    ...     "hidden_size": 4544, "multi_query": True}, "falcon"))[0].caches[0][1].kv_heads
    1
    """
    count = fields.layers()
    heads = fields.int("num_attention_heads")
    _, head = gqa(fields, head_dim="hidden")
    legacy = fields.model_type in ("RefinedWeb", "RefinedWebModel")
    new = fields.flag("new_decoder_architecture", False)
    if legacy and fields.int("hidden_size") == 8192:
        new = True
    if new:
        kv = fields.optional_int("num_kv_heads") or (1 if legacy else heads)
    elif fields.flag("multi_query", True):
        kv = 1
    else:
        kv = heads
    return [_attention(kv, head, None)] * count


def mimo_v2(fields: Fields) -> list[Layer]:
    """MiMo-V2-Flash (``mimo_v2.py``): ``hybrid_layer_pattern[i] == 1`` marks a sliding layer
    with its own geometry (``swa_num_key_value_heads``, ``swa_head_dim``, ``swa_v_head_dim``,
    window ``sliding_window_size``); the others are full (``num_key_value_heads``, ``head_dim``,
    ``v_head_dim``).  V heads may be narrower than K heads (``head_size_v``).

    >>> layers = mimo_v2(Fields({"num_hidden_layers": 2, "hybrid_layer_pattern": [0, 1],
    ...     "num_key_value_heads": 4, "head_dim": 192, "v_head_dim": 128,
    ...     "swa_num_key_value_heads": 8, "swa_head_dim": 192, "swa_v_head_dim": 128,
    ...     "sliding_window_size": 128}, "mimo_v2_flash"))
    >>> [(c.kind, c.kv_heads, c.head_size, c.head_size_v) for l in layers for _, c in l.caches]
    [('full', 4, 192, 128), ('sliding', 8, 192, 128)]
    """
    count = fields.layers()
    if "hybrid_layer_pattern" not in fields:
        raise fields.error(
            "hybrid_layer_pattern missing: vLLM 0.33's MiMo-V2 reads it (and the swa_* fields) "
            "to tell sliding layers from full ones; transformers' layer_types form is not what "
            "it serves",
            field="hybrid_layer_pattern",
        )
    pattern = fields.ints("hybrid_layer_pattern", maximum=1)
    if len(pattern) != count:
        raise fields.error(
            f"hybrid_layer_pattern must list {count} flags, got {len(pattern)}",
            field="hybrid_layer_pattern",
        )
    full_head = fields.int("head_dim")
    full = (
        fields.int("num_key_value_heads"),
        full_head,
        fields.optional_int("v_head_dim") or full_head,
    )
    layers = []
    for flag in pattern:
        if flag:
            swa_head = fields.int("swa_head_dim")
            layers.append(
                _attention(
                    fields.int("swa_num_key_value_heads"),
                    swa_head,
                    fields.int("sliding_window_size"),
                    fields.optional_int("swa_v_head_dim") or swa_head,
                )
            )
        else:
            layers.append(_attention(full[0], full[1], None, full[2]))
    return layers


def hrm(fields: Fields) -> list[Layer]:
    """HRM (``hrm_text.py``): two stacks of ``num_layers_per_stack`` layers run
    ``H_cycles x (L_cycles + 1)`` steps, each step with a cache slot of its own
    (``slot = step x num_layers_per_stack + layer``); multi-head (KV heads = heads), ``head_dim``.
    A config without ``num_layers_per_stack`` (a legacy one) has that many per stack in
    ``num_hidden_layers`` (``configuration_hrm_text.py`` rewrites it).

    >>> len(hrm(Fields({"num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 8,
    ...     "H_cycles": 2, "L_cycles": 3}, "hrm_text")))
    16
    """
    per_stack = fields.optional_int("num_layers_per_stack") or fields.layers()
    steps = fields.int("H_cycles") * (fields.int("L_cycles") + 1)
    if per_stack * steps > 100_000:
        raise fields.error(
            f"{per_stack} layers per stack x {steps} steps is more cache slots than kvschema "
            "reads (100,000)"
        )
    heads = fields.int("num_attention_heads")
    _, head = gqa(fields)
    return [_attention(heads, head, None)] * (per_stack * steps)


def minicpm3(fields: Fields) -> list[Layer]:
    """MiniCPM3 (``minicpm3.py``): its MLA weights, but a plain cache — every head keeps K and a
    zero-padded V of ``qk_nope_head_dim + qk_rope_head_dim``.

    >>> minicpm3(Fields({"num_hidden_layers": 1, "num_attention_heads": 40,
    ...     "qk_nope_head_dim": 64, "qk_rope_head_dim": 32}, "minicpm3"))[0].caches[0][1].head_size
    96
    """
    count = fields.layers()
    heads = fields.int("num_attention_heads")
    head = fields.int("qk_nope_head_dim") + fields.int("qk_rope_head_dim")
    return [_attention(heads, head, None)] * count


def chatglm(fields: Fields) -> list[Layer]:
    """ChatGLM / GLM-4 (remote code; ``chatglm.py``): ``num_layers`` layers,
    ``multi_query_group_num`` KV heads with ``multi_query_attention`` (else one per head),
    ``hidden_size // num_attention_heads``.

    >>> chatglm(Fields({"num_layers": 1, "num_attention_heads": 32, "hidden_size": 4096,
    ...     "multi_query_attention": True, "multi_query_group_num": 2}, "chatglm"))[0].caches[0][1].kv_heads
    2
    """
    count = fields.layers("num_layers")
    heads = fields.int("num_attention_heads")
    kv = (
        fields.int("multi_query_group_num")
        if fields.flag("multi_query_attention", False)
        else heads
    )
    _, head = gqa(fields, head_dim="hidden")
    return [_attention(kv, head, None)] * count


def dbrx(fields: Fields) -> list[Layer]:
    """DBRX (``dbrx.py``): ``n_layers`` layers, ``attn_config.kv_n_heads`` KV heads,
    ``d_model // n_heads``.

    >>> dbrx(Fields({"n_layers": 1, "n_heads": 48, "d_model": 6144,
    ...     "attn_config": {"kv_n_heads": 8}}, "dbrx"))[0].caches[0][1].head_size
    128
    """
    count = fields.layers("n_layers")
    heads = fields.int("n_heads")
    width = fields.int("d_model")
    if width % heads:
        raise fields.error(f"d_model {width} is no multiple of n_heads {heads}", field="d_model")
    kv = fields.sub("attn_config").int("kv_n_heads")
    return [_attention(kv, width // heads, None)] * count


def step3_text(fields: Fields) -> list[Layer]:
    """Step-3 text (``step3_text.py``): one KV head (multi-query), ``head_dim``.

    >>> step3_text(Fields({"num_hidden_layers": 1, "head_dim": 256}, "step3_text"))[0].caches[0][1].kv_heads
    1
    """
    count = fields.layers()
    return [_attention(1, fields.int("head_dim"), None)] * count
