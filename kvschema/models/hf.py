"""Hugging Face ``config.json`` → per-layer cache specs, without transformers, torch or a network.

>>> layers = layers_from_hf_config({"model_type": "llama", "num_hidden_layers": 2,
...     "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096,
...     "torch_dtype": "bfloat16"})
>>> list(layers), layers["layer.0"].page_size_bytes // 16  # bytes per token of one layer
(['layer.0', 'layer.1'], 4096)
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvschema._args import positive_int_arg
from kvschema._reading import MAX_BYTES, FileReadError, read_capped
from kvschema.errors import DTypeError, KVSchemaError, KVSchemaWarning
from kvschema.layout.masks import AttnMaskType, MaskDetail
from kvschema.layout.parallel import Parallelism
from kvschema.models.context import ModelLength, model_length
from kvschema.models.families import (
    SUPPORTED,
    HFConfigError,
    family_of,
    layer_kinds,
    read_field,
)
from kvschema.spec.dtypes import canonical_dtype
from kvschema.spec.sharding import kv_heads_per_rank
from kvschema.spec.union import (
    CacheSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    MambaSpec,
    SlidingWindowSpec,
)

__all__ = ["HFConfigError", "HFLayers", "layers_from_hf_config", "mask_details_from_hf_config"]

_WINDOW_FIELDS = ("sliding_window", "attention_chunk_size", "kv_lora_rank", "layer_types")
_STATE_FIELDS = ("mamba_d_state", "ssm_state_size", "linear_num_value_heads", "mamba_num_heads")


class HFLayers(dict[str, CacheSpec]):
    """Layer name → spec, in layer order; what else the config said rides along.

    ``no_cache`` names the layers that keep nothing (MLP- or MoE-only blocks), never silently
    lost; ``model_type`` and ``dtype`` are what the specs were built from.
    """

    #: The parallel layout these specs are one rank of (None: tensor_parallel_size 1).
    parallelism: Parallelism | None = None
    #: The model's own context length, as vLLM derives it (a plan's default max_model_len).
    model_length: ModelLength | None = None

    def __init__(
        self, specs: dict[str, CacheSpec], *, no_cache: list[str], model_type: str, dtype: str
    ) -> None:
        super().__init__(specs)
        self.no_cache = tuple(no_cache)
        self.model_type = model_type
        self.dtype = dtype

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token costs across the attention layers (one rank)."""
        return sum(
            spec.page_size_bytes // spec.page_size
            for spec in self.values()
            if not isinstance(spec, MambaSpec)
        )

    def state_bytes_per_request(self) -> int:
        """Recurrent-state bytes one request holds across the Mamba / linear layers (one rank)."""
        return sum(spec.page_size_bytes for spec in self.values() if isinstance(spec, MambaSpec))


def _read(config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    if not isinstance(config, (str, Path)):
        raise HFConfigError(
            f"config must be a dict, a path to config.json or a folder holding one, "
            f"got {type(config).__name__}"
        )
    path = Path(config)
    if path.is_dir():
        path = path / "config.json"
    try:  # capped, and never a hang on a named pipe or a device (kvschema._reading)
        text = read_capped(path, MAX_BYTES).decode("utf-8")
    except FileReadError as err:
        raise HFConfigError(f"{path}: {err.message}", path=str(path)) from None
    except UnicodeDecodeError as err:
        raise HFConfigError(f"{path}: cannot read: {err}", path=str(path)) from None
    try:  # real files hold Infinity / NaN, which Python's reader takes
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise HFConfigError(f"{path}: not JSON: {err}", path=str(path)) from None
    if not isinstance(data, dict):
        raise HFConfigError(f"{path}: a config.json holds an object, got {type(data).__name__}")
    return data


def _text_config(top: dict[str, Any]) -> tuple[dict[str, Any], str]:
    text = top.get("text_config")
    config = dict(text) if isinstance(text, dict) else top
    model_type = config.get("model_type") or top.get("model_type")
    if not isinstance(model_type, str):
        raise HFConfigError("config.json names no model_type")
    return config, model_type


def _model_dtype(top: dict[str, Any], config: dict[str, Any]) -> str:
    for source in (config, top):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if isinstance(value, str):
                try:
                    return canonical_dtype(value)
                except DTypeError as err:
                    raise HFConfigError(f"{key}: {err.message}") from None
    warnings.warn(
        "config.json names no dtype (torch_dtype / dtype); assuming bfloat16",
        KVSchemaWarning,
        stacklevel=3,
    )
    return "bfloat16"


def _count(value: Any) -> int | None:
    """``value`` if it is a positive int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _geometry(config: dict[str, Any], model_type: str) -> tuple[int, int]:
    """(KV heads, head size) of the attention layers."""
    heads = _count(read_field(config, "num_attention_heads", model_type))
    kv = _count(read_field(config, "num_key_value_heads", model_type) or heads)
    head_dim = _count(read_field(config, "head_dim", model_type))
    hidden = _count(read_field(config, "hidden_size", model_type))
    if heads is None or kv is None:
        raise HFConfigError(
            f"{model_type}: num_attention_heads / num_key_value_heads missing or not positive ints"
        )
    if head_dim is None:
        if hidden is None or hidden % heads:
            raise HFConfigError(
                f"{model_type}: no head_dim, and hidden_size {hidden!r} is no multiple of "
                f"num_attention_heads {heads}"
            )
        head_dim = hidden // heads
    return kv, head_dim


def _per_rank(value: int, tp: int, what: str, model_type: str) -> int:
    if value % tp:
        raise HFConfigError(
            f"{model_type}: {what} ({value}) cannot be split over tensor_parallel_size={tp}"
        )
    return value // tp


def _state_spec(
    kind: str, config: dict[str, Any], model_type: str, dtype: str, tp: int, page_size: int
) -> MambaSpec:
    def field(name: str) -> int:
        value = read_field(config, name, model_type)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise HFConfigError(f"{model_type}: {name} must be a positive integer, got {value!r}")
        return value

    ssm_dtype = dtype
    if family_of(model_type) == "nemotron_h":
        ssm_dtype = canonical_dtype(config.get("mamba_ssm_cache_dtype") or "float32")
    elif config.get("mamba_ssm_dtype"):
        ssm_dtype = canonical_dtype(config["mamba_ssm_dtype"])
    shapes: list[tuple[int, ...]]
    if kind == "mamba1":
        channels = _per_rank(
            field("mamba_expand") * field("hidden_size"), tp, "mamba channels", model_type
        )
        shapes = [(channels, field("mamba_d_conv") - 1), (channels, field("mamba_d_state"))]
    elif kind == "mamba2":
        heads, state = field("mamba_num_heads"), field("ssm_state_size")
        groups = -(-field("n_groups") // tp) * tp  # padded up to a multiple of tp
        inner = heads * field("mamba_head_dim") + 2 * groups * state
        shapes = [
            (field("conv_kernel") - 1, _per_rank(inner, tp, "mamba conv channels", model_type)),
            (_per_rank(heads, tp, "mamba_num_heads", model_type), field("mamba_head_dim"), state),
        ]
    else:  # gated delta-net (Qwen3-Next, Qwen3.5)
        key_heads, key_dim = field("linear_num_key_heads"), field("linear_key_head_dim")
        value_heads, value_dim = field("linear_num_value_heads"), field("linear_value_head_dim")
        conv = 2 * key_heads * key_dim + value_heads * value_dim
        shapes = [
            (
                _per_rank(conv, tp, "linear conv channels", model_type),
                field("linear_conv_kernel_dim") - 1,
            ),
            (_per_rank(value_heads, tp, "linear_num_value_heads", model_type), value_dim, key_dim),
        ]
    if ssm_dtype == dtype:
        return MambaSpec(page_size=page_size, shapes=shapes, dtype=dtype)
    return MambaSpec(page_size=page_size, shapes=shapes, dtypes=(dtype, ssm_dtype))


def _kinds(config: dict[str, Any], model_type: str) -> list[str]:
    if model_type in SUPPORTED or config.get("layer_types"):
        return layer_kinds(config, model_type)
    ambiguous = [f for f in (*_WINDOW_FIELDS, *_STATE_FIELDS) if config.get(f) is not None]
    layers = config.get("num_hidden_layers")
    if (
        not isinstance(config.get("num_attention_heads"), int)
        or not isinstance(layers, int)
        or ambiguous
    ):
        why = f" (it has {', '.join(ambiguous)})" if ambiguous else ""
        raise HFConfigError(
            f"model_type {model_type!r} is not a family kvschema knows{why}; supported: "
            f"{', '.join(SUPPORTED)}",
            model_type=model_type,
        )
    warnings.warn(
        f"model_type {model_type!r} is unknown: reading it as plain full attention from "
        "num_attention_heads, num_key_value_heads and head_dim (or hidden_size)",
        KVSchemaWarning,
        stacklevel=3,
    )
    return ["full"] * layers


def layers_from_hf_config(
    config: Mapping[str, Any] | str | Path,
    *,
    page_size: int = 16,
    kv_cache_dtype: Any = "auto",
    tensor_parallel_size: int = 1,
) -> HFLayers:
    """Every layer's spec, per rank, named ``layer.{index}`` in order; see ``docs/models.md``.

    ``config`` is a dict, a path to ``config.json`` or a folder holding one (a multimodal
    config's ``text_config`` is used).  ``kv_cache_dtype="auto"`` is the checkpoint's dtype as
    written — float32 included; recurrent state keeps the model dtype (the SSM state the
    family's own setting).  Layers without a cache are left out and listed in ``.no_cache``.
    """
    page = positive_int_arg("page_size", page_size)
    tp = positive_int_arg("tensor_parallel_size", tensor_parallel_size)
    top = _read(config)
    text, model_type = _text_config(top)
    model_dtype = _model_dtype(top, text)
    dtype = model_dtype if kv_cache_dtype == "auto" else canonical_dtype(kv_cache_dtype)
    kinds = _kinds(text, model_type)
    specs: dict[str, CacheSpec] = {}
    no_cache: list[str] = []
    attention: dict[str, CacheSpec] = {}
    states: dict[str, MambaSpec] = {}
    for index, kind in enumerate(kinds):
        name = f"layer.{index}"
        if kind == "none":
            no_cache.append(name)
            continue
        if kind in ("mamba1", "mamba2", "gated_delta"):
            if kind not in states:
                states[kind] = _state_spec(kind, text, model_type, model_dtype, tp, page)
            specs[name] = states[kind]
            continue
        if kind not in attention:
            attention[kind] = _attention_spec(kind, text, model_type, dtype, tp, page)
        specs[name] = attention[kind]
    layers = HFLayers(specs, no_cache=no_cache, model_type=model_type, dtype=dtype)
    layers.parallelism = Parallelism(tensor_parallel_size=tp) if tp > 1 else None
    layers.model_length = model_length(text, model_type)
    return layers


def _attention_spec(
    kind: str, config: dict[str, Any], model_type: str, dtype: str, tp: int, page: int
) -> CacheSpec:
    if kind == "mla":
        rank = _count(read_field(config, "kv_lora_rank", model_type))
        rope = _count(read_field(config, "qk_rope_head_dim", model_type))
        if rank is None or rope is None:
            raise HFConfigError(f"{model_type}: MLA needs kv_lora_rank and qk_rope_head_dim")
        # one latent of kv_lora_rank + qk_rope_head_dim per token, never sharded
        return FullAttentionSpec(
            page_size=page, num_kv_heads=1, head_size=rank + rope, dtype=dtype, use_mla=True
        )
    kv, head_dim = _geometry(config, model_type)
    try:
        heads = kv_heads_per_rank(kv, tp)
    except KVSchemaError as err:
        raise HFConfigError(f"{model_type}: {err.message}") from None
    geometry = {"page_size": page, "num_kv_heads": heads, "head_size": head_dim, "dtype": dtype}
    if kind == "sliding":
        window = _count(read_field(config, "sliding_window", model_type))
        if window is None:
            raise HFConfigError(
                f"{model_type}: sliding layers need a sliding_window, got {window!r}"
            )
        return SlidingWindowSpec(**geometry, sliding_window=window)
    if kind == "chunked":
        chunk = _count(read_field(config, "attention_chunk_size", model_type))
        if chunk is None:
            raise HFConfigError(
                f"{model_type}: chunked layers need attention_chunk_size, got {chunk!r}"
            )
        return ChunkedLocalAttentionSpec(**geometry, attention_chunk_size=chunk)
    return FullAttentionSpec(**geometry)


def mask_details_from_hf_config(config: Mapping[str, Any] | str | Path) -> dict[int, MaskDetail]:
    """Per-layer mask details of a model whose every layer is attention (EasyDeL's form).

    >>> details = mask_details_from_hf_config({"model_type": "gemma2", "num_hidden_layers": 4,
    ...                                        "torch_dtype": "bfloat16"})
    >>> [(d.mask_type.name, d.size) for d in details.values()]
    [('SLIDING', 4096), ('FULL', None), ('SLIDING', 4096), ('FULL', None)]
    """
    top = _read(config)
    text, model_type = _text_config(top)
    kinds = _kinds(text, model_type)
    state = sorted({k for k in kinds if k not in ("full", "sliding", "chunked", "mla")})
    if state:
        raise HFConfigError(
            f"{model_type} has layers that are not attention ({', '.join(state)}); mask details "
            "describe attention only: use layers_from_hf_config",
            model_type=model_type,
        )
    window = read_field(text, "sliding_window", model_type)
    chunk = read_field(text, "attention_chunk_size", model_type)
    details = {}
    for index, kind in enumerate(kinds):
        if kind == "sliding":
            details[index] = MaskDetail(mask_type=AttnMaskType.SLIDING, size=window)
        elif kind == "chunked":
            details[index] = MaskDetail(mask_type=AttnMaskType.CHUNK, chunks=chunk)
        else:
            details[index] = MaskDetail(mask_type=AttnMaskType.FULL)
    return details
