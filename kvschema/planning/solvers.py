"""Questions :func:`~kvschema.planning.fit.fit` answers by search: the most requests, the least
memory, the fewest GPUs, and a sweep over devices and layouts.

Each search runs :func:`~kvschema.planning.fit.evaluate` on a model prepared once
(:class:`~kvschema.planning.fitmodel.FitModel` memoizes the layers, layouts, weights and
overheads), and answers twice: ``low`` is what the low end of the budget guarantees (promise
this), ``point`` what the best estimate gives.  "Requests at once" counts requests of
``max_model_len`` tokens that the blocks hold together, the null block set aside.

>>> model = FitModel("tests/fixtures/hf/llama3-8b.json", weights_bytes=16_060_522_496)
>>> answer = largest_max_num_seqs(model, gpu="H100", max_model_len=8192)
>>> answer.low <= answer.point, answer.report.plan_low.requests_at_once >= answer.low
(True, True)
"""

from collections.abc import Callable, Iterable, Sequence
from itertools import product
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.planning.choice import resolve_choice
from kvschema.planning.fit import FitPlan, FitReport, Reason, Verdict, evaluate
from kvschema.planning.fitmodel import FitModel
from kvschema.planning.gpus import gpus as catalogue

__all__ = [
    "Solution",
    "Sweep",
    "SweepRow",
    "largest_max_num_seqs",
    "smallest_gpu_count",
    "smallest_utilization",
    "sweep",
]

#: The largest max_num_seqs searched.
MAX_NUM_SEQS_CEILING = 1 << 14
#: Tensor-parallel sizes tried for the fewest GPUs, and the most pipeline stages.
_TP_SIZES = (1, 2, 4, 8, 16)
_MAX_PP = 8


class Solution(BaseModel):
    """A searched setting: guaranteed (``low``) and best-estimate (``point``) values.

    None where no value works (``message`` says why).  ``report`` is the fit at the guaranteed
    value, else at the best estimate's, else at the last value tried.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    solves: Literal["max_num_seqs", "gpu_memory_utilization", "gpus"]
    question: str
    low: float | None
    point: float | None
    message: str
    report: FitReport | None
    #: For ``gpus``: the layout found, as (tensor_parallel_size, pipeline_parallel_size).
    layout_low: tuple[int, int] | None = None
    layout_point: tuple[int, int] | None = None


def _at_once(plan: FitPlan, needed: int) -> bool:
    return plan.fits and (plan.requests_at_once or 0) >= needed


def _largest(holds: Callable[[int], bool], ceiling: int) -> int | None:
    """The largest n in [1, ceiling] with ``holds(n)``, for a predicate true then false."""
    if not holds(1):
        return None
    low, high = 1, ceiling
    while low < high:
        mid = (low + high + 1) // 2
        if holds(mid):
            low = mid
        else:
            high = mid - 1
    return low


def largest_max_num_seqs(
    model: FitModel, *, max_model_len: int | None = None, **settings: Any
) -> Solution:
    """The largest ``max_num_seqs`` whose requests of ``max_model_len`` all fit at once.

    More sequences cost memory too (the sampler's logits, more CUDA graphs), so each candidate
    is fitted with its own overheads; ``settings`` are :func:`~kvschema.planning.fit.fit`'s.
    """
    if "max_num_seqs" in settings:
        raise InvalidArgumentError("largest_max_num_seqs searches max_num_seqs: do not pass it")
    reports: dict[int, FitReport] = {}

    def report(n: int) -> FitReport:
        if n not in reports:
            reports[n] = evaluate(
                resolve_choice(model, max_model_len=max_model_len, max_num_seqs=n, **settings)
            )
        return reports[n]

    low = _largest(lambda n: _at_once(report(n).plan_low, n), MAX_NUM_SEQS_CEILING)
    point = _largest(lambda n: _at_once(report(n).plan, n), MAX_NUM_SEQS_CEILING)
    length = report(1).plan.max_model_len
    question = f"the largest max_num_seqs whose requests of {length:,} tokens fit at once"
    chosen = report(low or point or 1)
    if point is None:
        message = f"not even one request of {length:,} tokens fits: {chosen.plan.message}"
    elif low is None:
        message = f"{point} at the best estimate, none guaranteed: {chosen.plan_low.message}"
    else:
        message = f"{low} guaranteed, {point} at the best estimate"
    return Solution(
        solves="max_num_seqs",
        question=question,
        low=low,
        point=point,
        message=message,
        report=chosen,
    )


def smallest_utilization(
    model: FitModel, *, concurrency: int, max_model_len: int | None = None, **settings: Any
) -> Solution:
    """The smallest ``gpu_memory_utilization`` (in hundredths) holding ``concurrency`` requests
    of ``max_model_len`` tokens at once: vLLM's open question "what utilization for N requests?".
    """
    needed = positive_int_arg("concurrency", concurrency)
    if "gpu_memory_utilization" in settings:
        raise InvalidArgumentError("smallest_utilization searches gpu_memory_utilization")
    found: dict[str, float | None] = {"low": None, "point": None}
    last: FitReport | None = None
    best: FitReport | None = None
    reports: dict[str, FitReport] = {}
    for percent in range(1, 101):
        utilization = percent / 100
        try:
            last = evaluate(
                resolve_choice(
                    model,
                    max_model_len=max_model_len,
                    gpu_memory_utilization=utilization,
                    **settings,
                )
            )
        except KVSchemaError:
            continue
        if last.plan.reason != "startup_memory":
            best = last
        for end, plan in (("low", last.plan_low), ("point", last.plan)):
            if found[end] is None and _at_once(plan, needed):
                found[end] = utilization
                reports[end] = last
        if found["low"] is not None:
            break
    length = last.plan.max_model_len if last is not None else max_model_len
    question = f"the smallest gpu_memory_utilization for {needed} requests of {length:,} tokens"
    if found["point"] is None:
        if best is None:
            why = last.plan.message if last is not None else "no utilization could be fitted"
        else:
            held = best.plan.requests_at_once or 0
            why = (
                f"at {best.settings.gpu_memory_utilization}, the most vLLM starts with, "
                f"{held} fit at the best estimate"
            )
        message = f"no utilization holds {needed} requests at once: {why}"
    elif found["low"] is None:
        message = f"{found['point']} at the best estimate; none guaranteed"
    else:
        message = f"{found['low']} guaranteed, {found['point']} at the best estimate"
    return Solution(
        solves="gpu_memory_utilization",
        question=question,
        low=found["low"],
        point=found["point"],
        message=message,
        report=reports.get("low") or reports.get("point") or best or last,
    )


def _layouts(max_gpus: int) -> list[tuple[int, int]]:
    pairs = [(tp, pp) for tp in _TP_SIZES for pp in range(1, _MAX_PP + 1) if tp * pp <= max_gpus]
    return sorted(pairs, key=lambda pair: (pair[0] * pair[1], pair[1]))


def smallest_gpu_count(
    model: FitModel,
    *,
    concurrency: int,
    max_model_len: int | None = None,
    max_gpus: int = 64,
    **settings: Any,
) -> Solution:
    """The fewest GPUs (tensor x pipeline parallel, TP in 1, 2, 4, 8, 16 and PP up to 8, the
    fewer stages first) holding ``concurrency`` requests of ``max_model_len`` tokens at once."""
    needed = positive_int_arg("concurrency", concurrency)
    for name in ("gpus", "tensor_parallel_size", "pipeline_parallel_size"):
        if name in settings:
            raise InvalidArgumentError(
                f"smallest_gpu_count searches the layout: do not pass {name}"
            )
    found: dict[str, tuple[int, int] | None] = {"low": None, "point": None}
    reports: dict[str, FitReport] = {}
    last: FitReport | None = None
    for tp, pp in _layouts(positive_int_arg("max_gpus", max_gpus)):
        try:
            last = evaluate(
                resolve_choice(
                    model,
                    tensor_parallel_size=tp,
                    pipeline_parallel_size=pp,
                    max_model_len=max_model_len,
                    **settings,
                )
            )
        except KVSchemaError:
            continue  # a layout the model cannot take (heads or vocabulary that do not divide)
        for end, plan in (("low", last.plan_low), ("point", last.plan)):
            if found[end] is None and _at_once(plan, needed):
                found[end] = (tp, pp)
                reports[end] = last
        if found["low"] is not None:
            break
    low, point = found["low"], found["point"]
    length = last.plan.max_model_len if last is not None else max_model_len
    question = f"the fewest GPUs for {needed} requests of {length:,} tokens"
    if point is None:
        message = f"no layout of up to {max_gpus} GPUs holds {needed} requests at once"
    elif low is None:
        message = f"{point[0] * point[1]} (tp={point[0]}, pp={point[1]}) at the best estimate"
    else:
        message = (
            f"{low[0] * low[1]} guaranteed (tp={low[0]}, pp={low[1]}), "
            f"{point[0] * point[1]} at the best estimate"
        )
    return Solution(
        solves="gpus",
        question=question,
        low=None if low is None else low[0] * low[1],
        point=None if point is None else point[0] * point[1],
        message=message,
        report=reports.get("low") or reports.get("point") or last,
        layout_low=low,
        layout_point=point,
    )


class SweepRow(BaseModel):
    """One choice of a sweep: its verdict and what it holds (None where it cannot run)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    gpu: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    kv_cache_dtype: str
    asked_max_model_len: int | Literal["auto"] | None = Field(
        default=None,
        description="The max_model_len asked for this choice: a length, 'auto' (vLLM's "
        "auto-fit), or None (the model's own); max_model_len is the one vLLM runs with.",
    )
    gpus: int
    verdict: Verdict | None = Field(description="None: the choice is invalid (see error).")
    reason_code: Reason | None
    available_kv_gib: tuple[float, float, float] | None
    max_model_len: int | None
    max_concurrency_low: float | None
    max_concurrency: float | None
    concurrency_per_gpu: float | None = Field(
        description="The guaranteed concurrency per GPU (the low end; the point when only it fits)."
    )
    error: str | None = None


class Sweep(BaseModel):
    """A sweep's rows, the most concurrency per GPU first (invalid choices last)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model_type: str
    rows: list[SweepRow]


def _row(
    gpu: str, tp: int, pp: int, asked: int | Literal["auto"] | None, report: FitReport
) -> SweepRow:
    low, point = report.plan_low, report.plan
    best = low if low.fits else point if point.fits else None
    per_gpu = None
    if best is not None and best.max_concurrency is not None:
        per_gpu = best.max_concurrency / (tp * pp)
    return SweepRow(
        gpu=gpu,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        kv_cache_dtype=report.settings.kv_cache_dtype,
        asked_max_model_len=asked,
        gpus=tp * pp,
        verdict=report.verdict,
        reason_code=report.reason_code,
        available_kv_gib=report.available_kv_bytes.gib(),
        max_model_len=point.max_model_len,
        max_concurrency_low=low.max_concurrency if low.fits else None,
        max_concurrency=point.max_concurrency if point.fits else None,
        concurrency_per_gpu=per_gpu,
    )


def _failed_row(
    gpu: str, tp: int, pp: int, dtype: str, asked: int | Literal["auto"] | None, message: str
) -> SweepRow:
    """The row of a choice that cannot be fitted: what was asked, and why not."""
    return SweepRow(
        gpu=gpu,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        kv_cache_dtype=dtype,
        asked_max_model_len=asked,
        gpus=tp * pp,
        verdict=None,
        reason_code=None,
        available_kv_gib=None,
        max_model_len=None,
        max_concurrency_low=None,
        max_concurrency=None,
        concurrency_per_gpu=None,
        error=message,
    )


def _length(value: Any) -> int | Literal["auto"] | None:
    """A length a sweep asks for: a positive int, ``"auto"`` (or vLLM's ``-1``), or None."""
    if value is None or value == "auto" or (type(value) is int and value == -1):
        return None if value is None else "auto"
    return positive_int_arg("max_model_len", value)


_ORDER = {"fits": 0, "fits_if_low_overhead": 1, "does_not_fit": 2, None: 3}


def sweep(
    model: FitModel,
    *,
    gpus: Sequence[str] | None = None,
    tensor_parallel_sizes: Iterable[int] = (1, 2, 4, 8),
    pipeline_parallel_sizes: Iterable[int] = (1,),
    kv_cache_dtypes: Iterable[str] = ("auto",),
    max_model_lens: Iterable[int | Literal["auto"] | None] | None = None,
    **settings: Any,
) -> Sweep:
    """Fit every GPU x TP x PP x KV dtype x length choice; the most concurrency per GPU first.

    ``gpus`` defaults to the whole catalogue; ``max_model_lens`` to the one ``max_model_len``
    of ``settings`` (a length, ``"auto"``, or None: the model's own), which then takes no
    ``max_model_len``; ``settings`` are :func:`fit`'s other arguments.  Everything that does
    not depend on the choice is prepared once (the model's :class:`FitModel` memoizes it), so
    each row is what :func:`fit` answers for that choice alone.
    """
    if max_model_lens is None:
        asked: list[Any] = [settings.pop("max_model_len", None)]
    elif "max_model_len" in settings:
        raise InvalidArgumentError("give max_model_lens or max_model_len, not both")
    elif isinstance(max_model_lens, (str, bytes)) or not isinstance(max_model_lens, Iterable):
        raise InvalidArgumentError(
            f"max_model_lens must be a list of lengths, got {type(max_model_lens).__name__}"
        )
    else:
        asked = list(max_model_lens)
        if not asked:
            raise InvalidArgumentError("max_model_lens is empty: give one length or more")
    lengths = [_length(value) for value in asked]
    names = [g.name for g in catalogue()] if gpus is None else list(gpus)
    rows: list[SweepRow] = []
    for name, tp, pp, dtype, length in product(
        names,
        list(tensor_parallel_sizes),
        list(pipeline_parallel_sizes),
        list(kv_cache_dtypes),
        lengths,
    ):
        try:
            report = evaluate(
                resolve_choice(
                    model,
                    gpu=name,
                    tensor_parallel_size=tp,
                    pipeline_parallel_size=pp,
                    kv_cache_dtype=dtype,
                    max_model_len=length,
                    **settings,
                )
            )
        except KVSchemaError as err:
            rows.append(_failed_row(name, tp, pp, dtype, length, err.message))
            continue
        gpu = report.hardware.gpu or name if report.hardware else name
        rows.append(_row(gpu, tp, pp, length, report))
    rows.sort(key=lambda r: (_ORDER[r.verdict], -(r.concurrency_per_gpu or 0.0)))
    return Sweep(model_type=model.model_type, rows=rows)
