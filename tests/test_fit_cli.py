"""``kvschema fit`` on the command line: vLLM's option names, the report, exit codes, the
searches and the sweep."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path

import pytest
from fit_models import QWEN3_8B

from kvschema import FitReport, fit
from kvschema.cli import main
from kvschema.models.interval import GIB
from kvschema.planning.fitmodel import FitModel
from kvschema.planning.solvers import Solution, Sweep, smallest_utilization, sweep

HF = Path(__file__).parent / "fixtures" / "hf"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as stop:
            code = int(stop.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def qwen(tmp_path: Path) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(QWEN3_8B))
    return str(path)


def test_pinned_text_output_and_exit_code() -> None:
    code, out, _ = run(
        "fit", "--hf-config", str(HF / "llama3-8b.json"), "--kv-cache-memory", "20G",
        "--max-model-len", "32K", "--max-num-batched-tokens", "8192",
    )  # fmt: skip
    assert code == 0
    assert "kv_cache_memory_bytes  21474836480 (20.00 GiB per rank, exact)" in out
    assert out.rstrip().endswith(
        "GPU KV cache size: 163,840 tokens, Maximum concurrency for 32,768 tokens per request: "
        "5.00x"
    )


def test_json_output_is_the_fit_report(qwen: str) -> None:
    code, out, _ = run("fit", "--hf-config", qwen, "--gpu", "L40S", "-o", "json")
    report = FitReport.model_validate_json(out)
    assert code == 0 and report.verdict == "fits"
    assert report.weights is not None and report.weights.provenance == "config"
    assert report.settings.max_num_batched_tokens == 2048  # L40S: vLLM's small tier


def test_does_not_fit_exits_1_and_usage_errors_exit_2(qwen: str) -> None:
    code, out, _ = run("fit", "--hf-config", qwen, "--gpu", "L4", "--max-model-len", "40960")
    assert code == 1 and "verdict  does_not_fit" in out
    code, _, err = run("fit", "--hf-config", qwen, "--gpu", "H1OO")
    assert code == 2 and "no GPU named 'H1OO'" in err and "[unknown_gpu]" in err
    code, _, err = run("fit", "--hf-config", qwen, "--gpu", "H100,H200")
    assert code == 2 and "a list only with --sweep" in err
    code, _, err = run("fit", "--hf-config", qwen, "--gpu", "H100", "--vllm-version", "0.27")
    assert code == 2 and "vLLM 0.27 is not modelled" in err
    code, _, err = run("fit", "--hf-config", qwen, "--gpu", "H100", "--max-model-len", "1.5K")
    assert code == 2 and "no decimals with binary suffixes" in err


def test_vllm_number_forms() -> None:
    from kvschema.cli.fit_cli import _length, _size_or_int

    assert _length("auto") == _length("-1") == "auto"
    assert _length("25.6k") == 25600 and _length("32K") == 32768 and _length("4096") == 4096
    assert _size_or_int("20G") == 20 * GIB and _size_or_int("20g") == 20 * 10**9
    assert _size_or_int("20GiB") == 20 * GIB and _size_or_int("80GB") == 80 * 10**9


def test_solve_max_num_seqs(qwen: str) -> None:
    code, out, _ = run(
        "fit", "--hf-config", qwen, "--gpu", "L40S", "--max-model-len", "32768",
        "--solve", "max-num-seqs", "-o", "json",
    )  # fmt: skip
    solution = Solution.model_validate_json(out)
    assert code == 0 and solution.low is not None and solution.point is not None
    assert solution.report is not None
    assert solution.report.settings.max_num_seqs == solution.low
    assert (solution.report.plan_low.requests_at_once or 0) >= solution.low


def test_solve_utilization_for_a_concurrency(qwen: str) -> None:
    code, out, _ = run(
        "fit", "--hf-config", qwen, "--gpu", "H100", "--max-model-len", "32768",
        "--solve", "gpu-memory-utilization", "--concurrency", "8", "-o", "json",
    )  # fmt: skip
    solution = Solution.model_validate_json(out)
    assert code == 0 and solution.low is not None and solution.point is not None
    assert solution.point <= solution.low
    assert solution.report is not None
    assert (solution.report.plan_low.requests_at_once or 0) >= 8
    assert solution.report.settings.gpu_memory_utilization == solution.low
    below = fit(
        QWEN3_8B, gpu="H100", max_model_len=32768, gpu_memory_utilization=solution.low - 0.01
    )
    assert (below.plan_low.requests_at_once or 0) < 8  # one hundredth less does not
    none = smallest_utilization(FitModel(QWEN3_8B), concurrency=16, max_model_len=32768, gpu="H100")
    assert none.low is None and none.point is None
    assert "the most vLLM starts with" in none.message
    code, _, err = run("fit", "--hf-config", qwen, "--gpu", "H100", "--solve", "gpus")
    assert code == 2 and "needs --concurrency" in err


def test_solve_gpu_count(qwen: str) -> None:
    code, out, _ = run(
        "fit", "--hf-config", qwen, "--gpu", "L4", "--max-model-len", "32768",
        "--solve", "gpus", "--concurrency", "8", "-o", "json",
    )  # fmt: skip
    solution = Solution.model_validate_json(out)
    assert code == 0 and solution.layout_low is not None
    tp, pp = solution.layout_low
    assert solution.low == tp * pp > 1
    assert solution.report is not None and solution.report.plan_low.requests_at_once >= 8  # type: ignore[operator]


def test_sweep_rows_most_concurrency_per_gpu_first(qwen: str) -> None:
    code, out, _ = run(
        "fit", "--hf-config", qwen, "--sweep", "--gpu", "H100,L40S,MI300X", "--tp", "1,2",
        "--kv-cache-dtype", "auto,fp8", "--max-model-len", "32768", "-o", "json",
    )  # fmt: skip
    result = Sweep.model_validate_json(out)
    assert code == 0 and len(result.rows) == 12
    valid = [row for row in result.rows if row.verdict is not None]
    assert [row.gpu for row in result.rows if row.verdict is None] == ["MI300X"] * 4
    fits = [row for row in valid if row.verdict == "fits"]
    per_gpu = [row.concurrency_per_gpu for row in fits]
    assert per_gpu == sorted(per_gpu, reverse=True)  # type: ignore[type-var]
    assert fits[0].kv_cache_dtype == "fp8"
    code, text, _ = run(
        "fit", "--hf-config", qwen, "--sweep", "--gpu", "H100,L40S", "--tp", "1,2",
        "--max-model-len", "32768",
    )  # fmt: skip
    assert text.splitlines()[2].split()[:6] == ["gpu", "tp", "pp", "kv", "dtype", "gpus"]


def test_a_sweep_of_a_thousand_choices_shares_what_does_not_depend_on_them() -> None:
    """Issue #18: 1,000 choices share the model's layers, layouts, weights and budgets (the
    speed is benchmarks/sweep.py's): each is planned or counted once, not once a choice."""
    model = FitModel(QWEN3_8B)
    result = sweep(
        model,
        tensor_parallel_sizes=(1, 2, 4, 8),
        pipeline_parallel_sizes=(1, 2, 3, 4),
        kv_cache_dtypes=("auto", "bfloat16", "float16", "fp8", "fp8_e5m2"),
    )
    choices = 13 * 4 * 4 * 5
    assert len(result.rows) == choices
    made = Counter(key[0] for key in model._memo)
    assert made["weights"] == 4 * 4  # one a parallel layout
    assert made["layers"] == 1 + 4 * 4  # the probe, then one a TP size and resolved dtype
    assert made["shape"] <= 4 * 4 * 4 * 3  # a layout, resolved dtype and batch size each
    assert made["budgets"] < choices / 4  # the same for every cache dtype
