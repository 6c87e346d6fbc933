"""What each decoder layer keeps, as one word per layer: the parameter count's view of a model.

``full``, ``sliding``, ``chunked`` (attention), ``mla`` (a latent per token), ``mamba1``,
``mamba2``, ``gated_delta`` (recurrent state) or ``none`` (no cache: MLP / MoE blocks), read
from what :func:`~kvschema.models.hf.layers_from_hf_config` reads.

>>> layer_kinds({"model_type": "gemma3_text", "num_hidden_layers": 6,
...              "torch_dtype": "bfloat16"}, "gemma3_text")
['sliding', 'sliding', 'sliding', 'sliding', 'sliding', 'full']
>>> family_of("qwen3_5_moe_text")
'qwen3_next'
"""

from __future__ import annotations

import warnings
from typing import Any

from kvschema.errors import KVSchemaWarning
from kvschema.models.hf import layers_from_hf_config
from kvschema.spec.attention import ChunkedLocalAttentionSpec, SlidingWindowSpec
from kvschema.spec.union import CacheSpec, MambaSpec

__all__ = ["family_of", "layer_kinds"]

# model types counted by the rules of another (a MoE or multimodal sibling of the same shape)
_SIBLINGS = {
    "qwen2_moe": "qwen2",
    "qwen3_moe": "qwen3",
    "gemma3": "gemma3_text",
    "llama4": "llama4_text",
    "qwen3_5": "qwen3_next",
    "qwen3_5_text": "qwen3_next",
    "qwen3_5_moe": "qwen3_next",
    "qwen3_5_moe_text": "qwen3_next",
}

# the state mixer each hybrid family's Mamba / linear layers run
_MIXERS = {"mamba1": "mamba1", "mamba2": "mamba2", "gated_delta_net": "gated_delta"}


def family_of(model_type: str) -> str:
    """The parameter-count rule set a model_type uses (its own name, or its sibling's)."""
    return _SIBLINGS.get(model_type, model_type)


def _kind(spec: CacheSpec, mixer: str) -> str:
    if isinstance(spec, MambaSpec):
        return mixer
    if isinstance(spec, SlidingWindowSpec):
        return "sliding"
    if isinstance(spec, ChunkedLocalAttentionSpec):
        return "chunked"
    return "mla" if getattr(spec, "use_mla", False) else "full"


def layer_kinds(config: dict[str, Any], model_type: str) -> list[str]:
    """One word per decoder layer, in order (see the module's list)."""
    with warnings.catch_warnings():  # a missing dtype changes no layer's kind
        warnings.simplefilter("ignore", KVSchemaWarning)
        layers = layers_from_hf_config({**config, "model_type": model_type})
    mixers = [_MIXERS.get(m, m) for m in layers.mixers]
    mixer = mixers[0] if len(mixers) == 1 else "state"
    return [_kind(layers[name], mixer) if name in layers else "none" for name in layers.layer_names]
