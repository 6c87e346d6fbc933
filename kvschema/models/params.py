"""A Hugging Face ``config.json`` → the model's weights as parts, counted from the architecture.

The count follows each family's modules as vLLM builds them: embeddings, attention (GQA with
biases and q/k norms, MLA's replicated down-projections), dense and gated MLPs, MoE experts with
shared experts and routers, Mamba-1/2 and gated-delta mixers, norms, ``lm_head`` unless tied;
each linear sized by the ``quantization_config`` (:mod:`kvschema.models.quant`).  Only
:data:`PARAM_FAMILIES` are counted, any other ``model_type`` is refused; a checkpoint with a
vision tower is refused unless ``text_only=True`` (the language model only).

>>> from kvschema.models.split import stage_bytes
>>> cfg = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
...        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
...        "vocab_size": 128256, "torch_dtype": "bfloat16"}
>>> counted = count_parameters(cfg)
>>> counted.num_parameters  # Meta-Llama-3-8B
8030261248
"""

import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from kvschema.models.families import HFConfigError
from kvschema.models.kinds import family_of, layer_kinds
from kvschema.models.quant import QuantScheme, linear_bytes, parse_quantization
from kvschema.models.split import Place, Split, WeightPart

__all__ = ["PARAM_FAMILIES", "CountedModel", "count_parameters"]

#: The families whose parameters kvschema counts from a config (by ``family_of``).
PARAM_FAMILIES = (
    "cohere2",
    "deepseek_v2",
    "deepseek_v3",
    "gemma2",
    "gemma3_text",
    "gpt_oss",
    "jamba",
    "llama",
    "llama4_text",
    "minimax_m2",
    "mistral",
    "mixtral",
    "nemotron_h",
    "olmo2",
    "phi3",
    "qwen2",
    "qwen3",
    "qwen3_next",
)

_TIED_BY_DEFAULT = {"gemma2", "gemma3_text", "cohere2"}
_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 2, "half": 2, "float": 2}


class CountedModel(BaseModel):
    """The parts a config describes, with the layer count and what the count assumed.

    >>> counted = count_parameters({"model_type": "qwen3", "hidden_size": 64, "head_dim": 16,
    ...     "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...     "num_key_value_heads": 2, "vocab_size": 1000, "torch_dtype": "bfloat16"})
    >>> counted.num_layers, counted.num_parameters, counted.repacked
    (2, 202112, False)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    parts: list[WeightPart]
    num_layers: int
    num_parameters: int
    #: Whether a quantization scheme whose kernels repack or pad weights is in use.
    repacked: bool
    notes: list[str]


class _Count:
    def __init__(self, cfg: dict[str, Any], model_type: str, scheme: QuantScheme, nbytes: int):
        self.cfg, self.model_type, self.scheme, self.dtype_bytes = cfg, model_type, scheme, nbytes
        self.parts: list[WeightPart] = []
        self.params = 0
        self.repacked = False

    def get_int(self, name: str, default: int | None = None) -> int:
        value = self.cfg.get(name, default)
        if value is None and default is not None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise HFConfigError(
                f"{self.model_type}: counting parameters needs {name} as an integer >= 0, "
                f"got {value!r:.40}",
                field=name,
            )
        return value

    def linear(
        self,
        name: str,
        n_in: int,
        n_out: int,
        split: Split,
        *,
        layer: int | None,
        place: Place = "layer",
        bias: bool = False,
        experts: int = 0,
        heads: int | None = None,
        high_dims: tuple[int, int] | None = None,
    ) -> None:
        count = max(experts, 1)
        fmt = self.scheme.format_for(name, expert=experts > 0)
        weight, meta = linear_bytes(fmt, n_in, n_out)
        high = None
        if high_dims is not None:  # a kernel that pads the weight's dimensions
            high = linear_bytes(fmt, *high_dims)[0] * count
        extra = n_out * self.dtype_bytes if bias else 0
        self.repacked = self.repacked or fmt.repacked
        self.params += count * (n_in * n_out + (n_out if bias else 0))
        self.parts.append(
            WeightPart(
                name=name,
                place=place,
                split=split,
                layer=layer,
                heads=heads,
                nbytes=count * (weight + extra),
                meta_bytes=count * meta,
                high_nbytes=None if high is None else high + count * extra,
                experts=experts or None,
            )
        )

    def dense(
        self,
        name: str,
        numel: int,
        split: Split,
        *,
        layer: int | None,
        place: Place = "layer",
        nbytes: int | None = None,
    ) -> None:
        self.params += numel
        size = numel * self.dtype_bytes if nbytes is None else nbytes
        self.parts.append(WeightPart(name=name, place=place, split=split, layer=layer, nbytes=size))

    def mlp(
        self,
        prefix: str,
        i: int,
        h: int,
        inter: int,
        *,
        gated: bool = True,
        experts: int = 0,
        bias: bool = False,
        split_in: Split = "column",
        split_out: Split = "row",
        high_inter: int | None = None,
    ) -> None:
        hi = None if high_inter is None else (high_inter, h)
        up = 2 * inter if gated else inter
        hi_up = None if high_inter is None else (h, (2 if gated else 1) * high_inter)
        name_up = f"{prefix}.gate_up_proj" if gated else f"{prefix}.up_proj"
        self.linear(name_up, h, up, split_in, layer=i, experts=experts, bias=bias, high_dims=hi_up)
        self.linear(
            f"{prefix}.down_proj",
            inter,
            h,
            split_out,
            layer=i,
            experts=experts,
            bias=bias,
            high_dims=hi,
        )


def _moe_layer(c: _Count, family: str, i: int) -> bool:
    cfg = c.cfg
    if family in ("mixtral", "minimax_m2", "gpt_oss", "qwen3_next"):
        return family != "qwen3_next" or c.get_int("num_experts", 0) > 0
    if family in ("qwen2", "qwen3"):  # the *_moe variants
        if c.get_int("num_experts", 0) == 0:
            return False
        step = c.get_int("decoder_sparse_step", 1)
        return i not in (cfg.get("mlp_only_layers") or []) and (i + 1) % step == 0
    if family in ("deepseek_v2", "deepseek_v3"):
        return (
            i >= c.get_int("first_k_dense_replace", 0) and i % c.get_int("moe_layer_freq", 1) == 0
        )
    if family == "llama4_text":
        step = c.get_int("interleave_moe_layer_step", 1)
        layers = cfg.get("moe_layers") or list(
            range(step - 1, c.get_int("num_hidden_layers"), step)
        )
        return i in layers
    if family == "jamba":
        period = c.get_int("expert_layer_period", 2)
        return c.get_int("num_experts", 16) > 1 and i % period == c.get_int(
            "expert_layer_offset", 1
        )
    return False


def _attention(c: _Count, family: str, i: int, kind: str, h: int) -> None:
    cfg, p = c.cfg, f"model.layers.{i}.self_attn"
    nq = c.get_int("num_attention_heads")
    if kind == "mla":
        rope, nope = c.get_int("qk_rope_head_dim", 64), c.get_int("qk_nope_head_dim", 128)
        v, kv_rank = c.get_int("v_head_dim", 128), c.get_int("kv_lora_rank")
        q_rank = cfg.get("q_lora_rank")
        if q_rank:  # q_a_proj and kv_a_proj_with_mqa are ReplicatedLinear in vLLM
            c.linear(f"{p}.q_a_proj", h, q_rank, "replicated", layer=i)
            c.dense(f"{p}.q_a_layernorm", q_rank, "replicated", layer=i)
            c.linear(f"{p}.q_b_proj", q_rank, nq * (nope + rope), "column", layer=i)
        else:
            c.linear(f"{p}.q_proj", h, nq * (nope + rope), "column", layer=i)
        c.linear(f"{p}.kv_a_proj_with_mqa", h, kv_rank + rope, "replicated", layer=i)
        c.dense(f"{p}.kv_a_layernorm", kv_rank, "replicated", layer=i)
        c.linear(f"{p}.kv_b_proj", kv_rank, nq * (nope + v), "column", layer=i)
        c.linear(f"{p}.o_proj", nq * v, h, "row", layer=i)
        # vLLM 0.33 keeps kv_b_proj and adds W_UK_T / W_UV, a 16-bit copy of it split by heads
        # (mla_attention.py MLAAttention.process_weights_after_loading): no checkpoint tensor
        absorbed = kv_rank * nq * (nope + v)
        c.parts.append(
            WeightPart(
                name=f"{p}.W_UK_T+W_UV",
                place="layer",
                split="column",
                layer=i,
                nbytes=absorbed * c.dtype_bytes,
            )
        )
        return
    nkv = c.get_int("num_key_value_heads", nq) or nq
    hd = c.get_int("head_dim", h // nq) or h // nq
    bias = bool(cfg.get("attention_bias", family in ("qwen2", "gpt_oss")))
    gated_q = 2 if family == "qwen3_next" else 1  # Qwen3-Next gates attention output by q
    c.linear(f"{p}.q_proj", h, gated_q * nq * hd, "column", layer=i, bias=bias)
    c.linear(f"{p}.k_proj", h, nkv * hd, "kv", layer=i, bias=bias, heads=nkv)
    c.linear(f"{p}.v_proj", h, nkv * hd, "kv", layer=i, bias=bias, heads=nkv)
    o_bias = bias and family != "qwen2"
    c.linear(f"{p}.o_proj", nq * hd, h, "row", layer=i, bias=o_bias)
    if family in ("qwen3", "gemma3_text", "qwen3_next"):
        c.dense(f"{p}.q_norm", hd, "replicated", layer=i)
        c.dense(f"{p}.k_norm", hd, "replicated", layer=i)
    elif family in ("olmo2", "minimax_m2"):  # norms over all heads: split with them
        c.dense(f"{p}.q_norm", nq * hd, "column", layer=i)
        c.dense(f"{p}.k_norm", nkv * hd, "kv", layer=i)
    if family == "gpt_oss":
        c.dense(f"{p}.sinks", nq, "column", layer=i)


def _mixer(c: _Count, i: int, kind: str, h: int) -> None:
    p = f"model.layers.{i}.mixer"
    if kind == "mamba1":
        inner, state = c.get_int("mamba_expand") * h, c.get_int("mamba_d_state")
        rank = c.cfg.get("mamba_dt_rank", "auto")
        rank = math.ceil(h / 16) if rank == "auto" else c.get_int("mamba_dt_rank")
        c.linear(f"{p}.in_proj", h, 2 * inner, "column", layer=i)
        c.dense(f"{p}.conv1d", inner * c.get_int("mamba_d_conv") + inner, "column", layer=i)
        c.linear(f"{p}.x_proj", inner, rank + 2 * state, "row", layer=i)
        c.linear(f"{p}.dt_proj", rank, inner, "column", layer=i, bias=True)
        c.dense(f"{p}.A_log+D", inner * state + inner, "column", layer=i)
        c.dense(f"{p}.dt_b_c_layernorms", rank + 2 * state, "replicated", layer=i)
        c.linear(f"{p}.out_proj", inner, h, "row", layer=i)
    elif kind == "mamba2":
        heads, hdim = c.get_int("mamba_num_heads"), c.get_int("mamba_head_dim")
        groups, state = c.get_int("n_groups"), c.get_int("ssm_state_size")
        inner, conv = heads * hdim, heads * hdim + 2 * groups * state
        c.linear(
            f"{p}.in_proj",
            h,
            inner + conv + heads,
            "column",
            layer=i,
            bias=bool(c.cfg.get("use_bias", False)),
        )
        conv_bias = conv if c.cfg.get("use_conv_bias", True) else 0
        c.dense(f"{p}.conv1d", conv * c.get_int("conv_kernel") + conv_bias, "column", layer=i)
        c.dense(f"{p}.dt_bias+A_log+D+norm", 3 * heads + inner, "column", layer=i)
        c.linear(f"{p}.out_proj", inner, h, "row", layer=i)
    else:  # gated delta-net
        nk, dk = c.get_int("linear_num_key_heads"), c.get_int("linear_key_head_dim")
        nv, dv = c.get_int("linear_num_value_heads"), c.get_int("linear_value_head_dim")
        p = f"model.layers.{i}.linear_attn"
        c.linear(f"{p}.in_proj_qkvz", h, 2 * nk * dk + 2 * nv * dv, "column", layer=i)
        c.linear(f"{p}.in_proj_ba", h, 2 * nv, "column", layer=i)
        conv = 2 * nk * dk + nv * dv
        c.dense(f"{p}.conv1d", conv * c.get_int("linear_conv_kernel_dim"), "column", layer=i)
        c.dense(f"{p}.dt_bias+A_log", 2 * nv, "column", layer=i)
        c.dense(f"{p}.norm", dv, "replicated", layer=i)
        c.linear(f"{p}.out_proj", nv * dv, h, "row", layer=i)


def _router(
    c: _Count, prefix: str, i: int, h: int, experts: int, *, bias: bool, correction: bool
) -> None:
    c.dense(f"{prefix}.gate", h * experts + (experts if bias else 0), "replicated", layer=i)
    if correction:  # e_score_correction_bias, kept in float32
        c.dense(
            f"{prefix}.gate.e_score_correction_bias",
            experts,
            "replicated",
            layer=i,
            nbytes=4 * experts,
        )


def _feed_forward(c: _Count, family: str, i: int, h: int, pattern: str | None) -> None:
    p = f"model.layers.{i}.mlp"
    if family == "nemotron_h":
        if pattern == "-":
            c.mlp(
                p,
                i,
                h,
                c.get_int("intermediate_size"),
                gated=False,
                bias=bool(c.cfg.get("mlp_bias", False)),
            )
        elif pattern == "E":
            experts = c.get_int("n_routed_experts")
            _router(c, p, i, h, experts, bias=False, correction=True)
            c.mlp(
                f"{p}.experts",
                i,
                h,
                c.get_int("moe_intermediate_size"),
                gated=False,
                experts=experts,
                split_in="expert",
                split_out="expert",
            )
            shared = c.get_int("moe_shared_expert_intermediate_size", 0) * c.get_int(
                "n_shared_experts", 1
            )
            if shared:
                c.mlp(f"{p}.shared_experts", i, h, shared, gated=False)
        return
    if not _moe_layer(c, family, i):
        key = "intermediate_size_mlp" if family == "llama4_text" else "intermediate_size"
        c.mlp(p, i, h, c.get_int(key), bias=bool(c.cfg.get("mlp_bias", False)))
        return
    if family in ("deepseek_v2", "deepseek_v3"):
        experts, inter = c.get_int("n_routed_experts"), c.get_int("moe_intermediate_size")
        shared = c.get_int("n_shared_experts", 0) * inter
        correction = c.cfg.get("topk_method") == "noaux_tc" or family == "deepseek_v3"
    elif family in ("mixtral", "minimax_m2", "gpt_oss", "llama4_text", "jamba"):
        experts = c.get_int("num_local_experts", 0) or c.get_int("num_experts", 0)
        inter, shared = c.get_int("intermediate_size"), 0
        correction = family == "minimax_m2"
        if family == "llama4_text":
            shared = inter
    else:  # qwen2_moe, qwen3_moe, qwen3_next / qwen3_5_moe
        experts, inter = c.get_int("num_experts"), c.get_int("moe_intermediate_size")
        shared, correction = c.get_int("shared_expert_intermediate_size", 0), False
    prefix = "block_sparse_moe" if family == "mixtral" else "mlp"
    p = f"model.layers.{i}.{prefix}"
    _router(c, p, i, h, experts, bias=family == "gpt_oss", correction=correction)
    high = None
    if c.scheme.method == "mxfp4":  # kernels round the expert dims up (oracle/mxfp4.py)
        high = -(-inter // 128) * 128 + 128
    c.mlp(
        f"{p}.experts",
        i,
        h,
        inter,
        experts=experts,
        bias=family == "gpt_oss",
        split_in="expert",
        split_out="expert",
        high_inter=high,
    )
    if shared:
        c.mlp(f"{p}.shared_expert", i, h, shared)
        if family in ("qwen2", "qwen3_next"):
            c.dense(f"{p}.shared_expert_gate", h, "replicated", layer=i)


def _kinds(cfg: dict[str, Any], model_type: str, family: str, layers: int) -> list[str]:
    """Each layer's kind; where only attention differs (full / sliding), it does not matter."""
    try:
        return layer_kinds(cfg, model_type)
    except HFConfigError:
        if family in ("jamba", "nemotron_h", "qwen3_next"):
            raise
        return ["full"] * layers  # a window changes no weight


def _norms_per_layer(family: str) -> int:
    return {"gemma2": 4, "gemma3_text": 4, "cohere2": 1, "nemotron_h": 1}.get(family, 2)


def _resolve(config: dict[str, Any], text_only: bool) -> tuple[dict[str, Any], str, list[str]]:
    notes: list[str] = []
    text = config.get("text_config")
    cfg = {**config, **text} if isinstance(text, dict) else dict(config)
    if isinstance(text, dict) and config.get("vision_config") is not None:
        if not text_only:
            raise HFConfigError(
                "the config has a vision_config: a parameter count covers the language model "
                "only; read the weights from the safetensors files or the index, or pass "
                "text_only=True to count the language model alone"
            )
        notes.append("counted the language model only (text_only): no vision tower")
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str):
        raise HFConfigError("config.json names no model_type")
    return cfg, model_type, notes


def count_parameters(config: dict[str, Any], *, text_only: bool = False) -> CountedModel:
    """The parts of the model ``config`` describes, sized by its ``quantization_config``.

    >>> count_parameters({"model_type": "falcon"})
    Traceback (most recent call last):
    ...
    kvschema.models.fields.HFConfigError: no parameter count for model_type 'falcon'; counted families: cohere2, deepseek_v2, deepseek_v3, gemma2, gemma3_text, gpt_oss, jamba, llama, llama4_text, minimax_m2, mistral, mixtral, nemotron_h, olmo2, phi3, qwen2, qwen3, qwen3_next; pass the weight bytes or the checkpoint's files
    """
    cfg, model_type, notes = _resolve(config, text_only)
    family = family_of(model_type)
    if family not in PARAM_FAMILIES:
        raise HFConfigError(
            f"no parameter count for model_type {model_type!r}; counted families: "
            f"{', '.join(PARAM_FAMILIES)}; pass the weight bytes or the checkpoint's files",
            model_type=model_type,
        )
    dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
        notes.append(f"dtype {dtype!r} unknown or absent: assumed 2 bytes per weight (bfloat16)")
    elif dtype in ("float32", "float"):
        notes.append("a float32 checkpoint: vLLM's dtype=auto loads it in 16 bits")
    scheme = parse_quantization(
        config.get("quantization_config") or cfg.get("quantization_config"),
        model_dtype_bytes=2,
    )
    c = _Count(cfg, model_type, scheme, 2)
    h, vocab, layers = (
        c.get_int("hidden_size"),
        c.get_int("vocab_size"),
        c.get_int("num_hidden_layers"),
    )
    kinds = _kinds(cfg, model_type, family, layers)
    pattern = cfg.get("hybrid_override_pattern") if family == "nemotron_h" else None
    for i, kind in enumerate(kinds):
        char = pattern[i] if isinstance(pattern, str) else None
        if kind in ("mamba1", "mamba2", "gated_delta"):
            _mixer(c, i, kind, h)
        elif kind != "none":
            _attention(c, family, i, kind, h)
        if family != "nemotron_h" or char in ("-", "E"):
            _feed_forward(c, family, i, h, char)
        c.dense(f"model.layers.{i}.norms", _norms_per_layer(family) * h, "replicated", layer=i)
    c.dense("model.embed_tokens", vocab * h, "vocab", layer=None, place="embed")
    c.parts[-1] = c.parts[-1].model_copy(update={"rows": vocab})
    c.dense("model.norm", h, "replicated", layer=None, place="final")
    tied = cfg.get("tie_word_embeddings", family in _TIED_BY_DEFAULT)
    c.linear("lm_head", h, vocab, "vocab", layer=None, place="tied_head" if tied else "head")
    c.parts[-1] = c.parts[-1].model_copy(update={"rows": vocab})
    if tied:
        c.params -= vocab * h
    _rope_buffer(c, cfg, family, h)
    return CountedModel(
        parts=c.parts, num_layers=layers, num_parameters=c.params, repacked=c.repacked, notes=notes
    )


def _rope_buffer(c: _Count, cfg: dict[str, Any], family: str, h: int) -> None:
    """vLLM's RoPE ``cos_sin_cache`` buffer (not a parameter): positions x rotary dims."""
    if family == "nemotron_h" and "*" not in str(cfg.get("hybrid_override_pattern", "")):
        return
    positions = cfg.get("max_position_embeddings")
    if not isinstance(positions, int) or positions <= 0:
        return
    if family in ("deepseek_v2", "deepseek_v3"):
        dims = c.get_int("qk_rope_head_dim", 64) or 64
    else:
        fallback = h // max(c.get_int("num_attention_heads"), 1)
        head = c.get_int("head_dim", fallback) or fallback
        factor = cfg.get("partial_rotary_factor", 1.0)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 0:
            raise HFConfigError(
                f"{c.model_type}: partial_rotary_factor must be a number >= 0, got {factor!r:.40}",
                field="partial_rotary_factor",
            )
        dims = c.get_int("rotary_dim", 0) or int(head * factor)
    copies = 2 if family in ("gemma3_text", "cohere2", "llama4_text") else 1
    size = copies * positions * dims * c.dtype_bytes
    c.parts.append(
        WeightPart(
            name="rotary_emb.cos_sin_cache",
            place="all",
            split="replicated",
            nbytes=size,
            high_nbytes=2 * size,
        )
    )
