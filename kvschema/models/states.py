"""A reader's :class:`~kvschema.models.layers.State` → one rank's ``MambaSpec``.

Which fields feed which mixer is each family reader's business (:mod:`kvschema.models.hybrids`,
after each vLLM 0.33 model's ``get_mamba_state_shape_from_config``); the split over tp and the
dtypes are :mod:`kvschema.models.mixers`.

>>> from kvschema.models.layers import State
>>> state = State("mamba1", (("intermediate_size", 8192), ("state_size", 16),
...                          ("conv_kernel", 4)))
>>> spec = state_spec(state, "jamba", "bfloat16", tp=1, page_size=16)
>>> spec.shapes, spec.page_size_bytes
(((3, 8192), (8192, 16)), 311296)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvschema.errors import KVSchemaError
from kvschema.models.fields import HFConfigError
from kvschema.models.layers import State
from kvschema.models.mixers import (
    Mixer,
    gated_delta_net_state,
    kda_state,
    linear_attention_state,
    mamba1_state,
    mamba2_state,
    short_conv_state,
    state_dtypes,
)
from kvschema.spec.union import MambaSpec

__all__ = ["SHAPES", "state_spec"]

#: Each mixer's shape function (``tensor_parallel_size`` and the state's inputs as keywords).
SHAPES: dict[Mixer, Callable[..., tuple[tuple[int, ...], ...]]] = {
    "mamba1": mamba1_state,
    "mamba2": mamba2_state,
    "short_conv": short_conv_state,
    "linear_attention": linear_attention_state,
    "gated_delta_net": gated_delta_net_state,
    "kda": kda_state,
}


def state_spec(
    state: State,
    model_type: str,
    model_dtype: str,
    *,
    tp: int,
    page_size: int,
    mamba_cache_dtype: str = "auto",
    mamba_ssm_cache_dtype: str = "auto",
) -> MambaSpec:
    """One rank's spec of ``state``: its shapes over ``tp`` ranks, its dtypes.

    ``mamba_ssm_cache_dtype="auto"`` takes the family's own SSM dtype when it has one
    (Nemotron-H's ``mamba_ssm_cache_dtype``, Qwen3.5's ``mamba_ssm_dtype``: vLLM's hooks in
    ``vllm/model_executor/models/config.py``).
    """
    ssm = mamba_ssm_cache_dtype
    if ssm == "auto" and state.ssm_dtype is not None:
        ssm = state.ssm_dtype
    inputs: dict[str, Any] = dict(state.inputs)
    try:
        shapes = SHAPES[state.mixer](tensor_parallel_size=tp, **inputs)
        dtypes = state_dtypes(state.mixer, model_dtype, mamba_cache_dtype, ssm)
    except KVSchemaError as err:
        raise HFConfigError(f"{model_type}: {err.message}", model_type=model_type) from None
    if len(set(dtypes)) == 1:
        return MambaSpec(page_size=page_size, shapes=shapes, dtype=dtypes[0])
    return MambaSpec(page_size=page_size, shapes=shapes, dtypes=dtypes)
