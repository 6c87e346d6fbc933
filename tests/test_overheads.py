"""The overhead model against the published measurements in data/overheads.json, and its laws."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvschema.errors import InvalidArgumentError
from kvschema.models.interval import GIB
from kvschema.planning.overheads import (
    OverheadInputs,
    cudagraph_capture_sizes,
    estimate_overheads,
    overhead_inputs,
)

DATA = json.loads(
    resources.files("kvschema.planning").joinpath("data/overheads.json").read_text("utf-8")
)
PRINTED = 0.005  # GiB: vLLM prints two decimals


def inputs_of(measurement: dict[str, Any]) -> OverheadInputs:
    model = {k: v for k, v in measurement["model"].items() if k != "name"}
    s = measurement["settings"]
    version = (0, 33) if ">= 0.21" in measurement["vllm"] else (0, 6)
    return overhead_inputs(
        model,
        max_num_batched_tokens=s["max_num_batched_tokens"],
        max_num_seqs=s["max_num_seqs"],
        tensor_parallel_size=s["tensor_parallel_size"],
        vllm_version=version,
    )


@pytest.mark.parametrize("measurement", DATA["measurements"], ids=lambda m: m["id"])
def test_every_measurement_lies_inside_the_model(measurement: dict[str, Any]) -> None:
    terms = estimate_overheads(inputs_of(measurement))
    tolerance = measurement.get("tolerance_gib", {})
    for term, gib in measurement["measured_gib"].items():
        if term == "v0_non_torch":  # V0 counted the context and NCCL too
            low = terms.non_torch.low
            high = terms.startup.high + terms.non_torch.high
        elif term == "activation_plus_non_torch":
            low = (terms.activation + terms.non_torch).low
            high = (terms.activation + terms.non_torch).high
        else:
            interval = getattr(terms, term)
            low, high = interval.low, interval.high
        slack = (PRINTED + tolerance.get(term, 0.0)) * GIB
        assert low - slack <= gib * GIB <= high + slack, (term, gib, low / GIB, high / GIB)


def test_every_measurement_names_its_source() -> None:
    for m in DATA["measurements"]:
        assert m["source"].startswith("https://"), m["id"]
        assert m["vllm"] and m["gpu"] and m["measured_gib"]
    for obs in DATA["v0_observations_of_non_torch"]["values"]:
        assert obs["source"].startswith(("https://", "public repository file"))
    assert "how_to_add_a_measurement" in DATA


@pytest.mark.parametrize(
    "obs", DATA["v0_observations_of_non_torch"]["values"], ids=lambda o: str(o["gib"])
)
def test_v0_non_torch_observations_lie_inside_startup_plus_non_torch(obs: dict[str, Any]) -> None:
    tp = obs["tensor_parallel_size"]
    terms = estimate_overheads(
        OverheadInputs(
            hidden_size=4096,
            q_size=4096,
            kv_size=1024,
            vocab_size=32000,
            num_layers=32,
            tensor_parallel_size=tp,
            max_num_batched_tokens=2048,
            max_num_seqs=256,
        )
    )
    assert terms.non_torch.low <= obs["gib"] * GIB <= terms.startup.high + terms.non_torch.high


def test_the_point_estimate_is_close_where_the_measurement_is_clean() -> None:
    """Qwen3-8B's CUDA-graph estimate (0.52 GiB, 51 + 35 graphs) is the model's point."""
    qwen = next(m for m in DATA["measurements"] if m["id"].startswith("lmcache"))
    terms = estimate_overheads(inputs_of(qwen))
    assert terms.cuda_graphs.point / GIB == pytest.approx(0.52, abs=0.03)
    both = (terms.activation + terms.non_torch).point / GIB
    assert both == pytest.approx(0.81, abs=0.3)


def test_capture_sizes_match_vllm_logs() -> None:
    # "Profiling CUDA graph memory: PIECEWISE=51 (largest=512), FULL=35 (largest=256)"
    # (LMCache #3430, vLLM PR #39559) at max_num_seqs 256
    pw, full = cudagraph_capture_sizes(256, 2048)
    assert (len(pw), pw[-1], len(full), full[-1]) == (51, 512, 35, 256)
    pw, full = cudagraph_capture_sizes(1024, 8192)  # H100 server defaults: 512 at most
    assert (len(pw), pw[-1], len(full), full[-1]) == (51, 512, 51, 512)
    pw, _ = cudagraph_capture_sizes(1024, 16384, blackwell=True)
    assert pw[-1] == 1024
    pw, full = cudagraph_capture_sizes(256, 128)  # capped by max_num_batched_tokens
    assert pw[-1] == 128 and full[-1] == 128


def test_enforce_eager_and_old_versions_take_no_graph_memory() -> None:
    base: dict[str, Any] = {
        "hidden_size": 4096,
        "q_size": 4096,
        "kv_size": 1024,
        "vocab_size": 32000,
        "num_layers": 32,
        "max_num_batched_tokens": 2048,
        "max_num_seqs": 256,
    }
    assert estimate_overheads(OverheadInputs(**base, enforce_eager=True)).cuda_graphs.high == 0
    old = estimate_overheads(OverheadInputs(**base, vllm_version=(0, 20)))
    assert old.cuda_graphs.high == 0
    assert any("0.21" in n for n in old.notes)


def test_hybrids_and_expert_parallel_widen_the_graph_bound() -> None:
    base: dict[str, Any] = {
        "hidden_size": 2048,
        "q_size": 4096,
        "kv_size": 512,
        "vocab_size": 151936,
        "num_layers": 48,
        "max_num_batched_tokens": 8192,
        "max_num_seqs": 1024,
        "moe_intermediate_size": 512,
        "experts_per_token": 10,
    }
    plain = estimate_overheads(OverheadInputs(**base)).cuda_graphs
    hybrid = estimate_overheads(OverheadInputs(**base, hybrid=True)).cuda_graphs
    ep = estimate_overheads(OverheadInputs(**base, expert_parallel=True)).cuda_graphs
    assert hybrid.point == plain.point and hybrid.high > plain.high
    assert ep.high >= 5 * plain.high


def test_the_sampler_runs_on_the_last_stage_only() -> None:
    base: dict[str, Any] = {
        "hidden_size": 1024,
        "q_size": 1024,
        "kv_size": 256,
        "vocab_size": 256000,
        "num_layers": 8,
        "max_num_batched_tokens": 2048,
        "max_num_seqs": 1024,
    }
    last = estimate_overheads(OverheadInputs(**base)).activation
    first = estimate_overheads(OverheadInputs(**base, last_stage=False)).activation
    assert first.point < last.point


def test_overhead_inputs_read_moe_configs() -> None:
    inputs = overhead_inputs(
        {
            "model_type": "qwen3_moe",
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "moe_intermediate_size": 768,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "num_hidden_layers": 48,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "vocab_size": 151936,
        },
        max_num_batched_tokens=8192,
        max_num_seqs=1024,
        tensor_parallel_size=2,
    )
    assert (inputs.intermediate_size, inputs.moe_intermediate_size) == (0, 768)
    assert inputs.experts_per_token == 8 and inputs.q_size == 4096
    with pytest.raises(InvalidArgumentError, match="vocab_size"):
        overhead_inputs(
            {"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1},
            max_num_batched_tokens=8,
            max_num_seqs=1,
        )


shapes = st.fixed_dictionaries(
    {
        "hidden_size": st.sampled_from([1024, 2048, 4096, 8192]),
        "intermediate_size": st.sampled_from([0, 4096, 14336, 28672]),
        "q_size": st.sampled_from([1024, 4096, 8192]),
        "kv_size": st.sampled_from([128, 1024]),
        "vocab_size": st.integers(32000, 260000),
        "num_layers": st.integers(1, 96),
    }
)


@settings(max_examples=80, deadline=None)
@given(
    shape=shapes,
    tokens=st.integers(1, 32768),
    seqs=st.integers(1, 2048),
    tp=st.sampled_from([1, 2, 4, 8]),
)
def test_more_batch_never_less_overhead_and_more_tp_never_more_activation(
    shape: dict[str, int], tokens: int, seqs: int, tp: int
) -> None:
    def terms(t: int, s: int, p: int) -> Any:
        return estimate_overheads(
            OverheadInputs(
                **shape, max_num_batched_tokens=t, max_num_seqs=s, tensor_parallel_size=p
            )
        )

    now = terms(tokens, seqs, tp)
    assert terms(2 * tokens, seqs, tp).activation.point >= now.activation.point
    assert terms(tokens, 2 * seqs, tp).activation.point >= now.activation.point
    assert terms(tokens, seqs, 2 * tp).activation.point <= now.activation.point
    for interval in (now.activation, now.non_torch, now.cuda_graphs, now.startup, now.budget):
        assert interval.low <= interval.point <= interval.high
