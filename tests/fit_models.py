"""Configs the fit tests share (a helper module, not a test file)."""

from typing import Any

#: A complete Qwen3-8B config.json (Qwen/Qwen3-8B on the Hugging Face hub), enough to count
#: its weights and overheads.
QWEN3_8B: dict[str, Any] = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 4096,
    "head_dim": 128,
    "intermediate_size": 12288,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 151936,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "max_position_embeddings": 40960,
}
