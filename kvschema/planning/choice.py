"""One fit's inputs resolved as vLLM 0.33 resolves them, and the budget per stage they give.

:func:`resolve_choice` checks the arguments of :func:`kvschema.fit` and decides what vLLM
decides at start-up: the parallel sizes, the context length (the model's own, a given one no
longer than it, or auto-fit's search bound), the batch sizes by device
(``EngineArgs.get_batch_defaults`` and ``_set_default_max_num_seqs_and_batched_tokens_args``:
``max_num_batched_tokens = min(max_num_seqs x max_model_len, the tier's)``, then
``max_num_seqs = min(max_num_seqs, max_num_batched_tokens)``), the cache dtype (``auto``: the
checkpoint's declared KV scheme, else the model's dtype), the block size and the planned layout.
:func:`stage_budgets` gives each pipeline stage's budget per rank (:mod:`.budget`).

>>> from kvschema.planning.fitmodel import FitModel
>>> choice = resolve_choice(FitModel("tests/fixtures/hf/llama3-8b.json"), gpu="A100-80GB",
...                         max_model_len=8192)
>>> choice.settings.max_num_batched_tokens, choice.settings.max_num_seqs, choice.block_size
(2048, 256, 16)
"""

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.models.split import pp_layer_ranges
from kvschema.models.weights import WeightEstimate
from kvschema.planning.budget import ByteRange, StageBudget, check_utilization, stage_budget
from kvschema.planning.capacity import CacheShape
from kvschema.planning.engine import GdnPrefillBackend
from kvschema.planning.fitmodel import Device, FitModel, device
from kvschema.planning.vllm_log import vllm_version

__all__ = ["Choice", "FitSettings", "resolve_choice", "stage_budgets"]


class FitSettings(BaseModel):
    """The vLLM settings of a fit, as vLLM 0.33 resolves them (its names)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    vllm_version: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpu_memory_utilization: float
    kv_cache_memory_bytes: int | None
    #: As asked: a length, ``"auto"`` (vLLM's ``-1``), or None (the model's own).
    max_model_len: int | Literal["auto"] | None
    derived_max_model_len: int = Field(description="The model's own length, as vLLM derives it.")
    max_num_seqs: int | None = Field(description="None: no device to take vLLM's default from.")
    max_num_batched_tokens: int
    batch_defaults: str = Field(
        description="Where the batch sizes came from: vLLM's tier for the device, or 'given'."
    )
    kv_cache_dtype: str = Field(description="As resolved: auto is the checkpoint's KV scheme.")
    block_size: int = Field(description="The attention block in tokens, as vLLM picks it.")
    enforce_eager: bool
    usage: Literal["server", "llm"]
    gdn_prefill_backend: str | None = None


@dataclass(frozen=True)
class Choice:
    """A fit's inputs, resolved; what :func:`kvschema.planning.fit.evaluate` plans."""

    model: FitModel
    version: str
    device: Device | None
    tp: int
    pp: int
    utilization: float
    pinned_bytes: int | None
    #: The length vLLM's arguments hold (auto-fit searches up to it).
    max_model_len: int
    auto: bool
    max_num_batched_tokens: int
    max_num_seqs: int | None
    kv_cache_dtype: str
    block_size: int
    enforce_eager: bool
    gdn: GdnPrefillBackend
    shape: CacheShape
    settings: FitSettings
    notes: tuple[str, ...]

    @property
    def pinned(self) -> bool:
        """The KV budget is given (``kv_cache_memory_bytes``)."""
        return self.pinned_bytes is not None


def _parallel(gpus: int | None, tp: int | None, pp: int) -> tuple[int, int]:
    pp = positive_int_arg("pipeline_parallel_size", pp)
    if gpus is None:
        return (1 if tp is None else positive_int_arg("tensor_parallel_size", tp)), pp
    gpus = positive_int_arg("gpus", gpus)
    if tp is None:
        if gpus % pp:
            raise InvalidArgumentError(
                f"gpus={gpus} is not a multiple of pipeline_parallel_size={pp}", gpus=gpus
            )
        return gpus // pp, pp
    tp = positive_int_arg("tensor_parallel_size", tp)
    if tp * pp != gpus:
        raise InvalidArgumentError(
            f"gpus={gpus} but tensor_parallel_size x pipeline_parallel_size = {tp} x {pp} = "
            f"{tp * pp} (data parallelism is not modelled: fit one replica)",
            gpus=gpus,
        )
    return tp, pp


def _gdn_backend(
    model: FitModel, dev: Device | None, asked: GdnPrefillBackend | None, notes: list[str]
) -> GdnPrefillBackend:
    """The gated delta-net prefill kernel vLLM picks on the device (``_resolve_gdn_prefill_backend``)."""
    if asked is not None:
        if asked not in ("flashinfer", "triton"):
            raise InvalidArgumentError(
                f"gdn_prefill_backend must be 'flashinfer' or 'triton', got {asked!r}"
            )
        return asked
    if "gated_delta_net" not in model.mixers:
        return "flashinfer"  # no gated delta-net: the choice changes nothing
    cc = None if dev is None else dev.compute_capability
    if cc is None:
        notes.append("gated delta-net prefill: FlashInfer's kernel assumed (vLLM's on Hopper)")
        return "flashinfer"
    if cc == "9.0":
        return "flashinfer"
    if cc.startswith("8."):
        return "triton"
    raise InvalidArgumentError(
        f"on compute capability {cc} vLLM 0.33 picks the gated delta-net prefill kernel by the "
        "CUDA runtime version, which kvschema cannot see: pass gdn_prefill_backend "
        "('flashinfer' with CUDA 13 and 128-wide key heads, else 'triton')"
    )


def _batch_sizes(
    dev: Device | None,
    tokens: int | None,
    seqs: int | None,
    length: int,
    usage: Literal["server", "llm"],
) -> tuple[int, int | None, str]:
    """vLLM's batch sizes: given, or the device tier's, bounded by the length."""
    if tokens is not None:
        tokens = positive_int_arg("max_num_batched_tokens", tokens)
    if seqs is not None:
        seqs = positive_int_arg("max_num_seqs", seqs)
    if tokens is not None and (seqs is not None or dev is None):
        return tokens, seqs, "given"
    if dev is None:
        raise InvalidArgumentError(
            "vLLM's default batch sizes depend on the device: name a GPU (gpu=, --gpu) or give "
            "its memory (gpu_memory=, --gpu-memory), or pass max_num_batched_tokens"
        )
    defaults = dev.batch_defaults(usage)
    if seqs is None:
        seqs_default: int | None = defaults.max_num_seqs
    else:
        seqs_default = seqs
    if tokens is None:
        tokens = min((seqs_default or 1) * length, defaults.max_num_batched_tokens)
    if seqs is None:
        seqs = min(defaults.max_num_seqs, tokens)
    return tokens, seqs, defaults.tier


def resolve_choice(
    model: FitModel,
    *,
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
    vllm_version: str = "0.33",
    usage: Literal["server", "llm"] = "server",
    gdn_prefill_backend: GdnPrefillBackend | None = None,
) -> Choice:
    """A fit's arguments checked and resolved as vLLM 0.33 resolves them (see the module)."""
    version = _version(vllm_version)
    tp, pp = _parallel(gpus, tensor_parallel_size, pipeline_parallel_size)
    utilization = check_utilization(gpu_memory_utilization)
    pinned = None
    if kv_cache_memory_bytes is not None:
        pinned = positive_int_arg("kv_cache_memory_bytes", kv_cache_memory_bytes)
    if usage not in ("server", "llm"):
        raise InvalidArgumentError(f"usage must be 'server' or 'llm', got {usage!r}")
    if not isinstance(enforce_eager, bool):
        raise InvalidArgumentError(f"enforce_eager must be a bool, got {enforce_eager!r}")
    dev = device(gpu, gpu_memory) if gpu is not None or gpu_memory is not None else None
    if dev is None and pinned is None:
        raise InvalidArgumentError(
            "name a GPU (gpu=, --gpu) or give its memory (gpu_memory=, --gpu-memory), or pin "
            "the KV cache memory (kv_cache_memory_bytes=, --kv-cache-memory-bytes)"
        )
    if block_size is not None:
        block_size = positive_int_arg("block_size", block_size)
    _check_backend(model, dev, block_size)
    if pp > 1 and not model.decoder_aligned:
        raise InvalidArgumentError(
            f"{model.model_type} has decoder layers without a KV cache (or with two): vLLM "
            "splits the decoder's layers over pipeline stages and kvschema's stages split the "
            "cache layers, so the pages per stage could differ; fit it with "
            "pipeline_parallel_size=1"
        )
    notes: list[str] = []
    gdn = _gdn_backend(model, dev, gdn_prefill_backend, notes)
    dtype = model.resolve_kv_cache_dtype(kv_cache_dtype)
    auto = max_model_len == "auto" or max_model_len == -1
    length = model.model_length.resolve(None if auto else max_model_len)  # type: ignore[arg-type]
    tokens, seqs, tier = _batch_sizes(dev, max_num_batched_tokens, max_num_seqs, length, usage)
    shape = model.shape(tp, pp, dtype, block_size, gdn, length, tokens)
    block = _block_of(shape)
    settings = FitSettings(
        vllm_version=version,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        gpu_memory_utilization=utilization,
        kv_cache_memory_bytes=pinned,
        max_model_len="auto" if auto else max_model_len,
        derived_max_model_len=model.model_length.resolve(None),
        max_num_seqs=seqs,
        max_num_batched_tokens=tokens,
        batch_defaults=tier,
        kv_cache_dtype=dtype,
        block_size=block,
        enforce_eager=enforce_eager,
        usage=usage,
        gdn_prefill_backend=gdn if "gated_delta_net" in model.mixers else None,
    )
    return Choice(
        model=model,
        version=version,
        device=dev,
        tp=tp,
        pp=pp,
        utilization=utilization,
        pinned_bytes=pinned,
        max_model_len=length,
        auto=auto,
        max_num_batched_tokens=tokens,
        max_num_seqs=seqs,
        kv_cache_dtype=dtype,
        block_size=block,
        enforce_eager=enforce_eager,
        gdn=gdn,
        shape=shape,
        settings=settings,
        notes=tuple(notes),
    )


def _version(text: str) -> str:
    return vllm_version(text)


def _check_backend(model: FitModel, dev: Device | None, block_size: int | None) -> None:
    """Refuse the devices whose default attention backend pages differently from Hopper's."""
    if dev is None or block_size is not None:
        return
    if dev.vendor != "nvidia":
        raise InvalidArgumentError(
            f"{dev.name}: vLLM's ROCm attention backends choose their own block size; pass "
            "block_size (--block-size) for the block your deployment uses"
        )
    if model.uses_mla and (dev.compute_capability or "").split(".")[0] in ("10", "12"):
        raise InvalidArgumentError(
            f"{dev.name}: on Blackwell vLLM 0.33 runs MLA with FlashInfer or Triton MLA, whose "
            "blocks are not FlashAttention's 16 tokens; pass block_size (--block-size)"
        )


def _block_of(shape: CacheShape) -> int:
    """The attention block the layout uses (the smallest group block, as vLLM reports it)."""
    config = shape.plan.config
    if config is None:
        return 16
    return min(group.kv_cache_spec.page_size for group in config.kv_cache_groups)


def stage_budgets(
    choice: Choice,
) -> tuple[list[StageBudget], WeightEstimate | None, list[str]]:
    """Each stage's budget per rank, the weights, and what the fit assumed.

    Memoized on the model by what they depend on — the layout, the device's memory, the
    utilization or pinned budget, the batch sizes and CUDA graphs — not by the cache dtype or
    the length (a sweep's choices share them).
    """
    dev = choice.device
    key = (
        "budgets",
        choice.tp,
        choice.pp,
        None if dev is None else (dev.total, dev.compute_capability),
        choice.utilization,
        choice.pinned_bytes,
        choice.max_num_batched_tokens,
        choice.max_num_seqs,
        choice.enforce_eager,
        choice.notes,
    )
    stages, weights, notes = choice.model._cached(key, lambda: _stage_budgets(choice))
    return list(stages), weights, list(notes)


def _stage_budgets(
    choice: Choice,
) -> tuple[list[StageBudget], WeightEstimate | None, list[str]]:
    model, notes = choice.model, list(choice.notes)
    try:
        weights: WeightEstimate | None = model.weights(choice.tp, choice.pp)
    except KVSchemaError as err:
        if not choice.pinned:
            raise
        weights = None
        notes.append(
            f"weights unknown ({err}): the pinned budget is not checked against the device"
        )
    if weights is not None:
        notes.extend(f"weights: {note}" for note in weights.notes)
    layers = model.text.get("num_hidden_layers")
    count = layers if isinstance(layers, int) and layers >= choice.pp else choice.pp
    ranges = pp_layer_ranges(count, choice.pp)
    stages: list[StageBudget] = []
    for index, (start, end) in enumerate(ranges):
        terms: dict[str, Any] = {}
        if choice.device is not None and weights is not None and choice.max_num_seqs is not None:
            try:
                over = model.overheads(
                    choice.tp,
                    end - start,
                    index == len(ranges) - 1,
                    choice.max_num_batched_tokens,
                    choice.max_num_seqs,
                    choice.enforce_eager,
                    choice.device.blackwell,
                )
            except KVSchemaError:
                if not choice.pinned:
                    raise
            else:
                terms = {
                    "activation": over.activation,
                    "non_torch": over.non_torch,
                    "cuda_graphs": over.cuda_graphs,
                    "startup": over.startup,
                }
                if index == 0:
                    notes.extend(f"overheads: {note}" for note in over.notes)
        stage_weights = None if weights is None else weights.stages[index]
        if choice.pinned:
            stages.append(
                StageBudget(
                    stage=index,
                    requested=None,
                    weights=stage_weights,
                    activation=terms.get("activation"),
                    non_torch=terms.get("non_torch"),
                    cuda_graphs=terms.get("cuda_graphs"),
                    startup=terms.get("startup"),
                    available=ByteRange.exact(choice.pinned_bytes or 0),
                )
            )
            continue
        if choice.device is None or stage_weights is None or not terms:
            raise InvalidArgumentError("a computed budget needs a device, weights and overheads")
        stages.append(
            stage_budget(
                index,
                total=choice.device.total,
                utilization=choice.utilization,
                weights=stage_weights,
                **terms,
            )
        )
    if choice.pinned:
        notes.append(
            "pinned: vLLM still runs the profile and captures CUDA graphs, but gives the KV "
            "cache exactly kv_cache_memory_bytes (ignoring gpu_memory_utilization)"
        )
    return stages, weights, notes
