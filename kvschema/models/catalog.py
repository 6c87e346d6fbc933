"""The families kvschema reads: model types, vLLM 0.33 architectures, and each one's rule.

:data:`FAMILIES` is the one table: :func:`kvschema.models.hf.layers_from_hf_config` picks a
family by a top-level config's ``architectures`` (vLLM picks the module by them), else by the
language model's ``model_type``,
``kvschema models`` lists it, and ``docs/models.md``'s family table is :func:`families_markdown`.

>>> family_for("qwen3_moe", []).name
'Qwen3-MoE'
>>> family_for("brand_new", ["InternLM3ForCausalLM"]).name
'Llama'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import kvschema.models.gemmas as gemmas
import kvschema.models.hybrids as hybrids
import kvschema.models.mla as mla
import kvschema.models.readers as readers
from kvschema.models.fields import Fields
from kvschema.models.layers import Layer
from kvschema.models.readers import Reader, attention, every

__all__ = ["FAMILIES", "Family", "families_markdown", "family_for", "models_listing"]


@dataclass(frozen=True)
class Family:
    """One rule: the model types and vLLM architectures it reads, and how.

    ``aliases`` maps a name the readers use to the one a ``config.json`` writes (a config
    class's ``attribute_map``: GPT-2's ``n_layer`` …); ``note`` rides along on the result.
    """

    name: str
    model_types: tuple[str, ...]
    architectures: tuple[str, ...]
    read: Reader
    rule: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    note: str | None = None

    def layers(self, fields: Fields) -> list[Layer]:
        """The family's layer records for ``fields``.

        >>> family_for("gpt2", []).layers(Fields({"n_layer": 1, "n_head": 12, "n_embd": 768},
        ...     "gpt2", aliases={"num_hidden_layers": "n_layer", "num_attention_heads":
        ...     "n_head", "hidden_size": "n_embd"}))[0].caches[0][1].head_size
        64
        """
        return self.read(fields)


def _granite_swa(fields: Fields, count: int) -> list[str] | None:
    """GraniteSWA / GraniteMoeSWA: every 4th layer from the first full (their config classes)."""
    return every(4, full_at=1)(fields, count)


def _exaone4(fields: Fields, count: int) -> list[str]:
    """EXAONE 4 / EXAONE-MoE: an int ``sliding_window_pattern`` (4) marks every p-th layer full;
    the config classes fail on a string pattern or without a window, so kvschema refuses them."""
    pattern = fields.get("sliding_window_pattern", 4)
    if fields.get("sliding_window") is None or isinstance(pattern, str):
        raise fields.error(
            f"sliding_window_pattern {pattern!r} (with sliding_window "
            f"{fields.get('sliding_window')!r}) and no layer_types: its config class cannot "
            "build the layer types; give layer_types",
            field="sliding_window_pattern",
        )
    return every(4, full_at=0, field="sliding_window_pattern")(fields, count)


def _cohere2_moe(fields: Fields, count: int) -> list[str]:
    """Cohere2-MoE: the first ``first_k_dense_replace`` layers follow
    ``prefix_dense_sliding_window_pattern``, the rest ``sliding_window_pattern``."""
    dense = fields.int("first_k_dense_replace", default=0, minimum=0, maximum=count)
    prefix = every(1, full_at=0, field="prefix_dense_sliding_window_pattern")(fields, dense)
    rest = every(4, full_at=0, field="sliding_window_pattern")(fields, count - dense)
    return prefix + rest


def _smollm3(fields: Fields, count: int) -> list[str]:
    """SmolLM3: sliding on the NoPE layers when ``use_sliding_window`` and a window is set."""
    rope = (
        fields.ints("no_rope_layers", maximum=1)
        if fields.get("no_rope_layers") is not None
        else [
            int((i + 1) % fields.int("no_rope_layer_interval", default=4) != 0)
            for i in range(count)
        ]
    )
    if len(rope) != count:
        raise fields.error(f"no_rope_layers must list {count} flags", field="no_rope_layers")
    slide = fields.flag("use_sliding_window", False) and fields.get("sliding_window") is not None
    return ["sliding_attention" if slide and not r else "full_attention" for r in rope]


def _bigcode(fields: Fields) -> list[Layer]:
    """GPTBigCode: one KV head with ``multi_query`` (the config class sets
    ``num_key_value_heads`` so, which vLLM's Transformers backend reads), else one per head."""
    heads = fields.int("num_attention_heads")
    kv = 1 if fields.flag("multi_query", True) else heads
    return [
        Layer(((name, type(cache)(**{**cache.__dict__, "kv_heads": kv})),))
        for layer in readers.mhsa()(fields)
        for name, cache in layer.caches
    ]


_BACKEND_TYPES: dict[str, readers.Pattern] = {
    "olmo3": every(4, full_at=0),
    "cwm": every(4, full_at=1),
    "kolibri1": every(5, full_at=0),
    "vaultgemma": every(2, full_at=0),
    "smollm3": _smollm3,
}

_GPT2 = {"num_hidden_layers": "n_layer", "num_attention_heads": "n_head", "hidden_size": "n_embd"}
_DBRX = {"num_hidden_layers": "n_layers"}
# vLLM's RWConfig (legacy Falcon, transformers_utils/configs/falcon.py) names these so
_RW = {"num_hidden_layers": "n_layer", "num_attention_heads": "n_head", "num_kv_heads": "n_head_kv"}
_PER_LAYER = "full attention; sliding where `layer_types` says so"
_GLOBAL = "full attention (every layer windowed when `sliding_window` is set and `layer_types` is absent or all sliding)"

#: Every family kvschema reads, in the order docs and ``kvschema models`` list them.
# fmt: off
FAMILIES: tuple[Family, ...] = (
    Family("Llama", ("llama", "internlm3", "iquestcoder"), ("LlamaForCausalLM", "LLaMAForCausalLM", "InternLM3ForCausalLM", "IQuestCoderForCausalLM", "TeleChat3ForCausalLM"), attention(), _PER_LAYER),
    Family("Mistral", ("mistral", "ministral3"), ("MistralForCausalLM", "Ministral3ForCausalLM"), attention(), _PER_LAYER),
    Family("Mixtral", ("mixtral",), ("MixtralForCausalLM",), attention(per_layer=False), _GLOBAL),
    Family("PhiMoE", ("phimoe",), ("PhiMoEForCausalLM",), attention(per_layer=False), _GLOBAL),
    Family("Phi-3", ("phi3",), ("Phi3ForCausalLM",), attention(), _PER_LAYER),
    Family("Qwen2 / Qwen2.5", ("qwen2", "mimo", "qwen2_5_omni_text", "qwen2_vl_text", "qwen2_5_vl_text"), ("Qwen2ForCausalLM", "MiMoForCausalLM"), readers.qwen(head_dim="hidden"), "full; every layer windowed with `use_sliding_window` and `max_window_layers` 0 (a mix is refused, as vLLM refuses it); `hidden_size // heads`"),
    Family("Qwen3", ("qwen3", "qwen3_vl_text"), ("Qwen3ForCausalLM",), readers.qwen(head_dim="config"), "as Qwen2, with `head_dim`"),
    Family("Qwen2-MoE", ("qwen2_moe",), ("Qwen2MoeForCausalLM",), readers.qwen2_moe, "full unless every layer slides; `hidden_size // heads`"),
    Family("Qwen3-MoE", ("qwen3_moe", "qwen3_omni_moe_text", "qwen3_vl_moe_text"), ("Qwen3MoeForCausalLM",), readers.qwen3_moe, "every layer windowed with `use_sliding_window`; `head_dim` or `hidden_size // heads`"),
    Family("Gemma", ("gemma",), ("GemmaForCausalLM",), attention(per_layer=False), "full attention, `head_dim`"),
    Family("Gemma 2", ("gemma2",), ("Gemma2ForCausalLM",), readers.gemma2, "`layer_types`, else even layers sliding"),
    Family("Gemma 3", ("gemma3_text", "rnj1"), ("Gemma3ForCausalLM", "Rnj1ForCausalLM"), readers.gemma3, "`layer_types`, else every `sliding_window_pattern`-th (6) layer full"),
    Family("Gemma 3n", ("gemma3n_text",), ("Gemma3nForCausalLM",), gemmas.gemma3n, "every 5th layer full; the last `num_kv_shared_layers` layers share layer first-2 (sliding) / first-1 (full): no cache of their own"),
    Family("Gemma 4", ("gemma4_text", "gemma4_unified_text"), ("Gemma4ForCausalLM",), gemmas.gemma4, "every 6th and the last layer full; full layers take `per_layer_config` (else `global_head_dim`, and `num_global_key_value_heads` with `attention_k_eq_v`); the last `num_kv_shared_layers` layers share the last earlier layer of their type"),
    Family("Gemma 4 assistant", ("gemma4_assistant", "gemma4_unified_assistant"), (), gemmas.gemma4_assistant, "a draft model reading its target's KV: no cache of its own", note="a Gemma 4 assistant (draft) model reads every layer's KV from its target model: it holds no cache of its own"),
    Family("Cohere", ("cohere",), ("CohereForCausalLM",), attention(per_layer=False), "full attention"),
    Family("Cohere 2", ("cohere2",), ("Cohere2ForCausalLM",), attention(offset=1, generate=every(4, full_at=0, field="sliding_window_pattern")), "every `sliding_window_pattern`-th (4) layer full, the rest a window of `sliding_window + 1`"),
    Family("Cohere 2 MoE", ("cohere2_moe",), ("Cohere2MoeForCausalLM",), attention(offset=1, generate=_cohere2_moe), "as Cohere 2, the first `first_k_dense_replace` layers by `prefix_dense_sliding_window_pattern`"),
    Family("GLM-4", ("glm4", "glm4_moe"), ("Glm4ForCausalLM", "Glm4MoeForCausalLM"), attention(per_layer=False), _GLOBAL),
    Family("GLM", ("glm",), ("GlmForCausalLM",), attention(), _PER_LAYER + " (Transformers backend)"),
    Family("Granite", ("granite", "granite_swa"), ("GraniteForCausalLM", "GraniteSWAForCausalLM"), attention(generate=lambda f, n: _granite_swa(f, n) if f.model_type == "granite_swa" else None), _PER_LAYER + "; GraniteSWA: every 4th layer from the first full"),
    Family("Granite MoE", ("granitemoe", "granitemoeshared", "granitemoe_swa"), ("GraniteMoeForCausalLM", "GraniteMoeSharedForCausalLM", "GraniteMoeSWAForCausalLM"), attention(head_dim="hidden", generate=lambda f, n: _granite_swa(f, n) if f.model_type.endswith("_swa") else None), "as Granite; `hidden_size // heads`"),
    Family("EXAONE 4 / EXAONE-MoE", ("exaone4", "exaone_moe"), ("Exaone4ForCausalLM", "ExaoneMoeForCausalLM", "ExaoneMoEForCausalLM"), attention(generate=_exaone4), "`layer_types`, else every `sliding_window_pattern`-th (4) layer full"),
    Family("AFMoE", ("afmoe",), ("AfmoeForCausalLM",), attention(generate=every(4, full_at=0, field="global_attn_every_n_layers")), "every `global_attn_every_n_layers`-th (4) layer full, the rest sliding"),
    Family("Apertus / Laguna", ("apertus", "laguna"), ("ApertusForCausalLM", "LagunaForCausalLM"), attention(), _PER_LAYER),
    Family("Llama-like (global window)", ("minimax_m2", "hy_v3", "hyperclovax", "nemotron", "ernie4_5", "ernie4_5_moe"), ("MiniMaxM2ForCausalLM", "HYV3ForCausalLM", "HyperCLOVAXForCausalLM", "NemotronForCausalLM", "Ernie4_5ForCausalLM", "Ernie4_5_MoeForCausalLM"), attention(per_layer=False), _GLOBAL),
    Family("hidden-size heads", ("olmoe", "internlm2", "orion", "stablelm", "minicpm", "deepseek"), ("OlmoeForCausalLM", "InternLM2ForCausalLM", "OrionForCausalLM", "StableLmForCausalLM", "MiniCPMForCausalLM", "DeepseekForCausalLM"), attention(head_dim="hidden", per_layer=False), _GLOBAL + "; `hidden_size // heads` whatever `head_dim` says"),
    Family("GPT-2", ("gpt2",), ("GPT2LMHeadModel",), readers.mhsa(), "multi-head, `n_embd // n_head`", aliases=_GPT2),
    Family("GPT-J", ("gptj",), ("GPTJForCausalLM",), readers.mhsa(), "multi-head, `n_embd // n_head`", aliases=_GPT2),
    Family("BLOOM", ("bloom",), ("BloomForCausalLM",), readers.mhsa(), "multi-head, `hidden_size // n_head`", aliases={"num_hidden_layers": "n_layer", "num_attention_heads": "n_head"}),
    Family("OPT", ("opt",), ("OPTForCausalLM",), readers.mhsa(), "multi-head, `hidden_size // heads`"),
    Family("GPT-NeoX", ("gpt_neox",), ("GPTNeoXForCausalLM",), attention(), "multi-head, `hidden_size // heads` (Transformers backend)"),
    Family("StarCoder (GPTBigCode)", ("gpt_bigcode",), ("GPTBigCodeForCausalLM",), _bigcode, "one KV head with `multi_query`, `n_embd // n_head` (Transformers backend)", aliases=_GPT2),
    Family("Transformers backend", ("starcoder2", "olmo", "olmo2", "phi", "arcee", "flex_olmo", "jais2", "seed_oss", "mellum"), ("Starcoder2ForCausalLM", "OlmoForCausalLM", "Olmo2ForCausalLM", "PhiForCausalLM", "ArceeForCausalLM", "FlexOlmoForCausalLM", "Jais2ForCausalLM", "SeedOssForCausalLM", "MellumForCausalLM"), attention(), _PER_LAYER + " (vLLM's Transformers backend)"),
    Family("OLMo 3 / CWM / Kolibri / VaultGemma / SmolLM3", ("olmo3", "cwm", "kolibri1", "vaultgemma", "smollm3"), ("Olmo3ForCausalLM", "CwmForCausalLM", "Kolibri1ForCausalLM", "VaultGemmaForCausalLM", "SmolLM3ForCausalLM"), attention(generate=lambda f, n: _BACKEND_TYPES[f.model_type](f, n)), "`layer_types`, else their config classes' patterns (Transformers backend)"),
    Family("gpt-oss", ("gpt_oss",), ("GptOssForCausalLM",), readers.gpt_oss, "even layers a window of `sliding_window`, odd layers full"),
    Family("Llama 4", ("llama4_text",), ("Llama4ForCausalLM",), readers.llama4, "chunked local attention (`attention_chunk_size`) on the RoPE layers, full on every `no_rope_layer_interval`-th"),
    Family("Falcon", ("falcon", "RefinedWeb", "RefinedWebModel"), ("FalconForCausalLM",), readers.falcon, "`num_kv_heads` with `new_decoder_architecture`, 1 with `multi_query`, else one per head; `hidden_size // heads`", aliases=_RW),
    Family("MiMo-V2-Flash", ("mimo_v2_flash", "mimo_v2"), ("MiMoV2FlashForCausalLM", "MiMoV2ForCausalLM"), readers.mimo_v2, "`hybrid_layer_pattern` 1: a window of `sliding_window_size` with the `swa_*` heads; V heads of `v_head_dim`"),
    Family("HRM", ("hrm_text",), ("HrmTextForCausalLM",), readers.hrm, "one cache slot per stack layer and step: `num_layers_per_stack x H_cycles x (L_cycles + 1)`"),
    Family("MiniCPM3", ("minicpm3",), ("MiniCPM3ForCausalLM",), readers.minicpm3, "multi-head, K and zero-padded V of `qk_nope_head_dim + qk_rope_head_dim`"),
    Family("ChatGLM", ("chatglm",), ("ChatGLMModel", "ChatGLMForConditionalGeneration"), readers.chatglm, "`multi_query_group_num` KV heads, `hidden_size // heads`"),
    Family("DBRX", ("dbrx",), ("DbrxForCausalLM",), readers.dbrx, "`attn_config.kv_n_heads`, `d_model // n_heads`", aliases=_DBRX),
    Family("Step-3 text", ("step3_text",), ("Step3TextForCausalLM",), readers.step3_text, "one KV head, `head_dim`"),
    Family("DeepSeek-V2 / V3 (MLA)", ("deepseek_v2", "deepseek_v3", "kimi_k2", "glm4_moe_lite"), ("DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "MistralLarge3ForCausalLM", "Glm4MoeLiteForCausalLM"), mla.deepseek(), "MLA: one latent of `kv_lora_rank + qk_rope_head_dim`, never split; plus the sparse-attention indexer when `index_topk` is set"),
    Family("DeepSeek-V3.2", ("deepseek_v32",), ("DeepseekV32ForCausalLM",), mla.deepseek(dsa="required"), "MLA, and an indexer cache of `index_head_dim + index_head_dim / 128 x 4` bytes on the indexing layers"),
    Family("GLM-5 (MoE DSA)", ("glm_moe_dsa",), ("GlmMoeDsaForCausalLM",), mla.deepseek(dsa="always"), "as DeepSeek-V3.2"),
    Family("LongCat-Flash", ("longcat_flash",), ("LongcatFlashForCausalLM",), mla.longcat, "two MLA sublayers per layer"),
    Family("Kimi-Linear", ("kimi_linear",), ("KimiLinearForCausalLM",), mla.kimi_linear, "KDA state on `linear_attn_config.kda_layers` (1-based), MLA elsewhere"),
    Family("Mamba / Falcon-Mamba", ("mamba", "falcon_mamba"), ("MambaForCausalLM", "FalconMambaForCausalLM"), hybrids.mamba, "Mamba-1 state on every layer"),
    Family("Mamba-2", ("mamba2",), ("Mamba2ForCausalLM",), hybrids.mamba2, "Mamba-2 state on every layer"),
    Family("Jamba", ("jamba",), ("JambaForCausalLM",), hybrids.jamba, "attention where `i % attn_layer_period == attn_layer_offset`, Mamba-1 elsewhere"),
    Family("Nemotron-H", ("nemotron_h",), ("NemotronHForCausalLM", "NemotronHPuzzleForCausalLM"), hybrids.nemotron_h, "`layers_block_type` / `hybrid_override_pattern`: Mamba-2, attention, MLP and MoE blocks"),
    Family("Granite 4.0-H", ("granitemoehybrid",), ("GraniteMoeHybridForCausalLM",), hybrids.granite_hybrid, "`layer_types`: Mamba-2 / full attention"),
    Family("Falcon-H1", ("falcon_h1",), ("FalconH1ForCausalLM",), hybrids.falcon_h1, "attention and Mamba-2 side by side in every layer"),
    Family("Zamba2", ("zamba2",), ("Zamba2ForCausalLM",), hybrids.zamba2, "Mamba-2 everywhere; `hybrid` layers also attention with a cache of their own"),
    Family("LFM2", ("lfm2",), ("Lfm2ForCausalLM",), hybrids.lfm2(channels="conv_dim"), "`layer_types` / `full_attn_idxs`: attention, short-conv state of `conv_dim` elsewhere"),
    Family("LFM2-MoE", ("lfm2_moe",), ("Lfm2MoeForCausalLM",), hybrids.lfm2(channels="hidden_size"), "`layer_types`: attention, short-conv state of `hidden_size` elsewhere"),
    Family("Qwen3-Next", ("qwen3_next",), ("Qwen3NextForCausalLM",), hybrids.gated_delta(head_dim="config"), "gated delta-net, full attention every `full_attention_interval`-th (4) layer"),
    Family("Qwen3.5", ("qwen3_5_text", "qwen3_5_moe_text"), ("Qwen3_5ForCausalLM", "Qwen3_5MoeForCausalLM"), hybrids.gated_delta(head_dim="config", ssm_field="mamba_ssm_dtype"), "as Qwen3-Next; SSM state in `mamba_ssm_dtype`"),
    Family("OLMo-Hybrid", ("olmo_hybrid",), ("OlmoHybridForCausalLM",), hybrids.gated_delta(head_dim="hidden"), "gated delta-net by `layer_types`; `hidden_size // heads`"),
    Family("Nemotron-NAS (DeciLM)", ("nemotron-nas",), ("DeciLMForCausalLM",), hybrids.nemotron_nas, "`block_configs`: no-op attention keeps nothing, else `heads // n_heads_in_group` KV heads"),
)
# fmt: on


_BY_TYPE = {t: f for f in FAMILIES for t in f.model_types}
_BY_ARCH = {a: f for f in FAMILIES for a in f.architectures}


def family_for(
    model_type: str, architectures: Sequence[str], *, by_architecture: bool = False
) -> Family | None:
    """The family of ``model_type``, else of the first architecture kvschema knows.

    ``by_architecture`` asks the architectures first, as vLLM picks a model's module by them
    (a config's ``model_type`` names the config class; its ``architectures`` the module).

    >>> family_for("nemotron_h", []).name, family_for("who_knows", []) is None
    ('Nemotron-H', True)
    >>> family_for("llama", ["Qwen2ForCausalLM"], by_architecture=True).name
    'Qwen2 / Qwen2.5'
    """
    by_arch = next((_BY_ARCH[name] for name in architectures if name in _BY_ARCH), None)
    if by_architecture and by_arch is not None:
        return by_arch
    return _BY_TYPE.get(model_type) or by_arch


def families_markdown() -> str:
    """docs/models.md's family table, from :data:`FAMILIES`.

    >>> families_markdown().splitlines()[0]
    '| family | model_type | vLLM 0.33 architectures | layers |'
    """
    rows = ["| family | model_type | vLLM 0.33 architectures | layers |", "|---|---|---|---|"]
    for family in FAMILIES:
        types = ", ".join(f"`{t}`" for t in family.model_types)
        archs = ", ".join(family.architectures) or "—"
        rows.append(f"| {family.name} | {types} | {archs} | {family.rule} |")
    return "\n".join(rows)


def models_listing() -> str:
    """What ``kvschema models`` prints: each family, its model types and its rule.

    >>> models_listing().splitlines()[0]
    'kvschema reads 62 families (vLLM 0.33 rules):'
    """
    lines = [f"kvschema reads {len(FAMILIES)} families (vLLM 0.33 rules):", ""]
    for family in FAMILIES:
        lines.append(f"{family.name}: {', '.join(family.model_types)}")
        lines.append(f"    {family.rule.replace('`', '')}")
    return "\n".join(lines)
