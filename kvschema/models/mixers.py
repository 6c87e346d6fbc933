"""Recurrent-state shapes and dtypes of one rank, per mixer, as vLLM 0.33 sizes them.

The rules of ``vllm/model_executor/layers/mamba/mamba_utils.py`` (``MambaStateShapeCalculator``
and ``MambaStateDtypeCalculator``), written out: each function returns the state shapes one
tensor-parallel rank allocates per request, conv state first, in vLLM's default ``"SD"`` conv
layout — ``(state_len, channels)``, the channels innermost.  A dimension vLLM splits with
``divide`` must divide evenly, or the function refuses (vLLM would fail at start-up).

>>> mamba2_state(tensor_parallel_size=2, intermediate_size=256, n_groups=1, num_heads=4,
...              head_dim=64, state_size=128, conv_kernel=4)
((3, 384), (2, 64, 128))
"""

from __future__ import annotations

from typing import Literal

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError
from kvschema.spec.dtypes import canonical_dtype

__all__ = [
    "MIXERS",
    "Mixer",
    "extra_groups_for_head_shards",
    "gated_delta_net_state",
    "kda_state",
    "linear_attention_state",
    "mamba1_state",
    "mamba2_state",
    "short_conv_state",
    "state_dtypes",
]

#: The recurrent mixers vLLM 0.33 sizes (its ``MambaAttentionBackendEnum`` names, GDN spelled out).
Mixer = Literal["mamba1", "mamba2", "short_conv", "linear_attention", "gated_delta_net", "kda"]
MIXERS: tuple[Mixer, ...] = (
    "mamba1",
    "mamba2",
    "short_conv",
    "linear_attention",
    "gated_delta_net",
    "kda",
)

Shapes = tuple[tuple[int, ...], ...]


def _divide(value: int, tp: int, what: str) -> int:
    """``value / tp``, refusing what vLLM's ``divide`` asserts on."""
    if value % tp:
        raise InvalidArgumentError(
            f"{what} ({value}) cannot be split over tensor_parallel_size={tp}: vLLM needs tp to "
            "divide it",
            **{"value": value, "tensor_parallel_size": tp},
        )
    return value // tp


def _ints(**values: int) -> None:
    for name, value in values.items():
        positive_int_arg(name, value)


def _spec_tokens(num_spec: int) -> int:
    if isinstance(num_spec, bool) or not isinstance(num_spec, int) or num_spec < 0:
        raise InvalidArgumentError(f"num_spec must be an int >= 0, got {num_spec!r}")
    return num_spec


def extra_groups_for_head_shards(n_groups: int, tensor_parallel_size: int) -> int:
    """Groups added so every head shard holds the groups its heads read (vLLM's rule).

    ``0`` when tp divides the groups, else ``tp - n_groups`` (one group replicated to every rank).

    >>> extra_groups_for_head_shards(8, 4), extra_groups_for_head_shards(1, 4)
    (0, 3)
    """
    _ints(n_groups=n_groups, tensor_parallel_size=tensor_parallel_size)
    return 0 if n_groups % tensor_parallel_size == 0 else tensor_parallel_size - n_groups


def mamba1_state(
    *, tensor_parallel_size: int, intermediate_size: int, state_size: int, conv_kernel: int
) -> Shapes:
    """Mamba-1 (Jamba): conv ``(conv_kernel - 1, I/tp)``, SSM ``(I/tp, state_size)``.

    >>> mamba1_state(tensor_parallel_size=2, intermediate_size=8192, state_size=16,
    ...              conv_kernel=4)
    ((3, 4096), (4096, 16))
    """
    _ints(
        tensor_parallel_size=tensor_parallel_size,
        intermediate_size=intermediate_size,
        state_size=state_size,
        conv_kernel=conv_kernel,
    )
    channels = _divide(intermediate_size, tensor_parallel_size, "the Mamba intermediate size")
    return ((conv_kernel - 1, channels), (channels, state_size))


def mamba2_state(
    *,
    tensor_parallel_size: int,
    intermediate_size: int,
    n_groups: int,
    num_heads: int,
    head_dim: int,
    state_size: int,
    conv_kernel: int,
    num_spec: int = 0,
) -> Shapes:
    """Mamba-2 (Nemotron-H, Granite 4.0-H, Falcon-H1, Bamba).

    Groups are extended for the head shards (:func:`extra_groups_for_head_shards`); conv
    ``(conv_kernel - 1 + num_spec, (I + 2·groups·state_size)/tp)``, SSM
    ``(heads/tp, head_dim, state_size)``.  As ``MambaMixer2`` requires, tp must divide the heads,
    and divide the groups unless there is one group.

    >>> mamba2_state(tensor_parallel_size=1, intermediate_size=8192, n_groups=8, num_heads=128,
    ...              head_dim=64, state_size=128, conv_kernel=4)
    ((3, 10240), (128, 64, 128))
    """
    tp = tensor_parallel_size
    _ints(
        tensor_parallel_size=tp,
        intermediate_size=intermediate_size,
        n_groups=n_groups,
        num_heads=num_heads,
        head_dim=head_dim,
        state_size=state_size,
        conv_kernel=conv_kernel,
    )
    _divide(num_heads, tp, "the Mamba-2 heads")
    if n_groups % tp and n_groups != 1:
        raise InvalidArgumentError(
            f"{n_groups} Mamba-2 groups cannot be split over tensor_parallel_size={tp}: vLLM's "
            "MambaMixer2 needs tp to divide the groups, or a single group",
            n_groups=n_groups,
            tensor_parallel_size=tp,
        )
    heads = _divide(num_heads, tp, "the Mamba-2 heads")
    groups = n_groups + extra_groups_for_head_shards(n_groups, tp)
    conv = _divide(intermediate_size + 2 * groups * state_size, tp, "the Mamba-2 conv channels")
    return ((conv_kernel - 1 + _spec_tokens(num_spec), conv), (heads, head_dim, state_size))


def short_conv_state(
    *, tensor_parallel_size: int, intermediate_size: int, conv_kernel: int, num_spec: int = 0
) -> Shapes:
    """Short convolution (LFM2): one conv state ``(conv_kernel - 1 + num_spec, I/tp)``.

    >>> short_conv_state(tensor_parallel_size=2, intermediate_size=2048, conv_kernel=4)
    ((3, 1024),)
    """
    _ints(
        tensor_parallel_size=tensor_parallel_size,
        intermediate_size=intermediate_size,
        conv_kernel=conv_kernel,
    )
    channels = _divide(intermediate_size, tensor_parallel_size, "the short-conv channels")
    return ((conv_kernel - 1 + _spec_tokens(num_spec), channels),)


def linear_attention_state(*, tensor_parallel_size: int, num_heads: int, head_dim: int) -> Shapes:
    """Lightning linear attention (MiniMax-Text-01): ``(heads // tp, head_dim, head_dim)``.

    vLLM floors the heads here (``num_heads // tp_size``) rather than dividing them.

    >>> linear_attention_state(tensor_parallel_size=3, num_heads=64, head_dim=96)
    ((21, 96, 96),)
    """
    _ints(tensor_parallel_size=tensor_parallel_size, num_heads=num_heads, head_dim=head_dim)
    heads = num_heads // tensor_parallel_size
    if heads == 0:
        raise InvalidArgumentError(
            f"{num_heads} linear-attention heads over tensor_parallel_size="
            f"{tensor_parallel_size} leave a rank without a head",
            num_heads=num_heads,
            tensor_parallel_size=tensor_parallel_size,
        )
    return ((heads, head_dim, head_dim),)


def gated_delta_net_state(
    *,
    tensor_parallel_size: int,
    num_k_heads: int,
    num_v_heads: int,
    head_k_dim: int,
    head_v_dim: int,
    conv_kernel: int,
    num_spec: int = 0,
) -> Shapes:
    """Gated delta-net (Qwen3-Next, Qwen3.5).

    Conv ``(conv_kernel - 1 + num_spec, (2·Hk·Dk + Hv·Dv)/tp)``, recurrent ``(Hv/tp, Dv, Dk)``.

    >>> gated_delta_net_state(tensor_parallel_size=1, num_k_heads=16, num_v_heads=32,
    ...                       head_k_dim=128, head_v_dim=128, conv_kernel=4)
    ((3, 8192), (32, 128, 128))
    """
    tp = tensor_parallel_size
    _ints(
        tensor_parallel_size=tp,
        num_k_heads=num_k_heads,
        num_v_heads=num_v_heads,
        head_k_dim=head_k_dim,
        head_v_dim=head_v_dim,
        conv_kernel=conv_kernel,
    )
    conv = 2 * num_k_heads * head_k_dim + num_v_heads * head_v_dim
    return (
        (
            conv_kernel - 1 + _spec_tokens(num_spec),
            _divide(conv, tp, "the delta-net conv channels"),
        ),
        (_divide(num_v_heads, tp, "the delta-net value heads"), head_v_dim, head_k_dim),
    )


def kda_state(
    *,
    tensor_parallel_size: int,
    num_heads: int,
    head_dim: int,
    num_k_heads: int | None = None,
    head_k_dim: int | None = None,
    conv_kernel: int = 4,
    num_spec: int = 0,
) -> Shapes:
    """Kimi delta attention (Kimi-Linear): conv ``(conv_kernel - 1 + num_spec, (H·D + 2·Hk·Dk)/tp)``,
    recurrent ``(H/tp, D, D)``; ``Hk`` and ``Dk`` default to ``H`` and ``D``.

    >>> kda_state(tensor_parallel_size=1, num_heads=4, head_dim=32, num_spec=2)
    ((5, 384), (4, 32, 32))
    """
    tp = tensor_parallel_size
    k_heads = num_heads if num_k_heads is None else num_k_heads
    k_dim = head_dim if head_k_dim is None else head_k_dim
    _ints(
        tensor_parallel_size=tp,
        num_heads=num_heads,
        head_dim=head_dim,
        num_k_heads=k_heads,
        head_k_dim=k_dim,
        conv_kernel=conv_kernel,
    )
    conv = num_heads * head_dim + 2 * k_heads * k_dim
    return (
        (conv_kernel - 1 + _spec_tokens(num_spec), _divide(conv, tp, "the KDA conv channels")),
        (_divide(num_heads, tp, "the KDA heads"), head_dim, head_dim),
    )


_MAMBA_DTYPES = ("auto", "float32", "float16", "bfloat16")


def _mamba_dtype(name: str, value: str) -> str:
    """A ``MambaDType`` (``auto``, ``float32``, ``float16``, ``bfloat16``; aliases accepted)."""
    if value == "auto":
        return value
    canonical = canonical_dtype(value)
    if canonical not in _MAMBA_DTYPES:
        raise InvalidArgumentError(
            f"{name} must be one of {', '.join(_MAMBA_DTYPES)}, got {value!r}", **{name: value}
        )
    return canonical


def state_dtypes(
    mixer: Mixer,
    model_dtype: str,
    mamba_cache_dtype: str = "auto",
    mamba_ssm_cache_dtype: str = "auto",
) -> tuple[str, ...]:
    """The dtype of each state :func:`mamba2_state` and its kin return, in their order.

    The conv state (and every state of a one-state mixer) takes ``mamba_cache_dtype``, the
    model's dtype when ``"auto"``; the SSM / recurrent state takes ``mamba_ssm_cache_dtype``, the
    conv dtype when ``"auto"`` — except KDA's recurrent state, float32 when ``"auto"``.

    >>> state_dtypes("mamba2", "bfloat16", mamba_ssm_cache_dtype="float32")
    ('bfloat16', 'float32')
    >>> state_dtypes("kda", "bfloat16"), state_dtypes("linear_attention", "float16")
    (('bfloat16', 'float32'), ('float16',))
    """
    if mixer not in MIXERS:
        raise InvalidArgumentError(
            f"mixer must be one of {', '.join(MIXERS)}, got {mixer!r}", mixer=mixer
        )
    conv_choice = _mamba_dtype("mamba_cache_dtype", mamba_cache_dtype)
    ssm_choice = _mamba_dtype("mamba_ssm_cache_dtype", mamba_ssm_cache_dtype)
    conv = canonical_dtype(model_dtype) if conv_choice == "auto" else conv_choice
    if mixer in ("linear_attention", "short_conv"):
        return (conv,)
    if mixer == "kda":
        if ssm_choice == "float16":
            raise InvalidArgumentError(
                "the KDA recurrent state supports only auto, float32 and bfloat16, got float16",
                mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
            )
        return (conv, "float32" if ssm_choice == "auto" else ssm_choice)
    return (conv, conv if ssm_choice == "auto" else ssm_choice)
