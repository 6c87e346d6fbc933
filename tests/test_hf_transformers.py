"""kvschema's reading of each family against transformers' own config classes (no torch).

For every model type kvschema reads that transformers defines, the config class is instantiated
(defaults and realistic variants) and serialized both whole (``to_dict``) and as transformers 5
saves it (``to_diff_dict``: only the fields that differ from the class defaults). kvschema reads
both; the expected layers are written here from the transformers *object* — its processed
``layer_types``, ``sliding_window``, ``num_key_value_heads``, ``head_dim``, per-layer configs and
KV-sharing modes — by each vLLM 0.33 module's rule (cited), not from kvschema's own tables.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

import pytest

from kvschema.hf import HFConfigError, HFLayers, layers_from_hf_config
from kvschema.models.catalog import FAMILIES
from kvschema.models.defaults import FAMILY_DEFAULTS
from kvschema.spec.union import MambaSpec

auto = pytest.importorskip("transformers.models.auto.configuration_auto")
CONFIG_MAPPING = auto.CONFIG_MAPPING

Row = tuple[Any, ...]

# -- kvschema's answer, per decoder layer -------------------------------------------------------


def answer(layers: HFLayers) -> list[list[Row]]:
    """Per decoder layer: ('none',), ('shares', j), or each cache as
    (kind, kv heads, head size, V head size, window) / ('state', shapes)."""
    rows: dict[int, list[Row]] = defaultdict(list)
    for name in layers.layer_names:
        index = int(name.split(".")[1])
        if name in layers.no_cache:
            rows[index].append(("none",))
        elif name in layers.kv_sharing:
            rows[index].append(("shares", int(layers.kv_sharing[name].split(".")[1])))
        else:
            spec = layers[name]
            if isinstance(spec, MambaSpec):
                rows[index].append(("state", spec.shapes))
            else:
                kind = {"full_attention": "full", "sliding_window": "sliding"}.get(
                    spec.kind, "chunked"
                )
                if spec.use_mla:
                    kind = "mla"
                window = getattr(spec, "sliding_window", None) or getattr(
                    spec, "attention_chunk_size", None
                )
                rows[index].append(
                    (kind, spec.num_kv_heads, spec.head_size, spec.head_size_v, window)
                )
    return [rows[i] for i in range(len(rows))]


# -- the expected answer, from the transformers object ---------------------------------------


def attn(kv: int, head: int, window: int | None = None, head_v: int | None = None) -> Row:
    return ("sliding" if window else "full", kv, head, None if head_v == head else head_v, window)


def generic(
    cfg: Any, *, head: str = "config", per_layer: bool = True, offset: int = 0
) -> list[list[Row]]:
    """llama.py and kin: KV heads ``num_key_value_heads``; head ``head_dim or hidden // heads``
    (or always ``hidden // heads``); ``CacheConfig.sliding_window`` only when ``layer_types`` is
    absent or all sliding (vllm/engine/arg_utils.py), per-layer windows where the module reads
    ``layer_types`` (Cohere 2 adds 1, commandr.py)."""
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    size = (
        getattr(cfg, "head_dim", None) if head == "config" else None
    ) or cfg.hidden_size // heads
    types = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None) or None
    model_wide = window if types is None or all(t == "sliding_attention" for t in types) else None
    rows = []
    for i in range(cfg.num_hidden_layers):
        own = (
            window + offset
            if per_layer and types and types[i] == "sliding_attention" and window
            else None
        )
        rows.append([attn(kv, size, own or model_wide)])
    return rows


def mamba2_shapes(
    intermediate: int, groups: int, heads: int, head_dim: int, state: int, conv: int
) -> Row:
    """vLLM mamba_utils.mamba2_state_shape at tp 1, SD layout."""
    return ("state", ((conv - 1, intermediate + 2 * groups * state), (heads, head_dim, state)))


def qwen_rule(cfg: Any, head: str) -> list[list[Row]]:
    """qwen2.py: Qwen2Model asserts max_window_layers == num_hidden_layers when layer types mix."""
    if len(set(getattr(cfg, "layer_types", None) or [])) > 1:
        raise HFConfigError("mixed")
    return generic(cfg, head=head, per_layer=False)


def falcon_rule(cfg: Any) -> list[list[Row]]:
    """falcon.py FalconAttention."""
    heads = cfg.num_attention_heads
    if cfg.new_decoder_architecture:
        kv = cfg.num_kv_heads
    elif cfg.multi_query:
        kv = 1
    else:
        kv = heads
    return [[attn(kv, cfg.hidden_size // heads)]] * cfg.num_hidden_layers


def shared_targets(cfg: Any) -> dict[int, int]:
    """transformers' kv_sharing_modes: a "reuse" layer reads the last non-shared layer of its
    type (vLLM gemma3n.py's first-2 / first-1 is the same for the 4:1 pattern; gemma4.py's rule
    is this one)."""
    first = cfg.num_hidden_layers - cfg.num_kv_shared_layers
    earlier = cfg.layer_types[:first]
    return {
        i: first - 1 - earlier[::-1].index(cfg.layer_types[i])
        for i, mode in enumerate(cfg.kv_sharing_modes)
        if mode == "reuse"
    }


def gemma_n_rule(cfg: Any) -> list[list[Row]]:
    targets = shared_targets(cfg) if cfg.num_kv_shared_layers else {}
    rows = []
    for i, kind in enumerate(cfg.layer_types):
        if i in targets:
            rows.append([("shares", targets[i])])
            continue
        layer = cfg.per_layer_config[i] if hasattr(cfg, "per_layer_config") else cfg
        window = cfg.sliding_window if kind == "sliding_attention" else None
        rows.append([attn(layer.num_key_value_heads, layer.head_dim, window)])
    return rows


def mla_rule(cfg: Any) -> list[list[Row]]:
    """deepseek_v2.py: one latent of kv_lora_rank + qk_rope_head_dim; an indexer of
    index_head_dim + index_head_dim // 128 * 4 uint8 bytes where the layer indexes."""
    latent = ("mla", 1, cfg.kv_lora_rank + cfg.qk_rope_head_dim, None, None)
    if not hasattr(cfg, "index_topk"):
        return [[latent]] * cfg.num_hidden_layers
    size = cfg.index_head_dim + cfg.index_head_dim // 128 * 4
    full = getattr(cfg, "indexer_types", None) or ["full"] * cfg.num_hidden_layers
    return [[latent, ("mla", 1, size, None, None)] if t == "full" else [latent] for t in full]


def hybrid_rule(cfg: Any, model_type: str) -> list[list[Row]]:
    """The state families, each by its module's get_mamba_state_shape_from_config."""
    if model_type in ("mamba", "falcon_mamba"):
        i = cfg.intermediate_size
        return [
            [("state", ((cfg.conv_kernel - 1, i), (i, cfg.state_size)))]
        ] * cfg.num_hidden_layers
    if model_type == "mamba2":
        state = mamba2_shapes(
            cfg.expand * cfg.hidden_size,
            cfg.n_groups,
            cfg.num_heads,
            cfg.head_dim,
            cfg.state_size,
            cfg.conv_kernel,
        )
        return [[state]] * cfg.num_hidden_layers
    if model_type == "jamba":
        i = cfg.mamba_expand * cfg.hidden_size
        state = ("state", ((cfg.mamba_d_conv - 1, i), (i, cfg.mamba_d_state)))
        head = cfg.hidden_size // cfg.num_attention_heads
        return [
            [attn(cfg.num_key_value_heads, head)] if t == "attention" else [state]
            for t in cfg.layers_block_type
        ]
    if model_type == "nemotron_h":
        i = cfg.mamba_num_heads * cfg.mamba_head_dim
        state = mamba2_shapes(
            i,
            cfg.n_groups,
            cfg.mamba_num_heads,
            cfg.mamba_head_dim,
            cfg.ssm_state_size,
            cfg.conv_kernel,
        )
        head = cfg.head_dim or cfg.hidden_size // cfg.num_attention_heads
        pick = {
            "linear_attention": [state],
            "full_attention": [
                attn(cfg.num_key_value_heads, head, getattr(cfg, "sliding_window", None))
            ],
            "mlp": [("none",)],
            "moe": [("none",)],
        }
        return [pick[t] for t in cfg.layers_block_type]
    if model_type in ("granitemoehybrid", "falcon_h1"):
        i = (
            cfg.mamba_d_ssm
            if getattr(cfg, "mamba_d_ssm", None)
            else cfg.mamba_expand * cfg.hidden_size
        )
        state = mamba2_shapes(
            i,
            cfg.mamba_n_groups,
            cfg.mamba_n_heads,
            cfg.mamba_d_head,
            cfg.mamba_d_state,
            cfg.mamba_d_conv,
        )
        heads = cfg.num_attention_heads
        if model_type == "falcon_h1":
            head = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
            return [[attn(cfg.num_key_value_heads, head), state]] * cfg.num_hidden_layers
        full = attn(cfg.num_key_value_heads, cfg.hidden_size // heads)
        return [[full] if t == "full_attention" else [state] for t in cfg.layer_types]
    if model_type == "zamba2":
        i = cfg.mamba_expand * cfg.hidden_size
        state = mamba2_shapes(
            i,
            cfg.mamba_ngroups,
            cfg.n_mamba_heads,
            cfg.mamba_headdim,
            cfg.mamba_d_state,
            cfg.mamba_d_conv,
        )
        full = attn(cfg.num_attention_heads, cfg.attention_head_dim)
        return [[full, state] if t == "hybrid" else [state] for t in cfg.layers_block_type]
    if model_type in ("lfm2", "lfm2_moe"):
        convs = cfg.layer_types is not None and "conv" in cfg.layer_types
        if cfg.layer_types is None or (
            model_type == "lfm2" and convs and not hasattr(cfg, "conv_dim")
        ):
            raise HFConfigError("vLLM reads layer_types, and LFM2's conv_dim")
        dim = getattr(cfg, "conv_dim", 0) if model_type == "lfm2" else cfg.hidden_size
        state = ("state", ((cfg.conv_L_cache - 1, dim),))
        full = attn(cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads)
        return [[full] if t == "full_attention" else [state] for t in cfg.layer_types]
    # gated delta-net: qwen3_next.py / qwen3_5.py / olmo_hybrid.py
    conv = (
        2 * cfg.linear_num_key_heads * cfg.linear_key_head_dim
        + cfg.linear_num_value_heads * cfg.linear_value_head_dim
    )
    state = (
        "state",
        (
            (cfg.linear_conv_kernel_dim - 1, conv),
            (cfg.linear_num_value_heads, cfg.linear_value_head_dim, cfg.linear_key_head_dim),
        ),
    )
    heads = cfg.num_attention_heads
    head = cfg.hidden_size // heads if model_type == "olmo_hybrid" else cfg.head_dim
    full = attn(cfg.num_key_value_heads or heads, head)
    return [[full] if t == "full_attention" else [state] for t in cfg.layer_types]


HIDDEN = {
    "qwen2_moe",
    "olmoe",
    "stablelm",
    "granitemoe",
    "granitemoeshared",
    "granitemoe_swa",
    "internlm2",
    "orion",
    "minicpm",
}
GLOBAL = {
    "qwen2_moe",
    "mixtral",
    "phimoe",
    "gemma",
    "cohere",
    "glm4",
    "glm4_moe",
    "minimax_m2",
    "hy_v3",
    "hyperclovax",
    "nemotron",
    "ernie4_5",
    "ernie4_5_moe",
    "olmoe",
    "stablelm",
}
HYBRID = {
    "mamba",
    "falcon_mamba",
    "mamba2",
    "jamba",
    "nemotron_h",
    "granitemoehybrid",
    "falcon_h1",
    "zamba2",
    "lfm2",
    "lfm2_moe",
    "qwen3_next",
    "qwen3_5_text",
    "qwen3_5_moe_text",
    "olmo_hybrid",
}
MLA = {"deepseek_v2", "deepseek_v3", "glm4_moe_lite", "glm_moe_dsa"}


def expected(model_type: str, cfg: Any) -> list[list[Row]]:
    if model_type in HYBRID:
        return hybrid_rule(cfg, model_type)
    if model_type in MLA:
        return mla_rule(cfg)
    if model_type == "longcat_flash":
        latent = ("mla", 1, cfg.kv_lora_rank + cfg.qk_rope_head_dim, None, None)
        return [[latent, latent]] * cfg.num_layers
    if model_type in ("qwen2", "qwen2_5_omni_text", "qwen2_vl_text", "qwen2_5_vl_text"):
        return qwen_rule(cfg, "hidden")
    if model_type in ("qwen3", "qwen3_vl_text"):
        return qwen_rule(cfg, "config")
    if model_type in ("qwen3_moe", "qwen3_omni_moe_text", "qwen3_vl_moe_text"):
        return generic(cfg, per_layer=False)
    if model_type in ("cohere2", "cohere2_moe"):
        return generic(cfg, offset=1)
    if model_type == "falcon":
        return falcon_rule(cfg)
    if model_type in ("gemma3n_text", "gemma4_text", "gemma4_unified_text"):
        return gemma_n_rule(cfg)
    if model_type == "llama4_text":  # llama4.py: chunked where the layer uses RoPE
        kv = cfg.num_key_value_heads
        return [
            [("chunked", kv, cfg.head_dim, None, cfg.attention_chunk_size)]
            if t == "chunked_attention"
            else [attn(kv, cfg.head_dim)]
            for t in cfg.layer_types
        ]
    if model_type == "gpt_oss":  # gpt_oss.py: layer_idx % 2 == 0 slides
        kv = cfg.num_key_value_heads
        return [
            [attn(kv, cfg.head_dim, cfg.sliding_window if i % 2 == 0 else None)]
            for i in range(cfg.num_hidden_layers)
        ]
    if model_type == "hrm_text":  # hrm_text.py: one slot per stack layer and step, MHA
        slots = cfg.num_layers_per_stack * cfg.H_cycles * (cfg.L_cycles + 1)
        return [[attn(cfg.num_attention_heads, cfg.head_dim)]] * slots
    if model_type == "minicpm3":
        return [
            [attn(cfg.num_attention_heads, cfg.qk_nope_head_dim + cfg.qk_rope_head_dim)]
        ] * cfg.num_hidden_layers
    if model_type == "dbrx":
        return [[attn(cfg.attn_config.kv_n_heads, cfg.d_model // cfg.n_heads)]] * cfg.n_layers
    if model_type in ("gpt2", "gptj", "bloom", "opt", "gpt_neox"):
        return [
            [attn(cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads)]
        ] * cfg.num_hidden_layers
    if (
        model_type == "gpt_bigcode"
    ):  # the config class sets num_key_value_heads (1 with multi_query)
        return [
            [attn(cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads)]
        ] * cfg.num_hidden_layers
    if model_type == "mimo_v2_flash":  # vLLM reads hybrid_layer_pattern, which the class lacks
        raise HFConfigError("no hybrid_layer_pattern")
    return generic(
        cfg, head="hidden" if model_type in HIDDEN else "config", per_layer=model_type not in GLOBAL
    )


#: Realistic variants per model type (keyword arguments of the config class).
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "llama": [
        {"num_key_value_heads": 8},
        {"hidden_size": 2048, "num_attention_heads": 16, "head_dim": 64},
    ],
    "mistral": [
        {"sliding_window": None},
        {"num_hidden_layers": 40, "head_dim": 128, "hidden_size": 5120},
    ],
    "qwen2": [
        {"use_sliding_window": True, "max_window_layers": 0},
        {"use_sliding_window": True, "max_window_layers": 21, "num_hidden_layers": 28},
    ],
    "qwen3": [{"use_sliding_window": True, "max_window_layers": 0}],
    "qwen2_5_vl_text": [
        {
            "num_hidden_layers": 28,
            "hidden_size": 3584,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
        }
    ],
    "qwen2_moe": [{"use_sliding_window": True, "max_window_layers": 28}],
    "qwen3_moe": [
        {"use_sliding_window": True, "sliding_window": 4096},
        {
            "num_hidden_layers": 48,
            "hidden_size": 2048,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
        },
    ],
    "gemma3_text": [
        {
            "num_hidden_layers": 62,
            "num_attention_heads": 32,
            "num_key_value_heads": 16,
            "head_dim": 128,
            "sliding_window": 1024,
        }
    ],
    "gemma3n_text": [
        {"num_hidden_layers": 30, "num_kv_shared_layers": 10},
        {"num_kv_shared_layers": 0},
    ],
    "gemma4_text": [
        {"attention_k_eq_v": True, "num_global_key_value_heads": 1},
        {"num_kv_shared_layers": 12},
        {"global_head_dim": 256, "num_hidden_layers": 12},
    ],
    "gemma4_unified_text": [{"num_kv_shared_layers": 6}],
    "falcon": [
        {
            "new_decoder_architecture": True,
            "num_kv_heads": 8,
            "num_attention_heads": 128,
            "hidden_size": 8192,
            "num_hidden_layers": 60,
        },
        {"multi_query": False},
    ],
    "gpt_bigcode": [{"multi_query": False}],
    "cohere2": [{"num_hidden_layers": 32, "num_key_value_heads": 8, "head_dim": 128}],
    "jamba": [{"attn_layer_offset": 0, "attn_layer_period": 4}],
    "nemotron_h": [{"hybrid_override_pattern": "M-M*-M-M*-"}],
    "granitemoehybrid": [
        {
            "num_hidden_layers": 4,
            "layer_types": ["mamba", "attention", "mamba", "mamba"],
            "hidden_size": 768,
            "num_attention_heads": 12,
            "num_key_value_heads": 4,
            "mamba_n_heads": 48,
            "mamba_d_state": 128,
        }
    ],
    "lfm2": [{"conv_dim": 2560, "full_attn_idxs": [2, 5, 8, 10]}],
    "lfm2_moe": [
        {"num_hidden_layers": 4, "layer_types": ["conv", "full_attention", "conv", "conv"]}
    ],
    "glm_moe_dsa": [{"index_topk_freq": 4}],
    "deepseek_v3": [{"index_topk": 2048, "index_head_dim": 128}],
    "hrm_text": [{"num_layers_per_stack": 4}],
    "smollm3": [{"use_sliding_window": True, "sliding_window": 4096}],
    "olmo3": [{"num_hidden_layers": 16}],
    "granite_swa": [{"num_hidden_layers": 10}],
    "cohere2_moe": [{"first_k_dense_replace": 2}],
}

#: Model types whose vLLM 0.33 config class is not transformers' (checked by hand in
#: tests/test_hf.py instead).
SWAPPED = {"deepseek_v32", "kimi_linear"}

CASES = [
    (model_type, variant)
    for family in FAMILIES
    for model_type in family.model_types
    if model_type in CONFIG_MAPPING and model_type not in SWAPPED and "assistant" not in model_type
    for variant in range(1 + len(VARIANTS.get(model_type, [])))
]


def _instance(model_type: str, variant: int) -> Any:
    kwargs = ([{}, *VARIANTS.get(model_type, [])])[variant]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CONFIG_MAPPING[model_type](**kwargs)


def _read(config: dict[str, Any]) -> list[list[Row]]:
    return answer(layers_from_hf_config({**config, "torch_dtype": "bfloat16"}))


@pytest.mark.parametrize(("model_type", "variant"), CASES, ids=[f"{m}-{v}" for m, v in CASES])
def test_family_matches_the_transformers_config_class(model_type: str, variant: int) -> None:
    cfg = _instance(model_type, variant)
    try:
        want = expected(model_type, cfg)
    except HFConfigError:
        for form in (cfg.to_dict(), cfg.to_diff_dict()):
            with pytest.raises(HFConfigError):
                _read(form)
        return
    assert _read(cfg.to_dict()) == want, "to_dict"
    diff = {**cfg.to_diff_dict(), "model_type": model_type}
    assert _read(diff) == want, "to_diff_dict: a default kvschema does not know"


def test_every_family_default_is_its_config_class_default() -> None:
    """FAMILY_DEFAULTS is each class's dataclass default (the JSON name of the field), or, for
    a field the class fills in when it is left unset, what a default instance holds."""
    for model_type, defaults in FAMILY_DEFAULTS.items():
        if model_type in SWAPPED or model_type not in CONFIG_MAPPING:
            continue
        fields = CONFIG_MAPPING[model_type].__dataclass_fields__
        instance = _instance(model_type, 0)
        for name, value in defaults.items():
            if name in fields and fields[name].default is not None:
                assert fields[name].default == value, (model_type, name)
            elif hasattr(instance, name):
                assert getattr(instance, name) == value, (model_type, name)
            # else a keyword the class pops (Gemma 3's / Cohere 2's sliding_window_pattern):
            # the layer patterns above check it
