"""A model and a device prepared once for many fits: what does not depend on the choice.

:class:`FitModel` reads a ``config.json`` once and memoizes what each choice needs — the per-rank
layers for a tensor-parallel size, cache dtype and block size; the weights per rank for a parallel
layout; the planned :class:`~kvschema.planning.capacity.CacheShape`; the overheads of a stage for
a batch size — so that a sweep over devices, parallel layouts and cache dtypes plans each distinct
layout once.  :func:`device` resolves a catalogue GPU or a bare memory size.

>>> model = FitModel("tests/fixtures/hf/llama3-8b.json")
>>> model.model_type, model.resolve_kv_cache_dtype("auto"), model.model_length.default
('llama', 'bfloat16', 131072)
>>> model.layers(2, "auto", None, "flashinfer") is model.layers(2, "auto", None, "flashinfer")
True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.models.context import ModelLength
from kvschema.models.families import HFConfigError
from kvschema.models.files import read_config
from kvschema.models.hf import HFLayers
from kvschema.models.interval import Interval
from kvschema.models.weights import WeightEstimate, estimate_weights
from kvschema.planning.capacity import CacheShape
from kvschema.planning.engine import GdnPrefillBackend, vllm_layers_from_hf_config
from kvschema.planning.gpus import GPU, BatchDefaults, Usage, batch_defaults, gpu
from kvschema.planning.overheads import Overheads, estimate_overheads, overhead_inputs

__all__ = ["KV_CACHE_DTYPES", "Device", "FitModel", "device"]

#: ``--kv-cache-dtype`` values ``kvschema fit`` models (vLLM's ``CacheDType`` names): the
#: model's dtype, 16-bit, or one byte per element.
KV_CACHE_DTYPES = ("auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc")

#: vLLM's ``MODELOPT_TO_VLLM_KV_CACHE_DTYPE_MAP`` (``vllm/utils/torch_utils.py``), fp8 only.
_MODELOPT_KV = {"fp8": "fp8_e4m3"}


class Device(NamedTuple):
    """The device one rank runs on: its memory as CUDA reports it, and what vLLM reads of it."""

    #: The catalogue name, or None for a bare memory size.
    name: str | None
    device_name: str
    total: Interval
    compute_capability: str | None
    vendor: str
    entry: GPU | None

    def batch_defaults(self, usage: Usage = "server") -> BatchDefaults:
        """vLLM 0.33's default batch sizes on this device (``get_batch_defaults``)."""
        if self.entry is not None and self.total == self.entry.cuda_total:
            return self.entry.batch_defaults(usage)
        found = {
            batch_defaults(
                m, self.device_name, usage=usage, compute_capability=self.compute_capability
            )
            for m in (self.total.low, self.total.high)
        }
        if len(found) > 1:
            raise InvalidArgumentError(
                "the device memory straddles a threshold of vLLM's batch defaults; pass "
                "max_num_batched_tokens and max_num_seqs"
            )
        return found.pop()

    @property
    def blackwell(self) -> bool:
        """A data-centre Blackwell (compute capability 10.x): larger CUDA-graph captures."""
        return (self.compute_capability or "").startswith("10.")


def device(name: str | None = None, memory: int | None = None) -> Device:
    """A catalogue GPU (``name``), a bare device of ``memory`` bytes as CUDA reports it, or a
    catalogue GPU with its memory overridden.

    >>> device("H100").total.point // 2**20, device(memory=48 * 2**30).name
    (81090, None)
    """
    if name is None and memory is None:
        raise InvalidArgumentError("name a GPU from the catalogue or give its memory")
    entry = gpu(name) if name is not None else None
    if memory is not None:
        total = Interval.exact(positive_int_arg("gpu_memory", memory))
    elif entry is not None:
        total = entry.cuda_total
    else:  # pragma: no cover - one of the two is given (checked above)
        raise InvalidArgumentError("name a GPU from the catalogue or give its memory")
    return Device(
        name=entry.name if entry else None,
        device_name=entry.device_name if entry else "",
        total=total,
        compute_capability=entry.compute_capability if entry else None,
        vendor=entry.vendor if entry else "nvidia",
        entry=entry,
    )


def _read_config(path: Path) -> dict[str, Any]:
    """The config a path names: a file, or the folder holding config.json (capped, never a pipe)."""
    return read_config(path)


class FitModel:
    """A model read once, its per-choice derivations memoized (see :mod:`.fitmodel`).

    ``hf_config`` is a ``config.json``, the folder holding it (its ``*.safetensors`` headers or
    ``model.safetensors.index.json`` then give the weights), or the config as a dict;
    ``weights_bytes`` the whole model's weight bytes when known (vLLM's "Model loading took" at
    TP 1, in bytes).
    """

    def __init__(
        self,
        hf_config: Mapping[str, Any] | str | Path,
        *,
        weights_bytes: int | None = None,
        expert_parallel: bool = False,
    ) -> None:
        self.checkpoint: Path | None = None
        if isinstance(hf_config, Mapping):
            self.config = dict(hf_config)
        elif isinstance(hf_config, (str, Path)):
            if not str(hf_config).strip():
                raise HFConfigError(
                    f"hf_config must name a config.json or the folder holding one, got {hf_config!r}"
                )
            path = Path(hf_config)
            self.config = _read_config(path)
            if path.is_dir():
                self.checkpoint = path
            elif path.name == "config.json":
                self.checkpoint = path.parent
        else:
            raise InvalidArgumentError(
                f"hf_config must be a path or a dict, got {type(hf_config).__name__}"
            )
        if weights_bytes is not None:
            positive_int_arg("weights_bytes", weights_bytes)
        self.weights_bytes = weights_bytes
        self.expert_parallel = expert_parallel
        self._memo: dict[tuple[Any, ...], Any] = {}
        text = self.config.get("text_config")
        self.text = {**self.config, **text} if isinstance(text, Mapping) else self.config
        probe = self.layers(1, "auto", None, "flashinfer")
        self.model_type: str = probe.model_type
        self.dtype: str = probe.dtype
        self.mixers = probe.mixers
        length = probe.model_length
        if length is None:  # pragma: no cover - layers_from_hf_config always sets it
            raise HFConfigError("the config gives no context length")
        self.model_length: ModelLength = length
        self.uses_mla = any(getattr(s, "use_mla", False) for s in probe.values())
        self.decoder_aligned = not probe.no_cache and len(probe) == len(probe.layer_names)

    def _cached(self, key: tuple[Any, ...], make: Any) -> Any:
        memo = self._memo
        if key not in memo:
            try:
                memo[key] = make()
            except KVSchemaError as err:
                memo[key] = err
        value = memo[key]
        if isinstance(value, KVSchemaError):
            raise value
        return value

    def resolve_kv_cache_dtype(self, requested: str) -> str:
        """``--kv-cache-dtype`` as vLLM 0.33 resolves it: ``auto`` is the checkpoint's declared KV
        scheme (ModelOpt's ``kv_cache_quant_algo``, compressed-tensors' ``kv_cache_scheme``:
        ``resolve_kv_cache_dtype_string``, ``Attention.__init__``), else the model's dtype."""
        if requested not in KV_CACHE_DTYPES:
            raise InvalidArgumentError(
                f"kv_cache_dtype {requested!r} is not modelled by kvschema fit; choose one of "
                f"{', '.join(KV_CACHE_DTYPES)}",
                kv_cache_dtype=requested,
            )
        if requested != "auto":
            return requested
        quant = self.config.get("quantization_config") or self.text.get("quantization_config")
        if isinstance(quant, Mapping):
            method = str(quant.get("quant_method", ""))
            if method.startswith("modelopt"):
                inner = quant.get("quantization", quant)
                inner = inner if isinstance(inner, Mapping) else quant
                algo = (
                    inner.get("kv_cache_scheme")
                    or quant.get("kv_cache_scheme")
                    or inner.get("kv_cache_quant_algo")
                    or quant.get("kv_cache_quant_algo")
                )
                if isinstance(algo, Mapping):
                    fp8 = algo.get("num_bits") == 8 and algo.get("type") == "float"
                    algo = "fp8" if fp8 and algo.get("dynamic") is False else None
                if isinstance(algo, str) and algo.lower() in _MODELOPT_KV:
                    return _MODELOPT_KV[algo.lower()]
            elif quant.get("kv_cache_scheme") is not None:
                return "fp8"  # compressed-tensors: an FP8 KV scheme honoured under "auto"
        return self.dtype

    def layers(
        self, tp: int, kv_cache_dtype: str, block_size: int | None, gdn: GdnPrefillBackend
    ) -> HFLayers:
        """One rank's layers at TP ``tp``, paged as vLLM 0.33 pages them."""
        dtype = "auto" if kv_cache_dtype == "auto" else kv_cache_dtype
        return self._cached(  # type: ignore[no-any-return]
            ("layers", tp, dtype, block_size, gdn),
            lambda: vllm_layers_from_hf_config(
                self.config,
                block_size=block_size,
                kv_cache_dtype=dtype,
                tensor_parallel_size=tp,
                gdn_prefill_backend=gdn,
            ),
        )

    def shape(
        self,
        tp: int,
        pp: int,
        kv_cache_dtype: str,
        block_size: int | None,
        gdn: GdnPrefillBackend,
        max_model_len: int,
        max_num_batched_tokens: int,
    ) -> CacheShape:
        """The planned layout of one choice (memoized)."""
        key = ("shape", tp, pp, kv_cache_dtype, block_size, gdn, max_model_len)
        return self._cached(  # type: ignore[no-any-return]
            (*key, max_num_batched_tokens),
            lambda: CacheShape.of(
                self.layers(tp, kv_cache_dtype, block_size, gdn),
                max_model_len=max_model_len,
                max_num_batched_tokens=max_num_batched_tokens,
                tensor_parallel_size=tp,
                pipeline_parallel_size=pp,
                allow_long_max_model_len=True,  # checked against the model's before
            ),
        )

    def weights(self, tp: int, pp: int) -> WeightEstimate:
        """The weights per rank of each stage (memoized), from the best source given."""

        def make() -> WeightEstimate:
            files = self.checkpoint is not None and (
                any(self.checkpoint.glob("*.safetensors"))
                or (self.checkpoint / "model.safetensors.index.json").is_file()
            )
            if not files and self.weights_bytes is None and "vision_config" in self.config:
                raise InvalidArgumentError(
                    "the config has a vision_config: a count from config.json covers the "
                    "language model only, and vLLM loads the vision tower too; pass the weight "
                    "bytes (weights_bytes, --weights-bytes) or the checkpoint folder"
                )
            return estimate_weights(
                self.checkpoint,
                config=self.config,
                weights_bytes=self.weights_bytes,
                tensor_parallel_size=tp,
                pipeline_parallel_size=pp,
                expert_parallel=self.expert_parallel,
            )

        return self._cached(("weights", tp, pp), make)  # type: ignore[no-any-return]

    def overheads(
        self,
        tp: int,
        stage_layers: int,
        last_stage: bool,
        max_num_batched_tokens: int,
        max_num_seqs: int,
        enforce_eager: bool,
        blackwell: bool,
    ) -> Overheads:
        """One stage's non-KV terms (memoized)."""
        key = ("overheads", tp, stage_layers, last_stage, max_num_batched_tokens, max_num_seqs)
        return self._cached(  # type: ignore[no-any-return]
            (*key, enforce_eager, blackwell),
            lambda: estimate_overheads(
                overhead_inputs(
                    self.config,
                    max_num_batched_tokens=max_num_batched_tokens,
                    max_num_seqs=max_num_seqs,
                    tensor_parallel_size=tp,
                    num_layers=stage_layers,
                    last_stage=last_stage,
                    enforce_eager=enforce_eager,
                    blackwell=blackwell,
                    expert_parallel=self.expert_parallel,
                )
            ),
        )
