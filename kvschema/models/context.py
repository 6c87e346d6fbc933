"""A model's own context length, derived from its config as vLLM 0.33 derives it.

vLLM's ``_get_and_verify_max_len`` (``vllm/config/model.py``) takes the smallest of the
config's length keys (``model_max_length`` overriding them), scales it by the RoPE factor
(except YaRN, Llama-3, LongRoPE and Gemma 3, whose lengths are already scaled), and uses it when
``--max-model-len`` is not given; a larger request is refused unless
``VLLM_ALLOW_LONG_MAX_MODEL_LEN`` is set.

>>> length = model_length({"model_type": "llama", "max_position_embeddings": 131072,
...                        "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})
>>> length.default, length.resolve(None), length.resolve(8192)
(131072, 131072, 8192)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError

__all__ = ["LENGTH_DEFAULTS", "LENGTH_KEYS", "ModelLength", "model_length"]

#: The config keys vLLM reads a model's length from, in its order (the smallest wins).
LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)

#: The length a config.json may leave out: its transformers config class's default (checked
#: against transformers by the tests), by model_type.
LENGTH_DEFAULTS: dict[str, int] = {
    "cohere2": 8192,
    "deepseek_v2": 2048,
    "deepseek_v3": 4096,
    "gemma2": 8192,
    "gemma3_text": 131072,
    "gpt_oss": 131072,
    "jamba": 262144,
    "llama": 2048,
    "llama4_text": 131072,
    "minimax_m2": 196608,
    "mistral": 131072,
    "mixtral": 131072,
    "nemotron_h": 4096,
    "olmo2": 2048,
    "phi3": 4096,
    "qwen2": 32768,
    "qwen2_moe": 32768,
    "qwen3": 32768,
    "qwen3_5_moe_text": 32768,
    "qwen3_5_text": 32768,
    "qwen3_moe": 32768,
    "qwen3_next": 32768,
}

# RoPE types whose config length is already the scaled one: no factor applied on top.
_PRESCALED = frozenset(
    {"su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling"}
)


class ModelLength(NamedTuple):
    """What a config says of its context length; :meth:`resolve` applies vLLM's rule."""

    #: The derived length (scaled by RoPE when vLLM scales it), None when no key is set.
    derived: float | None
    #: The key it came from, as vLLM's error names it.
    key: str | None
    #: ``model_max_length`` when the config sets it (a request up to it is allowed).
    model_max_length: float | None
    #: What vLLM uses when no length is asked for (LongRoPE: the original length).
    default: int | None

    def resolve(self, requested: int | None, *, allow_long: bool = False) -> int:
        """The max_model_len vLLM runs with: the model's own, or ``requested`` when allowed.

        >>> ModelLength(4096.0, "max_position_embeddings", None, 4096).resolve(8192)
        Traceback (most recent call last):
        ...
        kvschema.errors.InvalidArgumentError: User-specified max_model_len (8192) is greater than the derived max_model_len (max_position_embeddings=4096 or model_max_length=None in model's config.json); vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (allow_long_max_model_len=True, --allow-long-max-model-len)
        """
        if requested is None:
            if self.default is None:
                raise InvalidArgumentError(
                    f"the model's config sets none of {', '.join(LENGTH_KEYS)}: vLLM would "
                    "assume 2048 (or the config class's default, which a config.json does not "
                    "carry); pass max_model_len"
                )
            return self.default
        length = positive_int_arg("max_model_len", requested)
        if self.derived is None or length <= self.derived or allow_long:
            return length
        if self.model_max_length is not None and length <= self.model_max_length:
            return length
        derived = int(self.derived) if float(self.derived).is_integer() else self.derived
        raise InvalidArgumentError(
            f"User-specified max_model_len ({length}) is greater than the derived "
            f"max_model_len ({self.key}={derived} or model_max_length="
            f"{self.model_max_length} in model's config.json); vLLM refuses it unless "
            "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (allow_long_max_model_len=True, "
            "--allow-long-max-model-len)",
            max_model_len=length,
            derived_max_model_len=derived,
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value) if isinstance(value, float) else value


def _rope_parameters(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Each RoPE parameter set (one per layer type when nested), as vLLM iterates them."""
    rope = config.get("rope_parameters")
    if not isinstance(rope, Mapping):
        rope = config.get("rope_scaling")  # transformers 4's name, folded in on loading
    if not isinstance(rope, Mapping) or not rope:
        return []
    nested = [value for value in rope.values() if isinstance(value, Mapping)]
    if nested and len(nested) == len(rope):
        return [value for value in nested if value]
    return [rope]


def _rope_type(params: Mapping[str, Any]) -> str | None:
    """The RoPE type a parameter set names (None when it names something that is not a name)."""
    kind = params.get("rope_type", params.get("type", "default"))
    return kind if isinstance(kind, str) else None


def model_length(text_config: Mapping[str, Any], model_type: str | None = None) -> ModelLength:
    """The context length a (text) config gives, as vLLM 0.33 derives it.

    ``max_position_embeddings`` left out of the config is its config class's default
    (:data:`LENGTH_DEFAULTS`, by ``model_type``), as transformers fills it in.

    >>> model_length({"model_type": "qwen2", "max_position_embeddings": 32768,
    ...               "rope_scaling": {"type": "linear", "factor": 4.0}}).default
    131072
    >>> model_length({"model_type": "phi3", "max_position_embeddings": 131072,
    ...               "original_max_position_embeddings": 4096,
    ...               "rope_scaling": {"type": "longrope", "short_factor": [1.0]}}).default
    4096
    """
    model_type = str(text_config.get("model_type", "") if model_type is None else model_type)
    default_length = LENGTH_DEFAULTS.get(model_type)
    if default_length is not None and "max_position_embeddings" not in text_config:
        text_config = {**text_config, "max_position_embeddings": default_length}
    derived: float | None = None
    key: str | None = None
    for name in LENGTH_KEYS:
        value = _number(text_config.get(name))
        if value is not None and (derived is None or value < derived):
            derived, key = value, name
    model_max = _number(text_config.get("model_max_length")) or None
    if model_max is not None:
        derived, key = model_max, "model_max_length"
    rope = _rope_parameters(text_config)
    if derived is not None and rope and "gemma3" not in model_type:
        factor: Any = 1.0
        for params in rope:
            if _rope_type(params) not in _PRESCALED:
                factor = params.get("factor", factor)
        factor = _number(factor)
        derived = derived * (1.0 if factor is None else factor)
    if derived is None:
        return ModelLength(None, None, model_max, None)
    default = int(derived)
    if any(_rope_type(params) == "longrope" for params in rope):
        original = _number(text_config.get("original_max_position_embeddings"))
        default = int(original) if original is not None else default
    return ModelLength(derived, key, model_max, default)
