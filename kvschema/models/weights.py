"""The weight bytes of a model on each rank, and where the figure came from.

Four sources, strongest first (:func:`estimate_weights` picks the best one given):

- ``given``: the byte count the caller knows (vLLM's ``Model loading took … GiB`` at TP 1);
- ``safetensors``: the checkpoint's own files, their headers read and checked (never the
  tensors), every tensor placed and split by its name (:mod:`kvschema.models.tensors`);
- ``index``: ``metadata.total_size`` of ``model.safetensors.index.json``;
- ``config``: a parameter count from ``config.json`` and its ``quantization_config``
  (:mod:`kvschema.models.params`), for the families kvschema counts.

The per-rank split follows vLLM 0.33 (:mod:`kvschema.models.split`): TP shards linears,
replicates norms and routers, pads the vocabulary; PP assigns layers by ``get_pp_indices``; MoE
experts shard over TP or spread whole over expert-parallel ranks.  The result is a
:class:`WeightEstimate`: the bytes on the fullest rank as an interval, each stage's, and notes.

>>> cfg = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
...        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
...        "vocab_size": 128256, "torch_dtype": "bfloat16", "max_position_embeddings": 8192}
>>> one = weights_from_config(cfg)
>>> one.provenance, one.bytes_per_rank.point  # 8,030,261,248 parameters * 2 bytes + RoPE cache
('config', 16062619648)
>>> two = weights_from_config(cfg, tensor_parallel_size=2)
>>> two.bytes_per_rank.point < one.bytes_per_rank.point
True
"""

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.models.families import HFConfigError
from kvschema.models.interval import Interval
from kvschema.models.params import CountedModel, count_parameters
from kvschema.models.split import stage_bytes

__all__ = [
    "Provenance",
    "WeightEstimate",
    "estimate_weights",
    "weights_from_config",
    "weights_from_index",
    "weights_from_safetensors",
    "weights_given",
]

Provenance = Literal["index", "safetensors", "given", "config"]

#: How far a config count may sit from what vLLM allocates: below (a tensor vLLM skips) and
#: above (buffers, alignment), plus more above where kernels repack quantized weights.
_BELOW, _ABOVE, _ABOVE_REPACKED = 0.005, 0.01, 0.03


class WeightEstimate(BaseModel):
    """Weight bytes per rank with their provenance; see :mod:`kvschema.models.weights`.

    >>> est = weights_given(80 * 2**30, tensor_parallel_size=2)
    >>> est.provenance, est.bytes_per_rank.low / 2**30, est.bytes_per_rank.high / 2**30
    ('given', 40.0, 80.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    provenance: Provenance
    #: Bytes on the fullest rank of the fullest stage (the bottleneck).
    bytes_per_rank: Interval
    #: Bytes on the fullest rank of each pipeline stage, first to last.
    stages: list[Interval]
    #: The stage whose rank holds the most (by ``point``).
    bottleneck_stage: int = Field(ge=0)
    #: The checkpoint's (or given) total bytes, all ranks together; None for a config count.
    total_bytes: int | None = None
    #: The parameters counted (config provenance only).
    num_parameters: int | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    expert_parallel_size: int | None = None
    # a lambda, not `list`: pydantic reads a builtin's signature from its text with
    # tokenize's large regex, compiled once per process (~3 ms of a command's start-up)
    notes: list[str] = Field(default_factory=lambda: [])


def _load(config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A config as a dict: given, or read from ``config.json`` (a file or its folder)."""
    if isinstance(config, Mapping):
        return dict(config)
    if not isinstance(config, (str, Path)):
        raise InvalidArgumentError(f"config must be a dict or a path, got {type(config).__name__}")
    path = Path(config)
    path = path / "config.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HFConfigError(f"{path}: no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise HFConfigError(f"{path}: cannot read a JSON config: {err}") from None
    if not isinstance(data, dict):
        raise HFConfigError(f"{path}: a config.json holds an object, got {type(data).__name__}")
    return data


def _text_config(config: Mapping[str, Any] | str | Path | None) -> dict[str, Any] | None:
    """The language model's config (a multimodal config's ``text_config`` merged in)."""
    if config is None:
        return None
    top = _load(config)
    text = top.get("text_config")
    return {**top, **text} if isinstance(text, Mapping) else top


def _parallel(tp: int, pp: int, expert_parallel: bool, dp: int) -> tuple[int, int, int | None]:
    tp = positive_int_arg("tensor_parallel_size", tp)
    pp = positive_int_arg("pipeline_parallel_size", pp)
    dp = positive_int_arg("data_parallel_size", dp)
    if not isinstance(expert_parallel, bool):
        raise InvalidArgumentError(f"expert_parallel must be a bool, got {expert_parallel!r}")
    return tp, pp, (tp * dp if expert_parallel else None)


def _estimate(
    provenance: Provenance,
    stages: list[Interval],
    notes: list[str],
    tp: int,
    pp: int,
    ep: int | None,
    **extra: Any,
) -> WeightEstimate:
    worst = max(range(len(stages)), key=lambda s: (stages[s].point, stages[s].high))
    return WeightEstimate(
        provenance=provenance,
        bytes_per_rank=stages[worst],
        stages=stages,
        bottleneck_stage=worst,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        expert_parallel_size=ep,
        notes=notes,
        **extra,
    )


def weights_from_config(
    config: Mapping[str, Any] | str | Path,
    *,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    expert_parallel: bool = False,
    data_parallel_size: int = 1,
    text_only: bool = False,
) -> WeightEstimate:
    """Weights counted from the config and its ``quantization_config`` (an interval).

    >>> cfg = {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
    ...        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    ...        "vocab_size": 32000, "num_local_experts": 8, "torch_dtype": "bfloat16"}
    >>> est = weights_from_config(cfg, tensor_parallel_size=4)
    >>> est.num_parameters, round(est.bytes_per_rank.point / 2**30, 2)
    (46702792704, 21.75)
    """
    tp, pp, ep = _parallel(
        tensor_parallel_size, pipeline_parallel_size, expert_parallel, data_parallel_size
    )
    counted = count_parameters(_load(config), text_only=text_only)
    raw = stage_bytes(
        counted.parts,
        num_layers=counted.num_layers,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        expert_parallel_size=ep,
    )
    above = _ABOVE_REPACKED if counted.repacked else _ABOVE
    stages = [
        Interval(
            low=math.floor(s.low * (1 - _BELOW)),
            point=s.point,
            high=math.ceil(s.high * (1 + above)),
        )
        for s in raw
    ]
    notes = [
        *counted.notes,
        f"counted from the config: -{_BELOW:.1%} / +{above:.0%} for "
        "tensors vLLM skips or adds (buffers, kernel repacking and padding)",
    ]
    return _estimate("config", stages, notes, tp, pp, ep, num_parameters=counted.num_parameters)


#: The count of each of the last few configs split per rank, and its whole model's bytes, by
#: the config's JSON text: a sweep splits one model's count over every parallel layout.
_COUNTS: dict[str, tuple[CountedModel, Interval]] = {}
_COUNTS_KEPT = 16


def _counted(cfg: dict[str, Any]) -> tuple[CountedModel, Interval]:
    """``count_parameters(cfg, text_only=True)`` and the whole model's bytes, memoized by the
    config's content (equal configs count alike; a count that fails is not kept)."""
    try:
        key: str | None = json.dumps(cfg, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # keys of mixed types, a cycle: counted every time
        key = None
    found = _COUNTS.get(key) if key is not None else None
    if found is None:
        counted = count_parameters(cfg, text_only=True)
        found = counted, stage_bytes(counted.parts, num_layers=counted.num_layers)[0]
        if key is not None:
            if len(_COUNTS) >= _COUNTS_KEPT:
                _COUNTS.pop(next(iter(_COUNTS)), None)
            _COUNTS[key] = found
    return found


def _split_total(
    total: int,
    provenance: Provenance,
    cfg: dict[str, Any] | None,
    tp: int,
    pp: int,
    ep: int | None,
    notes: list[str],
) -> WeightEstimate:
    """A whole-model byte count split per rank by the config's parts (or bounded without)."""
    halves = cfg is not None and cfg.get("torch_dtype", cfg.get("dtype")) in ("float32", "float")
    loaded = total // 2 if halves else total
    if halves:
        notes.append(
            "the config says float32: vLLM's dtype=auto loads 16-bit weights, half "
            "the checkpoint (up to all of it for tensors kept in float32)"
        )
    if provenance == "given" and tp * pp == 1 and not halves:
        notes.append("given for the whole model on one GPU: exact")
        return _estimate(provenance, [Interval.exact(total)], notes, tp, pp, ep, total_bytes=total)
    counted = whole = None
    if cfg is not None:
        try:
            counted, whole = _counted(cfg)
        except KVSchemaError as err:
            notes.append(f"no split from the config ({err}): bounds only")
    if counted is None or whole is None:
        n = tp * pp
        if n > 1:
            notes.append(
                "without a counted config the split per rank is bounded: an even "
                "split at best, everything on one rank at worst"
            )
        share = -(-loaded // n)
        stages = [Interval(low=share, point=share, high=total)] * pp
        return _estimate(provenance, stages, notes, tp, pp, ep, total_bytes=total)
    split = stage_bytes(
        counted.parts,
        num_layers=counted.num_layers,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        expert_parallel_size=ep,
    )
    stages = []
    for s in split:
        point = math.ceil(loaded * s.point / whole.point)
        high = max(math.ceil(total * s.high / whole.point), point)
        low = min(math.floor(loaded * s.low / whole.high), point)
        stages.append(Interval(low=low, point=point, high=high))
    notes.append("split per rank in the proportions the config's parts give")
    return _estimate(provenance, stages, notes, tp, pp, ep, total_bytes=total)


def weights_given(
    total_bytes: int,
    *,
    config: Mapping[str, Any] | str | Path | None = None,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    expert_parallel: bool = False,
    data_parallel_size: int = 1,
) -> WeightEstimate:
    """A given whole-model byte count (``--weights-bytes``), split per rank.

    >>> weights_given(16 * 2**30).bytes_per_rank.point / 2**30
    16.0
    """
    total = positive_int_arg("weights_bytes", total_bytes)
    tp, pp, ep = _parallel(
        tensor_parallel_size, pipeline_parallel_size, expert_parallel, data_parallel_size
    )
    return _split_total(total, "given", _text_config(config), tp, pp, ep, [])


def weights_from_index(
    path: str | Path | Mapping[str, Any],
    *,
    config: Mapping[str, Any] | str | Path | None = None,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    expert_parallel: bool = False,
    data_parallel_size: int = 1,
) -> WeightEstimate:
    """``metadata.total_size`` of ``model.safetensors.index.json`` (a file or its folder, or
    its content as a mapping).

    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.safetensors.index.json").write_text(
    ...     json.dumps({"metadata": {"total_size": 16060522496}}))
    >>> weights_from_index(folder).bytes_per_rank.point
    16060522496
    >>> weights_from_index({"metadata": {"total_size": 2**30}}).provenance
    'index'
    """
    from kvschema.models.safetensors import index_total_size  # a checkpoint's files only

    tp, pp, ep = _parallel(
        tensor_parallel_size, pipeline_parallel_size, expert_parallel, data_parallel_size
    )
    total = index_total_size(path)
    notes = [
        "the index's total_size: the checkpoint's bytes, including any tensors vLLM "
        "skips (multi-token-prediction heads, an unused vision tower)"
    ]
    return _split_total(total, "index", _text_config(config), tp, pp, ep, notes)


def weights_from_safetensors(
    path: str | Path,
    *,
    config: Mapping[str, Any] | str | Path | None = None,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    expert_parallel: bool = False,
    data_parallel_size: int = 1,
) -> WeightEstimate:
    """The checkpoint's own tensors (one file or a folder of shards), read from their headers.

    >>> import json, struct, tempfile, pathlib
    >>> header = json.dumps({"model.layers.0.mlp.down_proj.weight":
    ...     {"dtype": "BF16", "shape": [64, 256], "data_offsets": [0, 32768]}}).encode()
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> _ = path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(32768))
    >>> weights_from_safetensors(path, tensor_parallel_size=2).bytes_per_rank.point
    16384
    """
    from kvschema.models.safetensors import read_folder, read_header  # a checkpoint's files only
    from kvschema.models.tensors import parts_from_tensors

    tp, pp, ep = _parallel(
        tensor_parallel_size, pipeline_parallel_size, expert_parallel, data_parallel_size
    )
    path = Path(path)
    headers = read_folder(path) if path.is_dir() else [read_header(path)]
    tensors = {name: t for h in headers for name, t in h.tensors.items()}
    cfg = _text_config(config)
    dtype = (cfg or {}).get("torch_dtype", (cfg or {}).get("dtype"))
    model_bytes = 2 if dtype in ("bfloat16", "float16", "float32", "float") else None
    parts, layers, notes = parts_from_tensors(tensors, config=cfg, model_dtype_bytes=model_bytes)
    stages = stage_bytes(
        parts,
        num_layers=layers,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        expert_parallel_size=ep,
    )
    total = sum(h.nbytes for h in headers)
    notes.append(
        f"{len(tensors)} tensors in {len(headers)} file(s); vLLM's own buffers "
        "(the RoPE cache) are not in a checkpoint"
    )
    return _estimate("safetensors", stages, notes, tp, pp, ep, total_bytes=total)


def estimate_weights(
    model: str | Path | None = None,
    *,
    config: Mapping[str, Any] | str | Path | None = None,
    weights_bytes: int | None = None,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    expert_parallel: bool = False,
    data_parallel_size: int = 1,
) -> WeightEstimate:
    """The best weight figure available: given bytes, then safetensors headers, then the
    index, then a count from the config (``model`` is a checkpoint folder or file).

    >>> estimate_weights()
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: no weight source: pass weights_bytes, a checkpoint folder (safetensors files or model.safetensors.index.json), or a config
    """
    parallel: dict[str, Any] = {
        "tensor_parallel_size": tensor_parallel_size,
        "pipeline_parallel_size": pipeline_parallel_size,
        "expert_parallel": expert_parallel,
        "data_parallel_size": data_parallel_size,
    }
    if model is not None and config is None:
        folder = Path(model) if Path(model).is_dir() else Path(model).parent
        if (folder / "config.json").is_file():
            config = folder / "config.json"
    if weights_bytes is not None:
        return weights_given(weights_bytes, config=config, **parallel)
    if model is not None:
        path = Path(model)
        if path.suffix == ".safetensors" or (path.is_dir() and any(path.glob("*.safetensors"))):
            return weights_from_safetensors(path, config=config, **parallel)
        index = path if path.name.endswith(".index.json") else path / "model.safetensors.index.json"
        if index.is_file():
            return weights_from_index(index, config=config, **parallel)
        if config is None:
            raise InvalidArgumentError(
                f"{path}: no .safetensors files, no model.safetensors.index.json, no config.json"
            )
    if config is not None:
        return weights_from_config(config, **parallel)
    raise InvalidArgumentError(
        "no weight source: pass weights_bytes, a checkpoint folder (safetensors files or "
        "model.safetensors.index.json), or a config"
    )
