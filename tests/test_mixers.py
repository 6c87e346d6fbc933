"""Recurrent-state shapes per mixer and their tensor-parallel split, as vLLM 0.33's
``vllm/model_executor/layers/mamba/mamba_utils.py`` sizes them."""

from math import prod

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema.errors import InvalidArgumentError
from kvschema.models.mixers import (
    extra_groups_for_head_shards,
    gated_delta_net_state,
    kda_state,
    linear_attention_state,
    mamba1_state,
    mamba2_state,
    short_conv_state,
    state_dtypes,
)


def elements(shapes: tuple[tuple[int, ...], ...]) -> int:
    return sum(prod(shape) for shape in shapes)


def test_mamba2_extends_one_group_to_every_head_shard() -> None:
    # The inputs of vLLM's tests/kernels/mamba/test_ssu_dispatch.py::
    # test_replayssm_ring_shape_extends_groups_for_head_shards (tp 2, one group, 4 heads of 64,
    # state 128, conv 4), which asserts one group per rank: the group is replicated, so the conv
    # holds 256 + 2 x 2 groups x 128 channels, half on each rank.
    assert extra_groups_for_head_shards(1, 2) == 1
    shapes = mamba2_state(
        tensor_parallel_size=2,
        intermediate_size=256,
        n_groups=1,
        num_heads=4,
        head_dim=64,
        state_size=128,
        conv_kernel=4,
    )
    assert shapes == ((3, (256 + 2 * 2 * 128) // 2), (2, 64, 128))


def test_mamba2_groups_as_mamba_mixer2_allows_them() -> None:
    base = {"intermediate_size": 8192, "num_heads": 128, "head_dim": 64, "state_size": 128}
    # 8 groups over 8 ranks: one each, nothing added
    assert mamba2_state(tensor_parallel_size=8, n_groups=8, conv_kernel=4, **base) == (
        (3, (8192 + 2 * 8 * 128) // 8),
        (16, 64, 128),
    )
    # MambaMixer2: "If tensor parallel world size does not divide num_groups, then num_groups
    # must equal 1."
    with pytest.raises(InvalidArgumentError, match="8 Mamba-2 groups cannot be split over"):
        mamba2_state(tensor_parallel_size=16, n_groups=8, conv_kernel=4, **base)
    with pytest.raises(InvalidArgumentError, match="Mamba-2 heads \\(128\\) cannot be split"):
        mamba2_state(tensor_parallel_size=3, n_groups=1, conv_kernel=4, **base)
    # speculative tokens lengthen the conv state (vLLM's num_spec)
    assert mamba2_state(tensor_parallel_size=1, n_groups=8, conv_kernel=4, num_spec=2, **base)[
        0
    ] == (5, 10240)


def test_mamba1_and_short_conv() -> None:
    assert mamba1_state(
        tensor_parallel_size=4, intermediate_size=8192, state_size=16, conv_kernel=4
    ) == ((3, 2048), (2048, 16))
    assert short_conv_state(tensor_parallel_size=1, intermediate_size=2048, conv_kernel=3) == (
        (2, 2048),
    )
    with pytest.raises(InvalidArgumentError, match="short-conv channels \\(2048\\)"):
        short_conv_state(tensor_parallel_size=3, intermediate_size=2048, conv_kernel=3)


def test_linear_attention_floors_the_heads() -> None:
    # MiniMax-Text-01's lightning attention: num_heads // tp_size, not divide()
    assert linear_attention_state(tensor_parallel_size=1, num_heads=64, head_dim=96) == (
        (64, 96, 96),
    )
    assert linear_attention_state(tensor_parallel_size=3, num_heads=64, head_dim=96) == (
        (21, 96, 96),
    )
    with pytest.raises(InvalidArgumentError, match="leave a rank without a head"):
        linear_attention_state(tensor_parallel_size=8, num_heads=4, head_dim=96)


def test_gated_delta_net() -> None:
    # Qwen3-Next-80B: conv (3, 2 x 16 x 128 + 32 x 128), recurrent (32, 128, 128)
    whole = gated_delta_net_state(
        tensor_parallel_size=1,
        num_k_heads=16,
        num_v_heads=32,
        head_k_dim=128,
        head_v_dim=128,
        conv_kernel=4,
    )
    assert whole == ((3, 8192), (32, 128, 128))
    assert gated_delta_net_state(
        tensor_parallel_size=4,
        num_k_heads=16,
        num_v_heads=32,
        head_k_dim=128,
        head_v_dim=128,
        conv_kernel=4,
        num_spec=3,
    ) == ((6, 2048), (8, 128, 128))


def test_kda_state_of_kimi_linear() -> None:
    # tests/models/kimi_k3/test_kda.py (test of KimiLinearForCausalLM's state): 4 heads of 32,
    # conv kernel 4, 2 speculative tokens, bf16 model -> kda_state_shape(1, 4, 32, num_spec=2)
    # with dtypes (bfloat16, float32); the shapes written out from the formula.
    assert kda_state(tensor_parallel_size=1, num_heads=4, head_dim=32, num_spec=2) == (
        (5, 4 * 32 + 2 * 4 * 32),
        (4, 32, 32),
    )
    assert state_dtypes("kda", "bfloat16") == ("bfloat16", "float32")
    assert state_dtypes("kda", "bfloat16", mamba_ssm_cache_dtype="bfloat16") == (
        "bfloat16",
        "bfloat16",
    )
    with pytest.raises(InvalidArgumentError, match="KDA recurrent state supports only"):
        state_dtypes("kda", "bfloat16", mamba_ssm_cache_dtype="fp16")


def test_state_dtypes() -> None:
    assert state_dtypes("mamba2", "bfloat16") == ("bfloat16", "bfloat16")
    assert state_dtypes("mamba1", "bfloat16", "float32") == ("float32", "float32")
    assert state_dtypes("gated_delta_net", "bf16", mamba_ssm_cache_dtype="fp32") == (
        "bfloat16",
        "float32",
    )
    assert state_dtypes("short_conv", "float16", "bf16") == ("bfloat16",)
    with pytest.raises(InvalidArgumentError, match="mamba_cache_dtype must be one of"):
        state_dtypes("mamba2", "bfloat16", "fp8")
    with pytest.raises(InvalidArgumentError, match="mixer must be one of"):
        state_dtypes("rwkv", "bfloat16")  # type: ignore[arg-type]


@given(st.integers(1, 64), st.sampled_from([1, 2, 4, 8]), st.integers(1, 8), st.integers(2, 5))
def test_even_splits_keep_the_whole_state(
    unit: int, tp: int, heads_per_rank: int, kernel: int
) -> None:
    """Where every dimension divides, the ranks together hold exactly the whole model's state."""
    heads = heads_per_rank * tp
    cases = [
        (
            mamba1_state,
            {"intermediate_size": unit * tp * 8, "state_size": 16, "conv_kernel": kernel},
        ),
        (short_conv_state, {"intermediate_size": unit * tp, "conv_kernel": kernel}),
        (
            gated_delta_net_state,
            {
                "num_k_heads": heads,
                "num_v_heads": heads,
                "head_k_dim": unit,
                "head_v_dim": unit,
                "conv_kernel": kernel,
            },
        ),
        (kda_state, {"num_heads": heads, "head_dim": unit, "conv_kernel": kernel}),
        (linear_attention_state, {"num_heads": heads, "head_dim": unit}),
        (
            mamba2_state,
            {
                "intermediate_size": heads * unit,
                "n_groups": tp,
                "num_heads": heads,
                "head_dim": unit,
                "state_size": 16,
                "conv_kernel": kernel,
            },
        ),
    ]
    for function, inputs in cases:
        whole = function(tensor_parallel_size=1, **inputs)  # type: ignore[operator]
        shard = function(tensor_parallel_size=tp, **inputs)  # type: ignore[operator]
        assert tp * elements(shard) == elements(whole), function.__name__


@given(st.sampled_from([2, 4, 8, 16]), st.integers(1, 16), st.integers(1, 8))
def test_one_replicated_group_costs_more_than_its_share(
    tp: int, heads_per_rank: int, unit: int
) -> None:
    """One Mamba-2 group is copied to every rank: the ranks hold more than the whole model."""
    heads = heads_per_rank * tp
    inputs = {
        "intermediate_size": heads * unit,
        "n_groups": 1,
        "num_heads": heads,
        "head_dim": unit,
        "state_size": 32,
        "conv_kernel": 4,
    }
    whole = mamba2_state(tensor_parallel_size=1, **inputs)
    shard = mamba2_state(tensor_parallel_size=tp, **inputs)
    extra = 2 * 32 * 3 * (tp - 1)  # (tp - 1) more copies of the group's B and C conv channels
    assert tp * elements(shard) == elements(whole) + extra
