"""Plain-text output of ``kvschema fit``: the budget, the plan, the verdict and vLLM's lines.

>>> from kvschema.planning.fit import fit
>>> report = fit("tests/fixtures/hf/llama3-8b.json", kv_cache_memory_bytes=20 * 2**30,
...              max_model_len=32768, max_num_batched_tokens=8192)
>>> print(fit_table(report).splitlines()[-4])
verdict  fits: vLLM starts: 163,840 tokens of KV cache, 5.00 requests of 32,768 tokens at once
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvschema.cli.tables import render_table
from kvschema.models.interval import GIB, Interval
from kvschema.planning.budget import ByteRange, StageBudget
from kvschema.planning.fit import FitPlan, FitReport

if TYPE_CHECKING:  # --solve and --sweep only: a plain fit does not import the solvers
    from kvschema.planning.solvers import Solution, Sweep

__all__ = ["fit_table", "solution_text", "sweep_table"]


def _gib(value: float | None) -> str:
    return "" if value is None else f"{value / GIB:.2f}"


def _range(value: Interval | ByteRange | None) -> list[str]:
    if value is None:
        return ["", "", ""]
    return [_gib(value.low), _gib(value.point), _gib(value.high)]


def _costs(value: Interval | None) -> list[str]:
    """A cost by end: the low end of the budget takes its high bound."""
    if value is None:
        return ["", "", ""]
    return [_gib(value.high), _gib(value.point), _gib(value.low)]


def _head(report: FitReport) -> str:
    s, hw = report.settings, report.hardware
    where = "no device named"
    if hw is not None:
        name = hw.gpu or "a GPU"
        total = hw.cuda_total
        memory = (
            f"{total.point / GIB:.2f} GiB"
            if total.is_exact
            else f"{total.low / GIB:.2f}-{total.high / GIB:.2f} GiB"
        )
        where = f"{hw.gpus} x {name} ({memory} as CUDA reports it)"
    length = {None: "the model's own", "auto": "vLLM's auto-fit"}.get(s.max_model_len, "given")  # type: ignore[arg-type]
    seqs = "unset" if s.max_num_seqs is None else str(s.max_num_seqs)
    batch = "given" if s.batch_defaults == "given" else f"vLLM's defaults, tier {s.batch_defaults}"
    return "\n".join(
        [
            f"{report.model_type} on {where}, vLLM {s.vllm_version}, "
            f"tp={s.tensor_parallel_size} pp={s.pipeline_parallel_size}",
            f"max_model_len {s.derived_max_model_len if s.max_model_len is None else s.max_model_len}"
            f" ({length}), max_num_batched_tokens {s.max_num_batched_tokens}, max_num_seqs "
            f"{seqs} ({batch}), kv_cache_dtype {s.kv_cache_dtype}, block_size {s.block_size}"
            + (", enforce_eager" if s.enforce_eager else ""),
        ]
    )


def _budget_rows(stage: StageBudget, utilization: float, provenance: str) -> list[list[str]]:
    return [
        [f"total x {utilization}", *_range(stage.requested)],
        [f"- weights ({provenance})", *_costs(stage.weights)],
        ["- activation peak", *_costs(stage.activation)],
        ["- non-torch", *_costs(stage.non_torch)],
        ["- CUDA graphs", *_costs(stage.cuda_graphs)],
        ["= available KV cache", *_range(stage.available)],
    ]


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _plan_rows(plans: list[FitPlan]) -> list[list[str]]:
    rows = [
        ["max_model_len", *(_count(p.max_model_len) for p in plans)],
        ["blocks (num_pages)", *(_count(p.num_pages) for p in plans)],
        ["KV cache tokens", *(_count(p.kv_cache_size_tokens) for p in plans)],
        [
            "max concurrency",
            *("-" if p.max_concurrency is None else f"{p.max_concurrency:.2f}" for p in plans),
        ],
        ["requests at once", *(_count(p.requests_at_once) for p in plans)],
        ["starts", *("yes" if p.fits else p.reason for p in plans)],
    ]
    if any(p.max_model_len_estimate is not None for p in plans):
        rows.append(["longest that fits", *(_count(p.max_model_len_estimate) for p in plans)])
    return rows


def fit_table(report: FitReport) -> str:
    """The report as people read it: settings, the budget per rank, the plan, the verdict and
    the lines vLLM prints (at the point estimate)."""
    lines = [_head(report), ""]
    provenance = report.weights.provenance if report.weights is not None else "unknown"
    stage = report.stages[report.bottleneck_stage]
    title = "budget per rank, GiB"
    if len(report.stages) > 1:
        title += f" (stage {stage.stage} of {len(report.stages)}, the bottleneck)"
    if stage.pinned:
        pinned = f"{stage.available.point / GIB:.2f} GiB per rank, exact"
        lines += [f"kv_cache_memory_bytes  {stage.available.point} ({pinned})", ""]
    else:
        budget = [[title, "low", "point", "high"]]
        budget += _budget_rows(stage, report.settings.gpu_memory_utilization, provenance)
        lines += [render_table(budget, right=(1, 2, 3)), ""]
    plans = [report.plan_low, report.plan, report.plan_high]
    plan = [["plan", "low", "point", "high"], *_plan_rows(plans)]
    if report.exact:
        plan = [[row[0], row[2]] for row in plan]
        plan[0] = ["plan (exact)", ""]
    lines += [render_table(plan, right=(1, 2, 3)), ""]
    lines.append(f"verdict  {report.verdict}: {report.reason}")
    lines.append(
        f"vLLM {report.settings.vllm_version} prints" + ("" if report.exact else " (point)") + ":"
    )
    for line in report.vllm_log:
        lines.append(f"  {line.text}" + ("" if line.complete else "  [part of a line]"))
    return "\n".join(lines)


def _summary(report: FitReport) -> str:
    low, point = report.plan_low, report.plan
    kv = report.available_kv_bytes
    held = [p.requests_at_once for p in (low, point) if p.requests_at_once is not None]
    at_once = "-".join(str(n) for n in dict.fromkeys(held)) if held else "none"
    return (
        f"{report.verdict}: KV cache {kv.low / GIB:.2f}..{kv.point / GIB:.2f} GiB a rank "
        f"(low..point), {at_once} request(s) of {point.max_model_len:,} tokens at once"
    )


def solution_text(solution: Solution) -> str:
    """A searched setting: the question, the answer, and the fit behind it in one line."""
    lines = [f"{solution.question}: {solution.message}"]
    report = solution.report
    if report is not None:
        s = report.settings
        setting = {
            "max_num_seqs": f"max_num_seqs={s.max_num_seqs}",
            "gpu_memory_utilization": f"gpu_memory_utilization={s.gpu_memory_utilization}",
            "gpus": f"tp={s.tensor_parallel_size} pp={s.pipeline_parallel_size}",
        }[solution.solves]
        lines.append(f"  at {setting}: {_summary(report)}")
        lines += [f"  {line.text}" for line in report.vllm_log if line.complete]
    return "\n".join(lines)


def _asked(length: int | str | None) -> str:
    return "model's" if length is None else length if isinstance(length, str) else f"{length:,}"


def sweep_table(result: Sweep) -> str:
    """One row per choice, the most concurrency per GPU first (with the length asked when the
    sweep asks more than one)."""
    lengths = len({row.asked_max_model_len for row in result.rows}) > 1
    head = ["gpu", "tp", "pp", "kv dtype", "gpus", "verdict", "KV GiB low..point"]
    head += ["asked", "max_model_len"] if lengths else ["max_model_len"]
    rows = [[*head, "concurrency", "per GPU"]]
    errors = []
    for row in result.rows:
        if row.verdict is None:
            asked = f" max_model_len={_asked(row.asked_max_model_len)}" if lengths else ""
            errors.append(
                f"{row.gpu} tp={row.tensor_parallel_size} pp={row.pipeline_parallel_size} "
                f"{row.kv_cache_dtype}{asked}: {row.error}"
            )
            continue
        kv = row.available_kv_gib
        conc = (
            row.max_concurrency_low if row.max_concurrency_low is not None else row.max_concurrency
        )
        rows.append(
            [
                row.gpu,
                str(row.tensor_parallel_size),
                str(row.pipeline_parallel_size),
                row.kv_cache_dtype,
                str(row.gpus),
                row.verdict,
                "" if kv is None else f"{kv[0]:.2f}..{kv[1]:.2f}",
                *([_asked(row.asked_max_model_len)] if lengths else []),
                "" if row.max_model_len is None else f"{row.max_model_len:,}",
                "-" if conc is None else f"{conc:.2f}",
                "-" if row.concurrency_per_gpu is None else f"{row.concurrency_per_gpu:.2f}",
            ]
        )
    lines = [
        f"{result.model_type}: {len(result.rows)} choices, the most concurrency per GPU first "
        "(guaranteed: the low end of the budget)",
        "",
        render_table(rows, right=(1, 2, 4, 6, 7, 8, 9, 10) if lengths else (1, 2, 4, 6, 7, 8, 9)),
    ]
    if errors:
        lines += ["", "not planned:", *(f"  {e}" for e in errors)]
    return "\n".join(lines)
