"""What each endpoint of ``kvschema serve`` computes, without the web framework: requests in,
kvschema's answers out, kvschema's errors raised (the app turns them into JSON error answers).

Models read from a request are kept (a few dozen, least recently used first out), so a page that
changes one input re-plans in a millisecond or two: the layers, layouts, weights and overheads of
each choice are memoized on the :class:`~kvschema.planning.fitmodel.FitModel`.

>>> from kvschema.serve.schemas import FitRequest
>>> answer = run_fit(FitRequest(model="llama3-8b", kv_cache_memory_bytes=20 * 2**30,
...                             max_model_len=32768, max_num_batched_tokens=8192))
>>> answer.report.verdict, answer.plan.num_pages, answer.report.plan.num_pages
('fits', 10240, 10240)
"""

from __future__ import annotations

import json
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.models.weights import WeightEstimate, weights_from_index
from kvschema.planning import solvers
from kvschema.planning.choice import resolve_choice
from kvschema.planning.fit import FitReport, evaluate
from kvschema.planning.fitmodel import FitModel
from kvschema.planning.gpus import gpus as catalogue
from kvschema.planning.plan import CachePlan
from kvschema.planning.planner import plan_cache
from kvschema.reading.document import Document, Limits, LoadError
from kvschema.reading.loaders import load_bytes
from kvschema.reading.report import check_documents, error_line, load_error_dict
from kvschema.render.chart import plan_chart
from kvschema.serve.bundled import BUNDLED, bundled_config
from kvschema.serve.command import config_argument, fit_command, sweep_command
from kvschema.serve.schemas import (
    MAX_SWEEP_CHOICES,
    BundledModel,
    FitRequest,
    FitResponse,
    ValidateRequest,
    ValidateResponse,
    problems_of,
)

__all__ = [
    "API_LIMITS",
    "DocumentError",
    "ModelCache",
    "bundled_models",
    "computing",
    "run_fit",
    "run_validate",
]

#: The limits of a request body and of a document sent as text: the CLI loaders' depth and
#: value counts, and a byte cap of 1 MiB (a config.json is a few KiB; send a safetensors index
#: without its weight_map, which kvschema does not read).
API_LIMITS = Limits(max_bytes=1 << 20)


_ONE_AT_A_TIME = threading.Lock()


@contextmanager
def computing() -> Iterator[list[warnings.WarningMessage]]:
    """One computation at a time (the interpreter runs one anyway), its warnings (what kvschema
    assumed) recorded for the answer instead of printed on the server.

    >>> with computing() as caught:
    ...     warnings.warn("assumed bfloat16", UserWarning)
    >>> [str(w.message) for w in caught]
    ['assumed bfloat16']
    """
    with _ONE_AT_A_TIME, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


class DocumentError(KVSchemaError):
    """A document in a request that is not what its field takes; ``problems`` lists each fault
    with its rule id, as ``kvschema validate`` reports it.

    >>> DocumentError("a: invalid", problems=[]).error_type
    'invalid_document'
    """

    error_type = "invalid_document"


class _IndexedModel(FitModel):
    """A model whose weights come from a safetensors index's content (no file is read)."""

    def __init__(self, config: Mapping[str, Any], index: Mapping[str, Any], **kw: Any) -> None:
        super().__init__(config, **kw)
        self.index = dict(index)

    def weights(self, tp: int, pp: int) -> WeightEstimate:
        return self._cached(  # type: ignore[no-any-return]
            ("weights", tp, pp),
            lambda: weights_from_index(
                self.index,
                config=self.config,
                tensor_parallel_size=tp,
                pipeline_parallel_size=pp,
                expert_parallel=self.expert_parallel,
            ),
        )


class ModelCache:
    """The models requests named, read once and kept (``size`` of them, least recent out).

    >>> cache = ModelCache(size=2)
    >>> llama = bundled_config("llama3-8b")
    >>> cache.get(llama) is cache.get(dict(reversed(llama.items())))
    True
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._models: OrderedDict[str, FitModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        config: Mapping[str, Any],
        *,
        index: Mapping[str, Any] | None = None,
        weights_bytes: int | None = None,
        expert_parallel: bool = False,
    ) -> FitModel:
        """The model of ``config`` with these weights (made on first use)."""
        key = json.dumps(
            [config, index, weights_bytes, expert_parallel], sort_keys=True, allow_nan=False
        )
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                self._models.move_to_end(key)
                return found
        if index is not None:
            model: FitModel = _IndexedModel(config, index, expert_parallel=expert_parallel)
        else:
            model = FitModel(config, weights_bytes=weights_bytes, expert_parallel=expert_parallel)
        with self._lock:
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model


_MODELS = ModelCache()


def bundled_models() -> list[BundledModel]:
    """The bundled example models, in the order the page lists them.

    >>> bundled_models()[0].max_model_len
    131072
    """
    out = []
    for name, (title, source) in BUNDLED.items():
        model = _MODELS.get(bundled_config(name))
        out.append(
            BundledModel(
                name=name,
                title=title,
                source=source,
                model_type=model.model_type,
                max_model_len=model.model_length.resolve(None),
            )
        )
    return out


def _model(request: FitRequest, models: ModelCache) -> FitModel:
    if (request.model is None) == (request.hf_config is None):
        raise InvalidArgumentError("give either model (a bundled example) or hf_config")
    config = bundled_config(request.model) if request.model is not None else request.hf_config
    if request.safetensors_index is not None and request.weights_bytes is not None:
        raise InvalidArgumentError("give the weights once: safetensors_index or weights_bytes")
    return models.get(
        config or {},
        index=request.safetensors_index,
        weights_bytes=request.weights_bytes,
        expert_parallel=request.expert_parallel,
    )


def _settings(request: FitRequest) -> dict[str, Any]:
    """The settings a single fit and a sweep share (``kvschema fit``'s)."""
    return {
        "gpu_memory_utilization": request.gpu_memory_utilization,
        "kv_cache_memory_bytes": request.kv_cache_memory_bytes,
        "max_model_len": request.max_model_len,
        "max_num_seqs": request.max_num_seqs,
        "max_num_batched_tokens": request.max_num_batched_tokens,
        "block_size": request.block_size,
        "enforce_eager": request.enforce_eager,
        "vllm_version": request.vllm_version,
        "gdn_prefill_backend": request.gdn_prefill_backend,
    }


def _point_plan(model: FitModel, choice: Any, report: FitReport) -> CachePlan | None:
    """The cache planned with the point budget, as ``plan_cache`` plans it (None: no start)."""
    point = report.plan
    if not point.fits or not choice.shape.has_kv_cache:
        return None
    return plan_cache(
        model.layers(choice.tp, choice.kv_cache_dtype, choice.block_size, choice.gdn),
        available_bytes=list(point.available_kv_bytes),
        max_model_len=point.max_model_len,
        max_num_batched_tokens=choice.max_num_batched_tokens,
        tensor_parallel_size=choice.tp,
        pipeline_parallel_size=choice.pp,
        allow_long_max_model_len=True,
    )


def _solve(request: FitRequest, model: FitModel, settings: dict[str, Any]) -> solvers.Solution:
    """``kvschema fit --solve``, as the command line runs it."""
    needed = request.concurrency
    if request.solve == "max-num-seqs":
        if needed is not None:
            raise InvalidArgumentError("solve max-num-seqs finds the concurrency: drop it")
        settings.pop("max_num_seqs")
        return solvers.largest_max_num_seqs(model, **settings)
    if needed is None:
        raise InvalidArgumentError(f"solve {request.solve} needs concurrency")
    if request.solve == "gpu-memory-utilization":
        settings.pop("gpu_memory_utilization")
        return solvers.smallest_utilization(model, concurrency=needed, **settings)
    for name in ("gpus", "tensor_parallel_size", "pipeline_parallel_size"):
        settings.pop(name)
    return solvers.smallest_gpu_count(model, concurrency=needed, **settings)


def run_fit(request: FitRequest, models: ModelCache = _MODELS) -> FitResponse:
    """``POST /api/fit``: the report, a search, a sweep, the plan and its chart, the commands,
    and what kvschema assumed (``warnings``)."""
    with computing() as caught:
        answer = _fit(request, models)
    return FitResponse(**answer, warnings=list(dict.fromkeys(str(w.message) for w in caught)))


def _fit(request: FitRequest, models: ModelCache) -> dict[str, Any]:
    model = _model(request, models)
    answer: dict[str, Any] = {}
    device = (
        request.gpu is not None
        or request.gpu_memory is not None
        or request.kv_cache_memory_bytes is not None
    )
    if request.sweep is not None:
        sweep = request.sweep
        count = (
            len(sweep.gpus if sweep.gpus is not None else catalogue())
            * len(sweep.tensor_parallel_sizes)
            * len(sweep.pipeline_parallel_sizes)
            * len(sweep.kv_cache_dtypes)
            * len(sweep.max_model_lens or [None])
        )
        if count > MAX_SWEEP_CHOICES:
            raise InvalidArgumentError(
                f"a sweep of {count} choices; at most {MAX_SWEEP_CHOICES} a request"
            )
        answer["sweep"] = solvers.sweep(
            model,
            gpus=sweep.gpus,
            tensor_parallel_sizes=sweep.tensor_parallel_sizes,
            pipeline_parallel_sizes=sweep.pipeline_parallel_sizes,
            kv_cache_dtypes=sweep.kv_cache_dtypes,
            max_model_lens=sweep.max_model_lens or [request.max_model_len],
            **{k: v for k, v in _settings(request).items() if k != "max_model_len"},
        )
        answer["sweep_command"] = sweep_command(request, sweep)
    if request.sweep is None or device:
        settings = {
            **_settings(request),
            "gpu": request.gpu,
            "gpus": request.gpus,
            "gpu_memory": request.gpu_memory,
            "tensor_parallel_size": request.tensor_parallel_size,
            "pipeline_parallel_size": request.pipeline_parallel_size,
            "kv_cache_dtype": request.kv_cache_dtype,
        }
        if request.solve is not None:
            solution = _solve(request, model, settings)
            answer["solution"] = solution
            report = solution.report
        else:
            choice = resolve_choice(model, **settings)
            report = evaluate(choice)
            plan = _point_plan(model, choice, report)
            answer["plan"] = plan
            answer["groups"] = (plan or choice.shape.plan).groups
            if request.chart and plan is not None:
                answer["chart_svg"] = plan_chart(plan, title=request.model or model.model_type)
        answer["report"] = report
        answer["command"] = fit_command(request)
    answer["command_note"] = config_argument(request)[1]
    return answer


def run_validate(request: ValidateRequest) -> ValidateResponse:
    """``POST /api/validate``: the report and lines of ``kvschema validate`` for one document."""
    if (request.text is None) == (request.document is None):
        raise InvalidArgumentError("give either text (a file's content) or document")
    if request.text is not None:
        try:
            documents = load_bytes(request.text.encode("utf-8"), request.format, API_LIMITS)
        except LoadError as err:
            error = load_error_dict(err)
            return ValidateResponse(
                ok=False,
                exit_code=2,
                documents=0,
                kinds=[],
                errors=problems_of([error]),
                lines=[error_line(request.name, error)],
            )
    else:
        documents = [Document(request.document)]
    entry = check_documents(documents, request.kind, request.path)
    return ValidateResponse(
        ok=entry["ok"],
        exit_code=0 if entry["ok"] else 1,
        documents=entry["documents"],
        kinds=entry["kinds"],
        errors=problems_of(entry["errors"]),
        lines=[error_line(request.name, error) for error in entry["errors"]],
    )
