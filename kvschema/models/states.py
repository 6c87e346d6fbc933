"""A family's recurrent layers → one rank's ``MambaSpec``, read from its ``config.json``.

Which fields feed which mixer is each model's ``get_mamba_state_shape_from_config`` in vLLM 0.33
(``vllm/model_executor/models/{jamba,nemotron_h,granitemoehybrid,falcon_h1,qwen3_next,
qwen3_5}.py``); the split and the dtypes are :mod:`kvschema.models.mixers`.

>>> spec = state_spec("mamba1", {"hidden_size": 4096}, "jamba", "bfloat16", tp=1, page_size=16)
>>> spec.shapes, spec.page_size_bytes
(((3, 8192), (8192, 16)), 311296)
"""

from __future__ import annotations

from typing import Any

from kvschema.errors import KVSchemaError
from kvschema.models.families import HFConfigError, family_of, read_field
from kvschema.models.mixers import (
    Mixer,
    gated_delta_net_state,
    mamba1_state,
    mamba2_state,
    state_dtypes,
)
from kvschema.spec.union import MambaSpec

__all__ = ["STATE_KINDS", "state_spec"]

#: The layer kinds (``families.layer_kinds``) that keep recurrent state, and their mixer.
STATE_KINDS: dict[str, Mixer] = {
    "mamba1": "mamba1",
    "mamba2": "mamba2",
    "gated_delta": "gated_delta_net",
}


def _field(config: dict[str, Any], name: str, model_type: str) -> int:
    value = read_field(config, name, model_type)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HFConfigError(f"{model_type}: {name} must be a positive integer, got {value!r}")
    return value


def _mamba2_inputs(config: dict[str, Any], model_type: str) -> dict[str, int]:
    """``mamba2_state``'s inputs, from each Mamba-2 family's own fields."""
    family = family_of(model_type)
    if family == "nemotron_h":
        heads, head_dim = (
            _field(config, n, model_type) for n in ("mamba_num_heads", "mamba_head_dim")
        )
        return {
            "intermediate_size": heads * head_dim,
            "n_groups": _field(config, "n_groups", model_type),
            "num_heads": heads,
            "head_dim": head_dim,
            "state_size": _field(config, "ssm_state_size", model_type),
            "conv_kernel": _field(config, "conv_kernel", model_type),
        }
    # Granite 4.0-H and Falcon-H1: the mamba_* fields; Falcon-H1 sizes by mamba_d_ssm when set
    d_ssm = read_field(config, "mamba_d_ssm", model_type) if family == "falcon_h1" else None
    if d_ssm is None:
        intermediate = _field(config, "mamba_expand", model_type) * _field(
            config, "hidden_size", model_type
        )
    else:
        intermediate = _field(config, "mamba_d_ssm", model_type)
    heads = _field(config, "mamba_n_heads", model_type)
    head_dim = read_field(config, "mamba_d_head", model_type)
    if head_dim == "auto":  # the transformers config classes derive it
        head_dim = intermediate // heads
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 1:
        raise HFConfigError(f"{model_type}: mamba_d_head must be a positive integer or 'auto'")
    return {
        "intermediate_size": intermediate,
        "n_groups": _field(config, "mamba_n_groups", model_type),
        "num_heads": heads,
        "head_dim": head_dim,
        "state_size": _field(config, "mamba_d_state", model_type),
        "conv_kernel": _field(config, "mamba_d_conv", model_type),
    }


def _ssm_dtype(config: dict[str, Any], model_type: str, requested: str) -> str:
    """The family's SSM-state dtype when the user leaves ``mamba_ssm_cache_dtype`` at ``auto``.

    vLLM 0.33, ``vllm/model_executor/models/config.py``: Nemotron-H takes the config's
    ``mamba_ssm_cache_dtype``, float32 when absent; Qwen3.5 takes ``mamba_ssm_dtype``.
    """
    if requested != "auto":
        return requested
    if family_of(model_type) == "nemotron_h":
        return str(config.get("mamba_ssm_cache_dtype") or "float32")
    if model_type.startswith("qwen3_5") and config.get("mamba_ssm_dtype"):
        return str(config["mamba_ssm_dtype"])
    return "auto"


def state_spec(
    kind: str,
    config: dict[str, Any],
    model_type: str,
    model_dtype: str,
    *,
    tp: int,
    page_size: int,
    mamba_cache_dtype: str = "auto",
    mamba_ssm_cache_dtype: str = "auto",
) -> MambaSpec:
    """One rank's state spec of a ``kind`` layer (``mamba1``, ``mamba2``, ``gated_delta``)."""
    mixer = STATE_KINDS[kind]
    try:
        if mixer == "mamba1":
            shapes = mamba1_state(
                tensor_parallel_size=tp,
                intermediate_size=_field(config, "mamba_expand", model_type)
                * _field(config, "hidden_size", model_type),
                state_size=_field(config, "mamba_d_state", model_type),
                conv_kernel=_field(config, "mamba_d_conv", model_type),
            )
        elif mixer == "mamba2":
            shapes = mamba2_state(tensor_parallel_size=tp, **_mamba2_inputs(config, model_type))
        else:
            shapes = gated_delta_net_state(
                tensor_parallel_size=tp,
                num_k_heads=_field(config, "linear_num_key_heads", model_type),
                num_v_heads=_field(config, "linear_num_value_heads", model_type),
                head_k_dim=_field(config, "linear_key_head_dim", model_type),
                head_v_dim=_field(config, "linear_value_head_dim", model_type),
                conv_kernel=_field(config, "linear_conv_kernel_dim", model_type),
            )
        dtypes = state_dtypes(
            mixer,
            model_dtype,
            mamba_cache_dtype,
            _ssm_dtype(config, model_type, mamba_ssm_cache_dtype),
        )
    except HFConfigError:
        raise
    except KVSchemaError as err:
        raise HFConfigError(f"{model_type}: {err.message}") from None
    if len(set(dtypes)) == 1:
        return MambaSpec(page_size=page_size, shapes=shapes, dtype=dtypes[0])
    return MambaSpec(page_size=page_size, shapes=shapes, dtypes=dtypes)
