"""Will a model fit on these GPUs, and what will vLLM print? Answered before renting them.

:func:`fit` puts together the weights per rank (:mod:`kvschema.models.weights`), the device
(:mod:`kvschema.planning.gpus`), the non-KV terms (:mod:`kvschema.planning.overheads`), the budget
vLLM 0.33 computes from them (:mod:`kvschema.planning.budget`), the exact allocator
(:mod:`kvschema.planning.capacity`) and the lines vLLM prints (:mod:`kvschema.planning.vllm_log`).
The budget is an interval: the report plans its low end (the least memory, the most overhead), its
point and its high end, and says ``fits`` only when the low end fits.  With
``kv_cache_memory_bytes`` (vLLM's ``--kv-cache-memory-bytes``) the budget is exact, and so are the
plan and the log lines, to the block.

>>> report = fit("tests/fixtures/hf/llama3-8b.json", kv_cache_memory_bytes=20 * 2**30,
...              max_model_len=32768, max_num_batched_tokens=8192)
>>> report.verdict, report.plan.num_pages, report.plan.max_concurrency
('fits', 10240, 5.0)
>>> print(report.vllm_log[-1].text)
GPU KV cache size: 163,840 tokens, Maximum concurrency for 32,768 tokens per request: 5.00x
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kvschema.models.fields import HFConfigError
from kvschema.models.interval import GIB, Interval
from kvschema.models.weights import WeightEstimate
from kvschema.planning.budget import ByteRange, StageBudget, requested_memory
from kvschema.planning.capacity import Outcome
from kvschema.planning.choice import Choice, FitSettings, resolve_choice, stage_budgets
from kvschema.planning.fitmodel import FitModel
from kvschema.planning.vllm_log import (
    DEFAULT_VLLM_VERSION,
    LogLine,
    autofit_lines,
    available_memory_lines,
    insufficient_memory_lines,
    kv_capacity_lines,
    no_memory_lines,
    out_of_memory_lines,
    pinned_memory_lines,
    startup_refused_lines,
)

__all__ = ["FitHardware", "FitPlan", "FitReport", "FitSettings", "Reason", "Verdict", "fit"]

Verdict = Literal["fits", "fits_if_low_overhead", "does_not_fit"]
Reason = Literal[
    "fits",
    "weights_exceed_memory",
    "no_kv_memory",
    "max_model_len_too_long",
    "auto_fit_failed",
    "startup_memory",
    "out_of_memory",
]
End = Literal["low", "point", "high"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class FitHardware(_Frozen):
    """The device each rank runs on, and how many."""

    gpu: str | None = Field(description="The catalogue name; None for a bare memory size.")
    device_name: str | None
    cuda_total: Interval = Field(description="Memory as CUDA reports it, per device.")
    compute_capability: str | None
    gpus: int = Field(description="tensor_parallel_size x pipeline_parallel_size.")


class FitPlan(_Frozen):
    """vLLM's start-up at one end of the budget: what it allocates and prints, or why it stops."""

    end: End
    fits: bool
    reason: Reason
    message: str = Field(description="What happens, in vLLM's terms.")
    available_kv_bytes: list[int] = Field(description="Each stage's budget per rank.")
    max_model_len: int = Field(description="As vLLM runs it (auto-fit resolved).")
    max_model_len_estimate: int | None = Field(
        description="When one request does not fit: the longest that would (0: none)."
    )
    num_pages: int | None = Field(description="vLLM's num_blocks, the null block included.")
    kv_cache_size_tokens: int | None
    max_concurrency: float | None
    requests_at_once: int | None = Field(
        description="Requests of max_model_len tokens the blocks hold at once, the null block "
        "set aside: (num_pages - 1) // pages_per_request."
    )
    needed_bytes: int | None = Field(description="One request's KV bytes where it fails.")
    stage: int | None = Field(description="The pipeline stage vLLM stops on, if it does.")
    bytes_per_page: list[int] = Field(description="One block's bytes per rank, per stage.")
    pages_per_request: int | None
    vllm_log: list[LogLine]


class FitReport(_Frozen):
    """The answer of :func:`fit`: the verdict, the budget with every term, the plan, the log.

    ``plan`` is the best estimate (the point); ``plan_low`` the least memory and the most
    overhead, ``plan_high`` the reverse.  ``fits`` means ``plan_low`` fits; with a pinned budget
    the three are the same and ``exact`` is true.

    >>> r = fit("tests/fixtures/hf/qwen3-8b.json", kv_cache_memory_bytes=2**30,
    ...         max_model_len=40960, max_num_batched_tokens=2048)
    >>> r.verdict, r.reason_code, r.plan.max_model_len_estimate
    ('does_not_fit', 'max_model_len_too_long', 7264)
    """

    vllm_version: str
    model_type: str
    verdict: Verdict
    reason_code: Reason
    reason: str
    exact: bool = Field(description="The budget is pinned: plan and log lines are exact.")
    settings: FitSettings
    hardware: FitHardware | None
    weights: WeightEstimate | None
    stages: list[StageBudget]
    available_kv_bytes: ByteRange = Field(description="The bottleneck stage's budget per rank.")
    bottleneck_stage: int
    plan: FitPlan
    plan_low: FitPlan
    plan_high: FitPlan
    vllm_log: list[LogLine] = Field(description="What vLLM prints at the point estimate.")
    notes: list[str]


def _gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB"


def _pick(value: Interval | None, end: End, cost: bool) -> int:
    """A term at one end: a cost is largest at the low end, a resource smallest."""
    if value is None:
        return 0
    if end == "point":
        return value.point
    return value.high if (end == "low") == cost else value.low


_Refusal = tuple[Reason, str, list[LogLine], int | None]


def _startup_checks(choice: Choice, stages: list[StageBudget], end: End) -> _Refusal | None:
    """vLLM's refusals before the KV cache: start-up memory, weights that do not load."""
    if choice.device is None:
        return None
    total = _pick(choice.device.total, end, cost=False)
    startup = _pick(stages[0].startup, end, cost=True)
    free = total - startup
    requested = requested_memory(total, choice.utilization)
    version = choice.version
    if free < requested:
        return (
            "startup_memory",
            f"free memory at start-up ({_gib(free)} once the CUDA context and NCCL take "
            f"{_gib(startup)}) is less than gpu_memory_utilization x total ({_gib(requested)}): "
            "vLLM refuses to start; lower gpu_memory_utilization",
            startup_refused_lines(version, utilization=choice.utilization, requested=requested),
            None,
        )
    for stage in stages:
        weights = _pick(stage.weights, end, cost=True)
        if weights > free:
            where = f" on a rank of stage {stage.stage}" if len(stages) > 1 else " on a rank"
            return (
                "weights_exceed_memory",
                f"the weights alone exceed the memory: {_gib(weights)}{where}, more than the "
                f"{_gib(free)} free on the device; CUDA runs out of memory loading them",
                out_of_memory_lines(),
                stage.stage,
            )
    return None


def _refused(choice: Choice, common: dict[str, Any], refused: _Refusal) -> FitPlan:
    """vLLM stops before it plans the cache (start-up memory, weights that do not load)."""
    reason, message, lines, stage = refused
    return FitPlan(
        **common,
        fits=False,
        reason=reason,
        message=message,
        max_model_len=choice.max_model_len,
        max_model_len_estimate=None,
        num_pages=None,
        kv_cache_size_tokens=None,
        max_concurrency=None,
        requests_at_once=None,
        needed_bytes=None,
        stage=stage,
        pages_per_request=None,
        vllm_log=lines,
    )


def _failure(
    choice: Choice, stages: list[StageBudget], end: End, out: Outcome, budgets: list[int]
) -> tuple[Reason, str, list[LogLine]]:
    """Why vLLM refuses this budget, in its terms, and the error it raises."""
    version = choice.version
    where = f" on pipeline stage {out.stage}" if len(stages) > 1 and out.stage is not None else ""
    if out.failure == "max_model_len":
        message = (
            f"max_model_len needs more than the cache holds: one request of "
            f"{out.max_model_len:,} tokens needs {_gib(out.needed_bytes or 0)} of KV cache"
            f"{where}, more than the {_gib(out.check_bytes or 0)} available; the estimated "
            f"maximum model length is {out.max_model_len_estimate}"
        )
        lines = insufficient_memory_lines(
            version,
            max_model_len=out.max_model_len,
            needed_bytes=out.needed_bytes or 0,
            available_bytes=out.check_bytes or 0,
            estimate=out.max_model_len_estimate or 0,
        )
        return "max_model_len_too_long", message, lines
    lines = no_memory_lines(version) if out.failure == "no_memory" else []
    stage = stages[out.stage or 0]
    weights = _pick(stage.weights, end, cost=True)
    requested = _pick(stage.requested, end, cost=False)
    if not choice.pinned and weights >= requested:
        message = (
            f"the weights alone exceed the memory: {_gib(weights)}{where or ' on a rank'} "
            f"against {_gib(requested)} requested (gpu_memory_utilization {choice.utilization} "
            "x the device): no memory is left for the cache"
        )
        return "weights_exceed_memory", message, lines
    left = _gib(budgets[out.stage or 0])
    if out.failure == "no_memory":
        message = (
            f"no memory left for the cache: {left}{where} after the weights and overheads, "
            "not more than one block; vLLM stops with 'No available memory for the cache blocks'"
        )
        return "no_kv_memory", message, lines
    message = (
        "Cannot auto-fit max_model_len: the memory left for the KV cache "
        f"({left}{where}) does not serve even a single token"
    )
    return "auto_fit_failed", message, lines


def _end_plan(choice: Choice, stages: list[StageBudget], end: End) -> FitPlan:
    """vLLM's start-up with the budget at ``end``."""
    shape, version = choice.shape, choice.version
    budgets = [getattr(stage.available, end) for stage in stages]
    common: dict[str, Any] = {
        "end": end,
        "available_kv_bytes": budgets,
        "bytes_per_page": list(shape.stage_page_bytes),
    }
    refused = _startup_checks(choice, stages, end)
    if refused is not None:
        return _refused(choice, common, refused)
    out = shape.outcome(budgets, max_model_len=choice.max_model_len, auto=choice.auto)
    lines: list[LogLine] = []
    if choice.pinned:
        lines += pinned_memory_lines(version, budgets[0])
    elif shape.has_kv_cache:
        lines += available_memory_lines(version, budgets)
    if choice.auto and shape.has_kv_cache:
        lines += autofit_lines(
            version,
            original=choice.max_model_len,
            fitted=out.max_model_len if out.failure != "auto_fit" else 0,
            limiting_bytes=out.limiting_check_bytes or 0,
        )
    reason: Reason = "fits"
    if out.failure is not None:
        reason, message, failed = _failure(choice, stages, end, out, budgets)
        lines += failed
    else:
        message = "vLLM starts (no KV cache: an attention-free model)"
        if shape.has_kv_cache and out.max_concurrency is not None:
            lines += kv_capacity_lines(
                version,
                tokens=out.kv_cache_size_tokens or 0,
                max_model_len=out.max_model_len,
                concurrency=out.max_concurrency,
            )
            message = (
                f"vLLM starts: {out.kv_cache_size_tokens:,} tokens of KV cache, "
                f"{out.max_concurrency:.2f} requests of {out.max_model_len:,} tokens at once"
            )
        physical = _pinned_physical(choice, stages, end)
        if physical is not None:
            reason, message = "out_of_memory", physical
            lines += out_of_memory_lines()
    pages = shape.pages_at(out.max_model_len) if shape.has_kv_cache else None
    return FitPlan(
        **common,
        fits=reason == "fits",
        reason=reason,
        message=message,
        max_model_len=out.max_model_len,
        max_model_len_estimate=out.max_model_len_estimate if out.failure else None,
        num_pages=out.num_pages,
        kv_cache_size_tokens=out.kv_cache_size_tokens,
        max_concurrency=out.max_concurrency,
        requests_at_once=(out.num_pages - 1) // pages
        if out.num_pages is not None and pages
        else None,
        needed_bytes=out.needed_bytes,
        stage=out.stage if out.failure else None,
        pages_per_request=pages,
        vllm_log=lines,
    )


def _pinned_physical(choice: Choice, stages: list[StageBudget], end: End) -> str | None:
    """A pinned budget beside the weights and overheads: does it fit on the device at all?"""
    if not choice.pinned or choice.device is None:
        return None
    total = _pick(choice.device.total, end, cost=False)
    for stage in stages:
        if stage.weights is None or stage.activation is None:
            return None
        used = sum(
            _pick(term, end, cost=True)
            for term in (
                stage.weights,
                stage.activation,
                stage.non_torch,
                stage.cuda_graphs,
                stage.startup,
            )
        )
        if used + stage.available.point > total:
            return (
                f"the pinned KV cache ({_gib(stage.available.point)}) with the weights and "
                f"overheads ({_gib(used)}) exceeds the device ({_gib(total)}): CUDA runs out of "
                "memory allocating it"
            )
    return None


def _bottleneck(plan: FitPlan) -> int:
    """The stage vLLM refuses on, else the one holding the fewest blocks."""
    if plan.stage is not None:
        return plan.stage
    ratios = [
        budget // page if page else budget
        for budget, page in zip(plan.available_kv_bytes, plan.bytes_per_page, strict=True)
    ]
    return min(range(len(ratios)), key=lambda s: ratios[s]) if ratios else 0


def evaluate(choice: Choice) -> FitReport:
    """The report of one resolved choice (what :func:`fit` and the solvers share)."""
    stages, weights, notes = stage_budgets(choice)
    plans = {end: _end_plan(choice, stages, end) for end in ("low", "point", "high")}
    low, point, high = plans["low"], plans["point"], plans["high"]
    verdict: Verdict
    if low.fits:
        verdict, why = "fits", point
    elif high.fits:
        verdict, why = "fits_if_low_overhead", low
    else:
        verdict, why = "does_not_fit", point if not point.fits else high
    bottleneck = _bottleneck(point)
    device = choice.device
    return FitReport(
        vllm_version=choice.version,
        model_type=choice.model.model_type,
        verdict=verdict,
        reason_code=why.reason,
        reason=why.message
        if verdict != "fits_if_low_overhead"
        else f"fits only if the overheads are low; at the low end: {why.message}",
        exact=choice.pinned,
        settings=choice.settings,
        hardware=None
        if device is None
        else FitHardware(
            gpu=device.name,
            device_name=device.device_name or None,
            cuda_total=device.total,
            compute_capability=device.compute_capability,
            gpus=choice.tp * choice.pp,
        ),
        weights=weights,
        stages=stages,
        available_kv_bytes=stages[bottleneck].available,
        bottleneck_stage=bottleneck,
        plan=point,
        plan_low=low,
        plan_high=high,
        vllm_log=point.vllm_log,
        notes=notes,
    )


def _read_model(hf_config: Any, weights_bytes: Any, expert_parallel: Any) -> FitModel:
    """The model ``hf_config`` names; a config kvschema cannot read is ``hf_config``'s fault."""
    try:
        return FitModel(hf_config, weights_bytes=weights_bytes, expert_parallel=expert_parallel)
    except HFConfigError as err:
        if err.message.startswith("hf_config"):
            raise
        raise HFConfigError(f"hf_config: {err.message}", **err.fields) from None


def fit(
    hf_config: Mapping[str, Any] | str | Path | FitModel,
    *,
    weights_bytes: int | None = None,
    gpu: str | None = None,
    gpus: int | None = None,
    gpu_memory: int | None = None,
    tensor_parallel_size: int | None = None,
    pipeline_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    kv_cache_memory_bytes: int | None = None,
    max_model_len: int | Literal["auto"] | None = None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
    kv_cache_dtype: str = "auto",
    block_size: int | None = None,
    enforce_eager: bool = False,
    vllm_version: str = DEFAULT_VLLM_VERSION,
    usage: Literal["server", "llm"] = "server",
    expert_parallel: bool = False,
    gdn_prefill_backend: Literal["flashinfer", "triton"] | None = None,
) -> FitReport:
    """Whether ``hf_config`` fits on these GPUs with these vLLM settings, and what vLLM prints.

    Arguments carry vLLM's names and defaults; see ``docs/fit.md``.  ``gpu`` names a catalogue
    GPU, ``gpu_memory`` gives a device's memory as CUDA reports it (bytes) instead or overrides
    the catalogue's; ``gpus`` is ``tensor_parallel_size x pipeline_parallel_size`` (either may
    be left out); ``max_model_len="auto"`` is vLLM's ``-1``.  Without a device, pin the budget
    (``kv_cache_memory_bytes``) and give ``max_num_batched_tokens``.

    >>> r = fit("tests/fixtures/hf/llama3-8b.json", gpu="L4", max_model_len="auto",
    ...         weights_bytes=16_060_522_496)
    >>> r.verdict, r.settings.max_num_batched_tokens, r.plan_low.max_model_len < 131072
    ('fits', 2048, True)
    """
    model = (
        hf_config
        if isinstance(hf_config, FitModel)
        else _read_model(hf_config, weights_bytes, expert_parallel)
    )
    choice = resolve_choice(
        model,
        gpu=gpu,
        gpus=gpus,
        gpu_memory=gpu_memory,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization,
        kv_cache_memory_bytes=kv_cache_memory_bytes,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        kv_cache_dtype=kv_cache_dtype,
        block_size=block_size,
        enforce_eager=enforce_eager,
        vllm_version=vllm_version,
        usage=usage,
        gdn_prefill_backend=gdn_prefill_backend,
    )
    return evaluate(choice)
