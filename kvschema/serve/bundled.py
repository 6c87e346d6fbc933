"""Example models shipped with kvschema: each one's ``config.json`` (the fields kvschema reads, as
published on the Hugging Face hub), read once from the package and never from a request's path.

Their parameter counts match the published ones (``tests/test_weights.py`` checks the same
configs), so ``kvschema fit`` counts their weights without a checkpoint.

>>> sorted(BUNDLED)[:3]
['deepseek-v3', 'gemma2-9b', 'gpt-oss-20b']
>>> bundled_config("llama3-8b")["model_type"]
'llama'
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from kvschema.errors import KVSchemaError

__all__ = ["BUNDLED", "UnknownModelError", "bundled_config"]

#: name -> (title, the Hugging Face repository the config is taken from).
BUNDLED: dict[str, tuple[str, str]] = {
    "llama3-8b": ("Llama 3.1 8B", "meta-llama/Llama-3.1-8B"),
    "llama3-70b": ("Llama 3 70B", "meta-llama/Meta-Llama-3-70B"),
    "mistral-7b-v0.1": ("Mistral 7B v0.1 (sliding window)", "mistralai/Mistral-7B-v0.1"),
    "mixtral-8x7b": ("Mixtral 8x7B (MoE)", "mistralai/Mixtral-8x7B-v0.1"),
    "qwen2.5-7b": ("Qwen2.5 7B", "Qwen/Qwen2.5-7B"),
    "qwen3-8b": ("Qwen3 8B", "Qwen/Qwen3-8B"),
    "qwen3-30b-a3b": ("Qwen3 30B-A3B (MoE)", "Qwen/Qwen3-30B-A3B"),
    "qwen3-next-80b": ("Qwen3-Next 80B-A3B (hybrid)", "Qwen/Qwen3-Next-80B-A3B-Instruct"),
    "qwen3.5-0.8b": ("Qwen3.5 0.8B (hybrid)", "Qwen/Qwen3.5-0.8B"),
    "gemma2-9b": ("Gemma 2 9B (sliding window)", "google/gemma-2-9b"),
    "gpt-oss-20b": ("gpt-oss 20B (MXFP4)", "openai/gpt-oss-20b"),
    "deepseek-v3": ("DeepSeek-V3 671B (MLA, FP8)", "deepseek-ai/DeepSeek-V3"),
}


class UnknownModelError(KVSchemaError):
    """A model name that is not one of the bundled examples.

    >>> UnknownModelError("no bundled model 'x'").error_type
    'unknown_model'
    """

    error_type = "unknown_model"


@cache
def _text(name: str) -> str:
    return resources.files("kvschema.serve").joinpath("configs", f"{name}.json").read_text("utf-8")


def bundled_config(name: str) -> dict[str, Any]:
    """A fresh copy of bundled model ``name``'s ``config.json``."""
    if name not in BUNDLED:
        raise UnknownModelError(
            f"no bundled model {name[:80]!r}; choose one of {', '.join(sorted(BUNDLED))}",
            model=name[:80],
        )
    data: dict[str, Any] = json.loads(_text(name))
    return data
