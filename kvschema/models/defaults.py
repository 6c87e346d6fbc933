"""The defaults of each model type's config class that a ``config.json`` may leave out.

transformers 5 writes only the fields that differ from its config class's defaults
(``save_pretrained`` with ``use_diff``), so a reader needs them: these are the dataclass
defaults of each class (``CONFIG_MAPPING[model_type]``) for the fields kvschema reads, checked
against transformers by ``tests/test_hf_transformers.py``.  vLLM 0.33 swaps two classes
(``vllm/transformers_utils/config.py``, ``_CONFIG_REGISTRY``): ``deepseek_v32`` loads as
transformers' ``DeepseekV3Config`` and ``kimi_linear`` as vLLM's own ``KimiLinearConfig``;
their defaults are those classes'.

>>> FAMILY_DEFAULTS["qwen3_moe"]["num_key_value_heads"]
4
"""

from __future__ import annotations

from typing import Any

__all__ = ["FAMILY_DEFAULTS"]

#: model_type → field → the config class's default (fields named as a ``config.json`` names them).
# fmt: off
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "afmoe": {"hidden_size": 2048, "num_hidden_layers": 32, "num_attention_heads": 16, "head_dim": 128, "global_attn_every_n_layers": 4, "sliding_window": 1024},
    "apertus": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "arcee": {"hidden_size": 2560, "num_hidden_layers": 32, "num_attention_heads": 32},
    "bloom": {"hidden_size": 64, "n_layer": 2, "n_head": 8},
    "cohere": {"hidden_size": 8192, "num_hidden_layers": 40, "num_attention_heads": 64},
    "cohere2": {"hidden_size": 8192, "num_hidden_layers": 40, "num_attention_heads": 64, "sliding_window": 4096, "sliding_window_pattern": 4},
    "cohere2_moe": {"hidden_size": 8192, "num_hidden_layers": 40, "num_attention_heads": 64, "head_dim": 128, "sliding_window": 4096, "prefix_dense_sliding_window_pattern": 1, "sliding_window_pattern": 4},
    "cwm": {"hidden_size": 6144, "num_hidden_layers": 64, "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128, "sliding_window": 8192},
    "dbrx": {"d_model": 2048, "n_heads": 16, "n_layers": 24},
    "deepseek_v2": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128},
    "deepseek_v3": {"hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128},
    "deepseek_v32": {"hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128},
    "ernie4_5": {"hidden_size": 1024, "num_hidden_layers": 18, "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 128},
    "ernie4_5_moe": {"hidden_size": 2560, "num_hidden_layers": 28, "num_attention_heads": 20, "num_key_value_heads": 4},
    "exaone4": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "sliding_window": 4096, "sliding_window_pattern": 4},
    "exaone_moe": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "sliding_window": 4096, "sliding_window_pattern": 4},
    "falcon": {"hidden_size": 4544, "num_hidden_layers": 32, "num_attention_heads": 71, "new_decoder_architecture": False, "multi_query": True},
    "falcon_h1": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "mamba_d_ssm": 1024, "mamba_n_heads": 128, "mamba_d_head": "auto", "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_conv": 4, "mamba_expand": 2},
    "falcon_mamba": {"hidden_size": 768, "state_size": 16, "num_hidden_layers": 32, "expand": 2, "conv_kernel": 4},
    "flex_olmo": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "gemma": {"hidden_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256},
    "gemma2": {"hidden_size": 2304, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 4096},
    "gemma3_text": {"hidden_size": 2304, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 4096, "sliding_window_pattern": 6},
    "gemma3n_text": {"hidden_size": 2048, "num_hidden_layers": 35, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 256, "sliding_window": 512, "num_kv_shared_layers": 15},
    "gemma4_text": {"hidden_size": 2304, "num_hidden_layers": 30, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 512, "attention_k_eq_v": False, "num_kv_shared_layers": 0},
    "gemma4_unified_text": {"hidden_size": 2304, "num_hidden_layers": 30, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 1024, "attention_k_eq_v": False, "num_kv_shared_layers": 0},
    "glm": {"hidden_size": 4096, "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 2, "head_dim": 128},
    "glm4": {"hidden_size": 4096, "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 2, "head_dim": 128},
    "glm4_moe": {"hidden_size": 4096, "num_hidden_layers": 46, "num_attention_heads": 96, "num_key_value_heads": 8},
    "glm4_moe_lite": {"hidden_size": 2048, "num_hidden_layers": 47, "num_attention_heads": 20, "num_key_value_heads": 20, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "v_head_dim": 256, "qk_nope_head_dim": 192},
    "glm_moe_dsa": {"hidden_size": 6144, "num_hidden_layers": 78, "num_attention_heads": 64, "num_key_value_heads": 64, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "v_head_dim": 256, "qk_nope_head_dim": 192, "index_topk": 2048, "index_head_dim": 128, "head_dim": 64},
    "gpt2": {"n_embd": 768, "n_layer": 12, "n_head": 12},
    "gpt_bigcode": {"n_embd": 768, "n_layer": 12, "n_head": 12, "multi_query": True},
    "gpt_neox": {"hidden_size": 6144, "num_hidden_layers": 44, "num_attention_heads": 64},
    "gpt_oss": {"num_hidden_layers": 36, "hidden_size": 2880, "head_dim": 64, "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128},
    "gptj": {"n_embd": 4096, "n_layer": 28, "n_head": 16},
    "granite": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "granite_swa": {"hidden_size": 2560, "num_hidden_layers": 24, "num_attention_heads": 20, "num_key_value_heads": 4, "sliding_window": 128},
    "granitemoe": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "granitemoe_swa": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "sliding_window": 128},
    "granitemoehybrid": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "mamba_n_heads": 128, "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_head": "auto", "mamba_d_conv": 4, "mamba_expand": 2},
    "granitemoeshared": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "hrm_text": {"hidden_size": 1536, "num_hidden_layers": 16, "num_attention_heads": 12, "head_dim": 128, "H_cycles": 2, "L_cycles": 3},
    "hy_v3": {"hidden_size": 4096, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128},
    "hyperclovax": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "internlm3": {"hidden_size": 4096, "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 2, "head_dim": 128},
    "iquestcoder": {"hidden_size": 5120, "num_hidden_layers": 80, "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128},
    "jais2": {"hidden_size": 3328, "num_hidden_layers": 32, "num_attention_heads": 26},
    "jamba": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "attn_layer_period": 8, "attn_layer_offset": 4, "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2},
    "kimi_linear": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "kolibri1": {"hidden_size": 2560, "num_hidden_layers": 50, "num_attention_heads": 48, "num_key_value_heads": 4, "sliding_window": 513, "head_dim": 128},
    "laguna": {"hidden_size": 2048, "num_hidden_layers": 40, "num_attention_heads": 48, "num_key_value_heads": 8, "sliding_window": 512, "head_dim": 128},
    "lfm2": {"hidden_size": 2560, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "conv_L_cache": 3},
    "lfm2_moe": {"hidden_size": 2048, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "conv_L_cache": 3},
    "llama": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "llama4_text": {"hidden_size": 5120, "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128, "no_rope_layer_interval": 4, "attention_chunk_size": 8192},
    "longcat_flash": {"hidden_size": 6144, "num_layers": 28, "num_attention_heads": 64, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "head_dim": 64, "v_head_dim": 128},
    "mamba": {"hidden_size": 768, "state_size": 16, "num_hidden_layers": 32, "expand": 2, "conv_kernel": 4},
    "mamba2": {"num_heads": 128, "head_dim": 64, "hidden_size": 4096, "state_size": 128, "num_hidden_layers": 64, "expand": 2, "conv_kernel": 4, "n_groups": 8},
    "mellum": {"hidden_size": 2304, "num_hidden_layers": 28, "num_attention_heads": 32, "num_key_value_heads": 4, "sliding_window": 1024, "head_dim": 128},
    "mimo_v2_flash": {"hidden_size": 4096, "num_hidden_layers": 48, "num_attention_heads": 64, "num_key_value_heads": 4, "head_dim": 192, "v_head_dim": 128, "sliding_window": 129},
    "minicpm3": {"hidden_size": 2560, "num_hidden_layers": 62, "num_attention_heads": 40, "num_key_value_heads": 40, "kv_lora_rank": 256, "qk_nope_head_dim": 64, "qk_rope_head_dim": 32},
    "minimax_m2": {"hidden_size": 3072, "num_hidden_layers": 62, "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128},
    "ministral3": {"hidden_size": 4096, "num_hidden_layers": 34, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128},
    "mistral": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "sliding_window": 4096},
    "mixtral": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8},
    "nemotron": {"hidden_size": 6144, "num_hidden_layers": 32, "num_attention_heads": 48},
    "nemotron_h": {"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "ssm_state_size": 128, "mamba_num_heads": 128, "mamba_head_dim": 64, "n_groups": 8, "conv_kernel": 4, "expand": 2, "mamba_ssm_cache_dtype": "float32", "layers_block_type": ["linear_attention", "moe", "full_attention", "mlp"]},
    "olmo": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "olmo2": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32},
    "olmo3": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "sliding_window": 4096},
    "olmo_hybrid": {"hidden_size": 3840, "num_hidden_layers": 32, "num_attention_heads": 30, "linear_conv_kernel_dim": 4},
    "olmoe": {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 16},
    "opt": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "phi": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 32},
    "phi3": {"hidden_size": 3072, "num_hidden_layers": 32, "num_attention_heads": 32},
    "phimoe": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8},
    "qwen2": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28},
    "qwen2_5_omni_text": {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "use_sliding_window": False, "sliding_window": 32768, "max_window_layers": 28},
    "qwen2_5_vl_text": {"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 80},
    "qwen2_moe": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16, "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28},
    "qwen2_vl_text": {"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 80},
    "qwen3": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128, "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28},
    "qwen3_5_moe_text": {"hidden_size": 2048, "num_hidden_layers": 40, "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32},
    "qwen3_5_text": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 256, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32},
    "qwen3_moe": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 32, "num_key_value_heads": 4, "use_sliding_window": False, "sliding_window": 4096},
    "qwen3_next": {"hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32},
    "qwen3_omni_moe_text": {"hidden_size": 2048, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4},
    "qwen3_vl_moe_text": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16},
    "qwen3_vl_text": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128},
    "seed_oss": {"hidden_size": 4096, "num_hidden_layers": 64, "num_attention_heads": 80, "num_key_value_heads": 8, "head_dim": 128},
    "smollm3": {"hidden_size": 2048, "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 4, "use_sliding_window": False, "no_rope_layer_interval": 4},
    "stablelm": {"hidden_size": 2560, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32},
    "starcoder2": {"hidden_size": 3072, "num_hidden_layers": 30, "num_attention_heads": 24, "num_key_value_heads": 2},
    "vaultgemma": {"hidden_size": 2304, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 4096},
    "zamba2": {"hidden_size": 2560, "num_hidden_layers": 54, "mamba_d_state": 64, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_ngroups": 1, "n_mamba_heads": 8, "num_attention_heads": 32},
}
# fmt: on
