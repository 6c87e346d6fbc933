"""The web app's requests and answers: kvschema's own models, wrapped only where a request needs
more than one of them.

Requests are strict (``8`` is a number, ``"8"`` is not) and refuse unknown fields, so a typo is an
error, not a silently ignored setting.  The answers carry kvschema's models unchanged —
``FitReport``, ``Sweep``, ``Solution``, ``CachePlan``, ``CompatibilityReport``, ``GPU`` — so the
OpenAPI document of ``kvschema serve`` describes the same JSON ``kvschema fit -o json`` prints.

>>> FitRequest(model="llama3-8b", gpu="H100", max_model_len=32768).gpu_memory_utilization
0.9
>>> FitRequest.model_validate({"model": "llama3-8b", "gpus": "2"})
Traceback (most recent call last):
pydantic_core._pydantic_core.ValidationError: 1 validation error for FitRequest
gpus
  Input should be a valid integer [type=int_type, input_value='2', input_type=str]
    ...
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from kvschema.planning.fit import FitReport
from kvschema.planning.plan import CachePlan, GroupSummary
from kvschema.planning.solvers import Solution, Sweep

__all__ = [
    "BundledModel",
    "CompatRequest",
    "ErrorReport",
    "FingerprintRequest",
    "FingerprintResponse",
    "FitRequest",
    "FitResponse",
    "PlanRequest",
    "Problem",
    "SweepRequest",
    "ValidateRequest",
    "ValidateResponse",
]

#: The largest whole number a request may carry: JSON's safe integers (2**53), beyond any
#: memory size, length or count kvschema plans.
MAX_INT = 2**53
#: Sweeps are bounded: at most this many choices (GPU x TP x PP x KV dtype) a request.
MAX_SWEEP_CHOICES = 512

Count = Annotated[int, Field(ge=1, le=MAX_INT)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Problem(_Answer):
    """One thing wrong, with its rule id (``type``) and where it is.

    ``path`` is a JSON path in the document (``$.kv_cache_groups[0].page_size``) or in the request
    body; ``line`` and ``column`` are given for a document sent as text; ``field`` names the
    request field that holds the document (``a`` or ``b`` of a compatibility check).

    >>> Problem(type="greater_than_equal", message="too small", path="$.page_size").line is None
    True
    """

    type: str = Field(description="The rule's stable id, as the CLI prints it in brackets.")
    message: str
    path: str | None = None
    line: int | None = None
    column: int | None = None
    document: int | None = Field(default=None, description="The document of a multi-document file.")
    field: str | None = Field(default=None, description="The request field holding the document.")


class ErrorReport(_Answer):
    """Every error answer: the HTTP status, the rule id, a message, and each problem found.

    >>> ErrorReport(status=413, type="body_too_large", message="...").problems
    []
    """

    status: int
    type: str = Field(description="The rule id: kvschema's error type, or the HTTP failure's.")
    message: str
    problems: list[Problem] = Field(default_factory=list)
    details: dict[str, JsonValue] = Field(
        default_factory=dict, description="The values at fault, by name (the error's fields)."
    )


class ValidateRequest(_Request):
    """A deploy document to check as ``kvschema validate`` does: its ``text`` (YAML, JSON or
    TOML, as a file holds it: errors then carry lines and columns) or the ``document`` itself.

    >>> ValidateRequest(text="kind: mamba\\n", format="yaml").kind is None
    True
    """

    text: str | None = Field(default=None, description="The file's content.")
    format: Literal["yaml", "json", "toml"] | None = Field(
        default=None, description="How to parse text (default: JSON if it starts with { or [)."
    )
    document: JsonValue = Field(default=None, description="The document as JSON, instead of text.")
    kind: Literal["spec", "group", "config"] | None = Field(
        default=None, description="The document type (default: recognised from its keys)."
    )
    path: str | None = Field(
        default=None,
        description="A JSON pointer to the section to check (--path).",
        max_length=1000,
    )
    name: Name = Field(default="document", description="The file name the error lines show.")


class ValidateResponse(_Answer):
    """What ``kvschema validate -o json`` reports for one file, and the lines it prints."""

    ok: bool
    exit_code: int = Field(description="The CLI's: 0 valid, 1 a document is wrong, 2 unreadable.")
    documents: int
    kinds: list[str | None]
    errors: list[Problem]
    lines: list[str] = Field(description="The lines kvschema validate prints, one per error.")


class SweepRequest(_Request):
    """The choices of a sweep (``kvschema fit --sweep``): every GPU x TP x PP x KV dtype x
    length (``max_model_lens``; default: the request's one ``max_model_len``).

    >>> SweepRequest().tensor_parallel_sizes
    [1, 2, 4, 8]
    """

    gpus: list[Name] | None = Field(
        default=None, max_length=64, description="Catalogue names (default: the whole catalogue)."
    )
    tensor_parallel_sizes: list[Count] = Field(default=[1, 2, 4, 8], min_length=1, max_length=16)
    pipeline_parallel_sizes: list[Count] = Field(default=[1], min_length=1, max_length=16)
    kv_cache_dtypes: list[Name] = Field(default=["auto"], min_length=1, max_length=8)
    max_model_lens: list[Count | Literal["auto"]] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Lengths to sweep (a length or 'auto' each); default: the request's "
        "max_model_len.",
    )


class FitRequest(_Request):
    """``kvschema fit``'s arguments (vLLM's names): a model, the device, the vLLM settings.

    The model is ``model`` (a bundled example, ``GET /api/models``) or ``hf_config`` (the content
    of a ``config.json``; with ``safetensors_index``, the content of its
    ``model.safetensors.index.json``, whose ``metadata.total_size`` gives the weights).  ``solve``
    searches a setting; ``sweep`` adds the table of every choice; ``chart`` adds the plan's SVG.
    """

    model: Name | None = None
    hf_config: dict[str, JsonValue] | None = None
    safetensors_index: dict[str, JsonValue] | None = None
    config_name: Name = Field(
        default="config.json", description="The config's file name, for the command line."
    )
    weights_bytes: Count | None = None
    gpu: Name | None = None
    gpus: Count | None = None
    gpu_memory: Count | None = None
    tensor_parallel_size: Count | None = None
    pipeline_parallel_size: Count = 1
    gpu_memory_utilization: float = 0.9
    kv_cache_memory_bytes: Count | None = None
    max_model_len: Count | Literal["auto"] | None = None
    max_num_seqs: Count | None = None
    max_num_batched_tokens: Count | None = None
    kv_cache_dtype: Name = "auto"
    block_size: Count | None = None
    enforce_eager: bool = False
    expert_parallel: bool = False
    gdn_prefill_backend: Literal["flashinfer", "triton"] | None = None
    vllm_version: Name = "0.33"
    solve: Literal["max-num-seqs", "gpu-memory-utilization", "gpus"] | None = None
    concurrency: Count | None = None
    sweep: SweepRequest | None = None
    chart: bool = False


class FitResponse(_Answer):
    """A fit's answer: the report (as ``kvschema fit -o json``), a searched setting, the sweep
    table, the plan of the cache at the best estimate (None when vLLM would not start), its
    groups, its chart, and the command lines that reproduce each answer."""

    report: FitReport | None = None
    solution: Solution | None = None
    sweep: Sweep | None = None
    plan: CachePlan | None = Field(
        default=None, description="The cache planned with the budget's point estimate."
    )
    groups: list[GroupSummary] = Field(
        default_factory=list,
        description="The page-table groups: the plan's, else the layout's at the length asked.",
    )
    chart_svg: str | None = None
    command: str | None = Field(default=None, description="kvschema fit with these settings.")
    sweep_command: str | None = None
    command_note: str | None = None
    warnings: list[str] = Field(
        default_factory=list, description="What kvschema assumed where the input did not say."
    )


class PlanRequest(_Request):
    """``kvschema plan``'s arguments: one source (``hf_config`` or ``model``, ``layers`` — a
    layer map —, or ``groups`` — a CacheGroupsConfig or what ``plan -o json`` writes), the
    budget per rank (``memory``: bytes, one per pipeline stage) and the engine settings."""

    model: Name | None = None
    hf_config: dict[str, JsonValue] | None = None
    layers: JsonValue = None
    groups: JsonValue = None
    groups_list: bool = False
    memory: Count | list[Count]
    max_model_len: Count | None = None
    allow_long_max_model_len: bool = False
    max_num_batched_tokens: Count = 8192
    tensor_parallel_size: Count | None = None
    pipeline_parallel_size: Count | None = None
    strategy: Literal["hybrid", "per_layer"] = "hybrid"
    enable_prefix_caching: bool | None = None
    async_scheduling: bool | None = None
    disable_hybrid_kv_cache_manager: bool | None = None
    eagle: bool = False
    allow_chunked_local_with_hybrid: bool = True
    kv_connector_supports_hma: bool | None = None
    page_size: Count | None = None
    kv_cache_dtype: Name = "auto"
    mamba_cache_dtype: Name = "auto"
    mamba_ssm_cache_dtype: Name = "auto"
    gdn_prefill_backend: Literal["flashinfer", "triton"] = "flashinfer"


class CompatRequest(_Request):
    """``kvschema diff``: can ``a`` (sending, at TP ``tp_a``) move pages to ``b`` (at ``tp_b``)?
    Each layout is a CacheGroupsConfig document."""

    a: JsonValue
    b: JsonValue
    tp_a: Count = 1
    tp_b: Count = 1


class FingerprintRequest(_Request):
    """A spec, a group or a CacheGroupsConfig (recognised from its keys, or named by ``kind``)."""

    document: JsonValue
    kind: Literal["spec", "group", "config"] | None = None


class FingerprintResponse(_Answer):
    """The canonical bytes of a document and their fingerprints.

    ``layout_fingerprint`` (configs only) leaves out what peers may differ in (``num_pages``).
    """

    kind: Literal["spec", "group", "config"]
    fingerprint: str
    layout_fingerprint: str | None
    canonical_json: str


class BundledModel(_Answer):
    """An example ``config.json`` shipped with kvschema (``GET /api/models/{name}`` gives it)."""

    name: str
    title: str
    source: str = Field(description="The Hugging Face repository the config is taken from.")
    model_type: str
    max_model_len: int = Field(description="The model's own context length, as vLLM derives it.")


def problems_of(items: list[dict[str, Any]], field: str | None = None) -> list[Problem]:
    """Problems from the error dicts of :mod:`kvschema.reading.report`.

    >>> problems_of([{"type": "missing", "message": "Field required", "path": "$.kind"}], "a")
    [Problem(type='missing', message='Field required', path='$.kind', line=None, column=None, document=None, field='a')]
    """
    return [
        Problem(
            type=item["type"],
            message=item["message"],
            path=item.get("path"),
            line=item.get("line"),
            column=item.get("column"),
            document=item.get("document"),
            field=field,
        )
        for item in items
    ]
