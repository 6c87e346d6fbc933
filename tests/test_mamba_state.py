"""MambaSpec's state pages per request, as vLLM 0.33's ``MambaSpec.max_memory_usage_bytes``."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kvschema import FullAttentionSpec, MambaSpec, plan_cache
from kvschema.exchange.canonical import fingerprint, to_canonical_json
from kvschema.strategies import mamba_specs

STATE = MambaSpec(page_size=16, shapes=((2, 512), (3, 32, 32)), dtype="fp32")  # 16 KiB


def test_defaults_keep_one_page_and_the_canonical_bytes() -> None:
    # A document written before the fields existed means what it meant: one page per request,
    # and the same canonical bytes (defaults are left out), hence the same fingerprint.
    assert STATE.pages_per_request == 1
    assert STATE.max_memory_usage_bytes(max_model_len=10**6) == STATE.page_size_bytes
    explicit = STATE.model_copy(update={"mamba_cache_mode": "none", "num_speculative_blocks": 0})
    assert to_canonical_json(explicit) == to_canonical_json(STATE)
    assert b"mamba_cache_mode" not in to_canonical_json(STATE)
    assert fingerprint(explicit) == fingerprint(STATE)


@pytest.mark.parametrize(
    ("mode", "spec", "checkpoints", "pages"),
    [
        ("none", 0, 0, 1),  # prefix caching off: the running state
        ("none", 2, 0, 3),  # + one per speculative token
        ("align", 0, 0, 2),  # prefix caching on: the running state and the last cached one
        ("align", 3, 0, 5),
        ("align", 0, 1, 3),  # + FlashInfer's gated delta-net prefill checkpoint
        ("align", 2, 1, 5),
    ],
)
def test_pages_per_request_follow_the_mode(
    mode: str, spec: int, checkpoints: int, pages: int
) -> None:
    state = MambaSpec.model_validate(
        {
            **STATE.model_dump(exclude={"type_id", "page_size_bytes"}),
            "mamba_cache_mode": mode,
            "num_speculative_blocks": spec,
            "num_prefill_checkpoint_blocks": checkpoints,
        }
    )
    assert state.pages_per_request == pages
    assert state.max_memory_usage_bytes(max_model_len=1) == pages * 16384
    assert state.max_memory_usage_bytes(max_model_len=10**9) == pages * 16384


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"mamba_cache_mode": "all"}, "Input should be 'none' or 'align'"),  # gone in 0.33
        ({"num_speculative_blocks": -1}, "greater than or equal to 0"),
        ({"num_speculative_blocks": True}, "valid integer"),
        ({"num_prefill_checkpoint_blocks": 1}, "prefill checkpoints exist only with"),
    ],
)
def test_bad_fields_are_validation_errors(update: dict[str, object], message: str) -> None:
    document = {"kind": "mamba", "page_size": 16, "shapes": [[4]], "dtype": "fp32", **update}
    with pytest.raises(ValidationError, match=message):
        MambaSpec.model_validate(document)


def test_auto_fit_max_model_len_with_hybrid() -> None:
    # tests/v1/core/test_kv_cache_planning.py::test_auto_fit_max_model_len_with_hybrid: a Mamba
    # layer with 2 speculative blocks (mode "none": 3 pages) beside a full-attention layer,
    # 16 KiB pages each, in memory for 1024 // 16 + 1 + 2 + 1 pages: 1024 tokens fit.
    attention = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="fp32")
    state = STATE.model_copy(update={"num_speculative_blocks": 2})
    assert attention.page_size_bytes == state.page_size_bytes == 16384
    layers = {"layer_1": state, "layer_2": attention}
    memory = 16384 * (1024 // 16 + 1 + 2 + 1)
    plan = plan_cache(layers, available_bytes=memory, max_model_len=1024, max_num_batched_tokens=64)
    assert plan.pages_per_request == [3, 64]
    with pytest.raises(ValueError, match="at most 1024 tokens fit"):
        plan_cache(layers, available_bytes=memory, max_model_len=1025, max_num_batched_tokens=64)


@given(
    mamba_specs(),
    st.sampled_from(["none", "align"]),
    st.integers(0, 8),
    st.integers(0, 2),
    st.integers(1, 10**7),
)
def test_state_memory_never_grows_with_the_request(
    spec: MambaSpec, mode: str, speculative: int, checkpoints: int, length: int
) -> None:
    state = MambaSpec.model_validate(
        {
            **spec.model_dump(exclude={"type_id", "page_size_bytes"}),
            "mamba_cache_mode": mode,
            "num_speculative_blocks": speculative,
            "num_prefill_checkpoint_blocks": checkpoints if mode == "align" else 0,
        }
    )
    memory = state.max_memory_usage_bytes(max_model_len=length)
    assert memory == state.max_memory_usage_bytes(max_model_len=1)
    assert memory % state.page_size_bytes == 0
    assert memory // state.page_size_bytes == state.pages_per_request >= 1 + speculative
    if mode == "align":  # prefix caching keeps one page more than without it
        assert state.pages_per_request == 2 + speculative + checkpoints
