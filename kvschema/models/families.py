"""Per-family rules for Hugging Face ``config.json`` files: defaults, and what each layer keeps.

A layer is one of: ``full``, ``sliding``, ``chunked`` (attention), ``mla`` (a latent per token),
``mamba1``, ``mamba2``, ``gated_delta`` (recurrent state), ``full+mamba2`` (both side by side, as
Falcon-H1's parallel hybrid layers keep them), or ``none`` (no cache: MLP / MoE).

>>> layer_kinds({"model_type": "gemma3_text", "num_hidden_layers": 12}, "gemma3_text")[:6]
['sliding', 'sliding', 'sliding', 'sliding', 'sliding', 'full']
"""

from __future__ import annotations

from typing import Any

from kvschema.errors import KVSchemaError

__all__ = [
    "FAMILY_DEFAULTS",
    "SUPPORTED",
    "HFConfigError",
    "family_of",
    "layer_kinds",
    "read_field",
]


class HFConfigError(KVSchemaError):
    """A ``config.json`` kvschema cannot turn into layer specs (unknown family, missing field)."""

    error_type = "hf_config"


#: The defaults of each family's transformers config class that kvschema relies on when a
#: ``config.json`` leaves the field out (docs/models.md lists them).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "mistral": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "sliding_window": 4096,
    },
    "mixtral": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
    },
    "phi3": {"hidden_size": 3072, "num_hidden_layers": 32, "num_attention_heads": 32},
    "qwen2": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": 28,
    },
    "qwen3": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "head_dim": 128,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": 28,
    },
    "olmo2": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "minimax_m2": {
        "hidden_size": 3072,
        "num_hidden_layers": 62,
        "num_attention_heads": 48,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
    "gemma2": {
        "hidden_size": 2304,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "sliding_window": 4096,
    },
    "gemma3_text": {
        "hidden_size": 2304,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
    },
    "cohere2": {
        "hidden_size": 8192,
        "num_hidden_layers": 40,
        "num_attention_heads": 64,
        "sliding_window": 4096,
        "sliding_window_pattern": 4,
    },
    "gpt_oss": {
        "hidden_size": 2880,
        "num_hidden_layers": 36,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "sliding_window": 128,
    },
    "llama4_text": {
        "hidden_size": 5120,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "attention_chunk_size": 8192,
        "no_rope_layer_interval": 4,
    },
    "deepseek_v2": {"num_hidden_layers": 30, "kv_lora_rank": 512, "qk_rope_head_dim": 64},
    "deepseek_v3": {"num_hidden_layers": 61, "kv_lora_rank": 512, "qk_rope_head_dim": 64},
    "jamba": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "attn_layer_period": 8,
        "attn_layer_offset": 4,
        "mamba_expand": 2,
        "mamba_d_state": 16,
        "mamba_d_conv": 4,
    },
    "nemotron_h": {
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "mamba_num_heads": 128,
        "mamba_head_dim": 64,
        "ssm_state_size": 128,
        "n_groups": 8,
        "conv_kernel": 4,
    },
    "granitemoehybrid": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "mamba_n_heads": 128,
        "mamba_n_groups": 1,
        "mamba_d_state": 256,
        "mamba_d_head": "auto",
        "mamba_d_conv": 4,
        "mamba_expand": 2,
    },
    "falcon_h1": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "mamba_d_ssm": 1024,
        "mamba_n_heads": 128,
        "mamba_d_head": "auto",
        "mamba_n_groups": 1,
        "mamba_d_state": 256,
        "mamba_d_conv": 4,
        "mamba_expand": 2,
    },
    "qwen3_next": {
        "hidden_size": 2048,
        "num_hidden_layers": 48,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "full_attention_interval": 4,
        "linear_num_key_heads": 16,
        "linear_key_head_dim": 128,
        "linear_num_value_heads": 32,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
    },
}
# Families that share another's fields and rules.
_ALIASES = {
    "qwen2_moe": "qwen2",
    "qwen3_moe": "qwen3",
    "gemma3": "gemma3_text",
    "llama4": "llama4_text",
    "qwen3_5": "qwen3_next",
    "qwen3_5_text": "qwen3_next",
    "qwen3_5_moe": "qwen3_next",
    "qwen3_5_moe_text": "qwen3_next",
}

#: Every model_type kvschema reads.
SUPPORTED = tuple(sorted({*FAMILY_DEFAULTS, *_ALIASES}))

_LAYER_TYPES = {
    "full_attention": "full",
    "sliding_attention": "sliding",
    "chunked_attention": "chunked",
    "linear_attention": "gated_delta",
}
# Granite 4.0-H names its layers "mamba" / "attention" (transformers' GraniteMoeHybridConfig);
# vLLM 0.33 reads the same list as "linear_attention" / "full_attention" (Mamba-2 either way).
_GRANITE_LAYER_TYPES = {
    "attention": "full",
    "full_attention": "full",
    "mamba": "mamba2",
    "linear_attention": "mamba2",
}


def family_of(model_type: str) -> str:
    """The rule set a model_type uses."""
    return _ALIASES.get(model_type, model_type)


def read_field(config: dict[str, Any], name: str, model_type: str) -> Any:
    """A field of ``config`` (an explicit null included), else the family's default, else None."""
    if name in config:
        return config[name]
    return FAMILY_DEFAULTS.get(family_of(model_type), {}).get(name)


def _int(config: dict[str, Any], name: str, model_type: str) -> int:
    value = read_field(config, name, model_type)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HFConfigError(
            f"{model_type}: {name} must be a positive integer, got {value!r}",
            field=name,
            model_type=model_type,
        )
    return value


def _listed(explicit: Any, layers: int, model_type: str, names: dict[str, str]) -> list[str]:
    """The kinds a ``layer_types`` list names, checked: a list of ``layers`` known names."""
    if not isinstance(explicit, list):
        raise HFConfigError(
            f"{model_type}: layer_types must be a list, got {type(explicit).__name__}",
            model_type=model_type,
        )
    unknown = sorted({repr(t)[:40] for t in explicit if not isinstance(t, str) or t not in names})
    if unknown or len(explicit) != layers:
        raise HFConfigError(
            f"{model_type}: layer_types must list {layers} entries from "
            f"{', '.join(names)}; got {len(explicit)}"
            + (f" with unknown {', '.join(unknown)}" if unknown else ""),
            model_type=model_type,
        )
    return [names[t] for t in explicit]


def layer_kinds(config: dict[str, Any], model_type: str) -> list[str]:
    """What each decoder layer keeps, by the family's rule (an explicit ``layer_types`` wins)."""
    family = family_of(model_type)
    layers = _int(config, "num_hidden_layers", model_type)
    if family == "falcon_h1":  # every layer runs attention and Mamba-2 side by side
        return ["full+mamba2"] * layers
    explicit = config.get("layer_types")
    if family == "granitemoehybrid":
        return _listed(explicit or ["mamba"] * layers, layers, model_type, _GRANITE_LAYER_TYPES)
    if explicit:
        return _listed(explicit, layers, model_type, _LAYER_TYPES)
    if family in ("mistral", "mixtral", "phi3"):
        window = read_field(config, "sliding_window", model_type)
        return ["sliding" if window else "full"] * layers
    if family in ("qwen2", "qwen3"):
        sliding = read_field(config, "use_sliding_window", model_type) and read_field(
            config, "sliding_window", model_type
        )
        first = read_field(config, "max_window_layers", model_type)
        return ["sliding" if sliding and i >= first else "full" for i in range(layers)]
    if family == "gemma2":
        return ["sliding" if (i + 1) % 2 else "full" for i in range(layers)]
    if family in ("gemma3_text", "cohere2"):
        pattern = _int(config, "sliding_window_pattern", model_type)
        return ["sliding" if (i + 1) % pattern else "full" for i in range(layers)]
    if family == "llama4_text":
        uses_rope = config.get("no_rope_layers") or [
            int((i + 1) % _int(config, "no_rope_layer_interval", model_type) != 0)
            for i in range(layers)
        ]
        if not isinstance(uses_rope, list) or len(uses_rope) != layers:
            raise HFConfigError(
                f"{model_type}: no_rope_layers must list {layers} flags, got {uses_rope!r:.60}",
                model_type=model_type,
            )
        chunked = read_field(config, "attention_chunk_size", model_type)
        return ["chunked" if chunked and uses_rope[i] else "full" for i in range(layers)]
    if family in ("deepseek_v2", "deepseek_v3"):
        return ["mla"] * layers
    if family == "jamba":
        period = _int(config, "attn_layer_period", model_type)
        offset = read_field(config, "attn_layer_offset", model_type)
        return ["full" if i % period == offset else "mamba1" for i in range(layers)]
    if family == "nemotron_h":
        override = config.get("hybrid_override_pattern")
        if not isinstance(override, str) or len(override) != layers or set(override) - set("M*-E"):
            raise HFConfigError(
                f"nemotron_h: hybrid_override_pattern must be {layers} characters of M (Mamba), "
                f"* (attention), - (MLP) and E (MoE); got {override!r}",
                model_type=model_type,
            )
        return [{"M": "mamba2", "*": "full"}.get(c, "none") for c in override]
    if family == "qwen3_next":
        interval = _int(config, "full_attention_interval", model_type)
        return ["full" if (i + 1) % interval == 0 else "gated_delta" for i in range(layers)]
    if family in ("llama", "olmo2", "minimax_m2"):
        return ["full"] * layers
    raise HFConfigError(f"no layer rule for model_type {model_type!r}", model_type=model_type)
