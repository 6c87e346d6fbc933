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

from kvschema._args import did_you_mean, positive_int_arg
from kvschema._reading import MAX_BYTES, FileReadError, read_capped
from kvschema.errors import DTypeError, KVSchemaError, KVSchemaWarning
from kvschema.layout.masks import AttnMaskType, MaskDetail
from kvschema.layout.parallel import Parallelism
from kvschema.models.context import ModelLength, model_length
from kvschema.models.families import (
    SUPPORTED,
    HFConfigError,
    layer_kinds,
    read_field,
)
from kvschema.models.states import STATE_KINDS, state_spec
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
_STATE_FIELDS = (
    "mamba_d_state",
    "ssm_state_size",
    "linear_num_value_heads",
    "mamba_num_heads",
    "mamba_n_heads",
)


class HFLayers(dict[str, CacheSpec]):
    """Layer name → spec, in layer order; what else the config said rides along.

    ``no_cache`` names the layers that keep nothing (MLP- or MoE-only blocks), never silently
    lost; ``model_type`` and ``dtype`` are what the specs were built from; ``mixers`` the
    recurrent mixers of the state layers (``mamba1``, ``mamba2``, ``gated_delta_net``);
    ``layer_names`` every layer, cached or not, in model order.
    """

    #: The parallel layout these specs are one rank of (None: tensor_parallel_size 1).
    parallelism: Parallelism | None = None
    #: The model's own context length, as vLLM derives it (a plan's default max_model_len).
    model_length: ModelLength | None = None

    def __init__(
        self,
        specs: dict[str, CacheSpec],
        *,
        no_cache: list[str],
        model_type: str,
        dtype: str,
        mixers: tuple[str, ...] = (),
        layer_names: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(specs)
        self.no_cache = tuple(no_cache)
        self.model_type = model_type
        self.dtype = dtype
        self.mixers = tuple(mixers)
        self.layer_names = tuple(layer_names) if layer_names is not None else (*specs, *no_cache)

    def with_specs(self, specs: dict[str, CacheSpec]) -> HFLayers:
        """The same model with other specs for its cached layers (same names).

        >>> layers = layers_from_hf_config("tests/fixtures/hf/jamba-v0.1.json")
        >>> paged = layers.with_specs({n: s.model_copy(update={"page_size": 80})
        ...                            for n, s in layers.items()})
        >>> paged.model_type, paged["layer.4"].page_size, paged.no_cache == layers.no_cache
        ('jamba', 80, True)
        """
        layers = HFLayers(
            specs,
            no_cache=list(self.no_cache),
            model_type=self.model_type,
            dtype=self.dtype,
            mixers=self.mixers,
            layer_names=self.layer_names,
        )
        layers.parallelism, layers.model_length = self.parallelism, self.model_length
        return layers

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token costs across the attention layers (one rank)."""
        return sum(
            spec.page_size_bytes // spec.page_size
            for spec in self.values()
            if not isinstance(spec, MambaSpec)
        )

    def state_bytes_per_request(self) -> int:
        """Recurrent-state bytes one request holds across the Mamba / linear layers (one rank):
        each layer's ``pages_per_request`` state pages."""
        return sum(
            spec.page_size_bytes * spec.pages_per_request
            for spec in self.values()
            if isinstance(spec, MambaSpec)
        )


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
            f"model_type {model_type!r} is not a family kvschema knows{why}"
            f"{did_you_mean(model_type, SUPPORTED)}; supported: {', '.join(SUPPORTED)}",
            model_type=model_type,
        )
    warnings.warn(
        f"model_type {model_type!r} is unknown: reading it as plain full attention from "
        "num_attention_heads, num_key_value_heads and head_dim (or hidden_size)"
        f"{did_you_mean(model_type, SUPPORTED)}",
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
    mamba_cache_dtype: str = "auto",
    mamba_ssm_cache_dtype: str = "auto",
) -> HFLayers:
    """Every layer's spec, per rank, named ``layer.{index}`` in order; see ``docs/models.md``.

    ``config`` is a dict, a path to ``config.json`` or a folder holding one (a multimodal
    config's ``text_config`` is used).  ``kv_cache_dtype="auto"`` is the checkpoint's dtype as
    written — float32 included; recurrent state takes ``mamba_cache_dtype`` (the model dtype when
    ``auto``), its SSM part ``mamba_ssm_cache_dtype`` (the family's own setting when ``auto``), as
    vLLM's ``--mamba-cache-dtype`` / ``--mamba-ssm-cache-dtype``.  Layers without a cache are
    left out and listed in ``.no_cache``; a Falcon-H1 layer keeps two specs,
    ``layer.{index}.attn`` and ``layer.{index}.mamba``.

    Every spec has ``page_size`` tokens per page and the state its raw size: the layout vLLM
    allocates for a hybrid model — a larger attention page, a padded state page, two state pages
    per request with prefix caching — is ``kvschema.planning.engine.vllm_layers_from_hf_config``.
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
    names: list[str] = []
    built: dict[str, CacheSpec] = {}

    def spec_of(kind: str) -> CacheSpec:
        if kind not in built:
            if kind in STATE_KINDS:
                built[kind] = state_spec(
                    kind,
                    text,
                    model_type,
                    model_dtype,
                    tp=tp,
                    page_size=page,
                    mamba_cache_dtype=mamba_cache_dtype,
                    mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
                )
            else:
                built[kind] = _attention_spec(kind, text, model_type, dtype, tp, page)
        return built[kind]

    for index, kind in enumerate(kinds):
        name = f"layer.{index}"
        if kind == "none":
            no_cache.append(name)
            names.append(name)
        elif kind == "full+mamba2":
            specs[f"{name}.attn"] = spec_of("full")
            specs[f"{name}.mamba"] = spec_of("mamba2")
            names.extend((f"{name}.attn", f"{name}.mamba"))
        else:
            specs[name] = spec_of(kind)
            names.append(name)
    mixers = tuple(sorted({STATE_KINDS[k] for k in built if k in STATE_KINDS}))
    layers = HFLayers(
        specs,
        no_cache=no_cache,
        model_type=model_type,
        dtype=dtype,
        mixers=mixers,
        layer_names=tuple(names),
    )
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
