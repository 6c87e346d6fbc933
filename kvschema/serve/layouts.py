"""The endpoints on layouts: plan a cache (``kvschema plan``), check two peers (``kvschema
diff``), fingerprint a document, and the published JSON Schemas.

A document in a request is checked as the command line checks a file's (the same rule ids and
paths, without lines: it arrives as JSON, not as text).

>>> from kvschema.serve.schemas import PlanRequest
>>> plan = run_plan(PlanRequest(model="llama3-8b", memory=20 * 2**30, max_model_len=32768))
>>> plan.num_pages, plan.max_concurrency
(10240, 5.0)
"""

from __future__ import annotations

from typing import Any

from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.exchange.canonical import fingerprint, layout_fingerprint, to_canonical_json
from kvschema.exchange.compat import CompatibilityReport, check_compatible
from kvschema.exchange.schema import json_schemas
from kvschema.layout.config import CacheGroupsConfig
from kvschema.models.hf import layers_from_hf_config
from kvschema.planning.engine import DEFAULT_BLOCK_SIZE, vllm_layers_from_hf_config
from kvschema.planning.plan import CachePlan
from kvschema.planning.planner import plan_cache
from kvschema.reading.checking import read_document, recognise
from kvschema.reading.document import Document
from kvschema.reading.report import issue_dict
from kvschema.serve.bundled import bundled_config
from kvschema.serve.schemas import (
    CompatRequest,
    FingerprintRequest,
    FingerprintResponse,
    PlanRequest,
    problems_of,
)
from kvschema.serve.service import DocumentError

__all__ = [
    "UnknownSchemaError",
    "read_field",
    "run_compat",
    "run_fingerprint",
    "run_plan",
    "schema",
]


class UnknownSchemaError(KVSchemaError):
    """A schema name that kvschema does not publish.

    >>> UnknownSchemaError("no schema 'x'").error_type
    'unknown_schema'
    """

    error_type = "unknown_schema"


def read_field(data: Any, kind: str | None, field: str, pointer: str | None = None) -> Any:
    """The validated value of request field ``field`` read as ``kind`` (None: recognised from
    its keys); every fault raised at once as a :class:`~kvschema.serve.service.DocumentError`.

    >>> read_field({"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32"},
    ...            "spec", "document").page_size_bytes
    16
    """
    _, value, issues = read_document(Document(data), kind, pointer)
    if issues:
        problems = problems_of([issue_dict(issue, 1) for issue in issues], field)
        first = problems[0]
        raise DocumentError(
            f"{field}: {first.path}: {first.message} [{first.type}]"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            problems=problems,
        )
    return value


def _plan_layers(request: PlanRequest) -> Any:
    sources = [
        name
        for name in ("model", "hf_config", "layers", "groups")
        if getattr(request, name) is not None
    ]
    if len(sources) != 1:
        raise InvalidArgumentError(
            "give exactly one source: model, hf_config, layers or groups"
            + (f" (got {', '.join(sources)})" if sources else "")
        )
    if request.layers is not None:
        return read_field(request.layers, "layers", "layers")
    if request.groups is not None:
        data = request.groups
        is_plan = isinstance(data, dict) and {"config", "inputs", "strategy"} <= data.keys()
        kind = "groups" if request.groups_list else "config"
        return read_field(data, kind, "groups", "/config" if is_plan else None)
    config = bundled_config(request.model) if request.model is not None else request.hf_config
    common: dict[str, Any] = {
        "kv_cache_dtype": request.kv_cache_dtype,
        "tensor_parallel_size": request.tensor_parallel_size or 1,
        "mamba_cache_dtype": request.mamba_cache_dtype,
        "mamba_ssm_cache_dtype": request.mamba_ssm_cache_dtype,
    }
    if request.strategy == "per_layer":
        page = DEFAULT_BLOCK_SIZE if request.page_size is None else request.page_size
        return layers_from_hf_config(config or {}, page_size=page, **common)
    return vllm_layers_from_hf_config(
        config or {},
        block_size=request.page_size,
        enable_prefix_caching=request.enable_prefix_caching,
        max_model_len=request.max_model_len,
        gdn_prefill_backend=request.gdn_prefill_backend,
        **common,
    )


def run_plan(request: PlanRequest) -> CachePlan:
    """``POST /api/plan``: what ``kvschema plan -o json`` prints for the same arguments."""
    from_config = request.model is not None or request.hf_config is not None
    if not from_config and request.max_model_len is None:
        raise InvalidArgumentError(
            "max_model_len is required with layers and groups (with a model config it "
            "defaults to the model's own)"
        )
    layers = _plan_layers(request)
    memory = request.memory
    return plan_cache(
        layers,
        available_bytes=memory[0] if isinstance(memory, list) and len(memory) == 1 else memory,
        max_model_len=request.max_model_len,
        max_num_batched_tokens=request.max_num_batched_tokens,
        strategy=request.strategy,
        tensor_parallel_size=request.tensor_parallel_size,
        pipeline_parallel_size=request.pipeline_parallel_size,
        async_scheduling=request.async_scheduling,
        allow_long_max_model_len=request.allow_long_max_model_len,
        disable_hybrid_kv_cache_manager=request.disable_hybrid_kv_cache_manager,
        allow_chunked_local_with_hybrid=request.allow_chunked_local_with_hybrid,
        eagle=request.eagle,
        kv_connector_supports_hybrid=request.kv_connector_supports_hma,
    )


def run_compat(request: CompatRequest) -> CompatibilityReport:
    """``POST /api/compat``: what ``kvschema diff -o json`` reports for two layouts."""
    a = read_field(request.a, "config", "a")
    b = read_field(request.b, "config", "b")
    return check_compatible(a, b, tp_a=request.tp_a, tp_b=request.tp_b)


def run_fingerprint(request: FingerprintRequest) -> FingerprintResponse:
    """``POST /api/fingerprint``: the canonical JSON of a spec, group or config, its
    fingerprint, and a config's layout fingerprint.

    >>> from kvschema.serve.schemas import FingerprintRequest
    >>> run_fingerprint(FingerprintRequest(document={"kind": "mamba", "page_size": 1,
    ...     "shapes": [[4]], "dtype": "fp32"})).fingerprint[:7]
    'sha256:'
    """
    value = read_field(request.document, request.kind, "document")
    kind = request.kind or recognise(request.document)
    return FingerprintResponse(
        kind=kind,  # read: a spec, a group or a config
        fingerprint=fingerprint(value),
        layout_fingerprint=layout_fingerprint(value)
        if isinstance(value, CacheGroupsConfig)
        else None,
        canonical_json=to_canonical_json(value).decode("utf-8"),
    )


def schema(name: str) -> dict[str, Any]:
    """``GET /api/schemas/{name}``: a published JSON Schema (``.json`` may end the name).

    >>> schema("cache-spec.json")["$id"]
    'urn:kvschema:schema:v2:cache-spec'
    """
    schemas = json_schemas()
    key = name.removesuffix(".json")
    if key not in schemas:
        raise UnknownSchemaError(
            f"no schema {name[:80]!r}; kvschema publishes {', '.join(schemas)}", schema=name[:80]
        )
    return schemas[key]
