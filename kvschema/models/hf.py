"""Hugging Face ``config.json`` → per-layer cache specs, without transformers, torch or a network.

>>> layers = layers_from_hf_config({"model_type": "llama", "num_hidden_layers": 2,
...     "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096,
...     "torch_dtype": "bfloat16"})
>>> list(layers), layers["layer.0"].page_size_bytes // 16  # bytes per token of one layer
(['layer.0', 'layer.1'], 4096)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvschema._args import did_you_mean, positive_int_arg
from kvschema.errors import DTypeError, KVSchemaError, KVSchemaWarning
from kvschema.layout.parallel import Parallelism
from kvschema.models.catalog import FAMILIES, Family, family_for
from kvschema.models.context import ModelLength, model_length
from kvschema.models.defaults import FAMILY_DEFAULTS
from kvschema.models.fields import Fields, HFConfigError
from kvschema.models.files import MAX_CONFIG_BYTES, read_config
from kvschema.models.layers import (
    Attention,
    Layer,
    State,
    gqa,
    layer_types,
    one,
    window_of,
    windows,
)
from kvschema.models.refusals import ENCODERS, not_a_decoder, refusal_for
from kvschema.models.states import state_spec
from kvschema.spec.attention import MLA_CACHE_FORMATS
from kvschema.spec.dtypes import canonical_dtype
from kvschema.spec.sharding import kv_heads_per_rank
from kvschema.spec.union import (
    CacheSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    MambaSpec,
    SlidingWindowSpec,
)

if TYPE_CHECKING:
    from kvschema.layout.masks import MaskDetail

__all__ = [
    "MAX_CONFIG_BYTES",
    "HFConfigError",
    "HFLayers",
    "layers_from_hf_config",
    "mask_details_from_hf_config",
]

# Fields that make "plain full attention" a guess for an unknown model type.
_AMBIGUOUS = (
    "sliding_window",
    "attention_chunk_size",
    "kv_lora_rank",
    "layer_types",
    "mamba_d_state",
    "ssm_state_size",
    "linear_num_value_heads",
    "mamba_num_heads",
    "mamba_n_heads",
    "num_kv_shared_layers",
    "per_layer_config",
    "block_configs",
    "cross_attention_layers",
    "kv_channels",
    "multi_query",
    "attention_window_size",
    "block_types",
    "layers_block_type",
    "hybrid_override_pattern",
    "full_attn_idxs",
    "linear_attn_config",
    "global_head_dim",
    "v_head_dim",
    "use_sliding_window",
)
# Top-level model types whose language model (text_config) is read by another rule.
_ASSISTANTS = {t: f for f in FAMILIES if f.name == "Gemma 4 assistant" for t in f.model_types}


class HFLayers(dict[str, CacheSpec]):
    """Layer name → spec, in layer order; what else the config said rides along.

    ``no_cache`` names the layers that keep nothing (MLP- or MoE-only blocks, attention-free
    blocks), never silently lost; ``kv_sharing`` maps each layer that reads an earlier layer's
    KV cache (Gemma 3n / 4) to that layer — it holds no cache and no spec; ``model_type`` and
    ``dtype`` are what the specs were built from; ``mixers`` the recurrent mixers of the state
    layers; ``layer_names`` every layer, cached, sharing or not, in model order; ``notes`` what
    the reader wants a user to know (a draft model with no cache of its own).
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
        kv_sharing: Mapping[str, str] | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(specs)
        self.no_cache = tuple(no_cache)
        self.model_type = model_type
        self.dtype = dtype
        self.mixers = tuple(mixers)
        self.kv_sharing = dict(kv_sharing or {})
        self.notes = tuple(notes)
        self.layer_names = (
            tuple(layer_names) if layer_names is not None else (*specs, *no_cache, *self.kv_sharing)
        )

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
            kv_sharing=self.kv_sharing,
            notes=self.notes,
        )
        layers.parallelism, layers.model_length = self.parallelism, self.model_length
        return layers

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token costs across the attention layers (one rank); a layer that
        shares another's KV cache costs nothing."""
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


def _text_config(top: dict[str, Any]) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """The language model's config (vLLM's ``get_hf_text_config``), its model_type, and the
    configs around it (for the dtype): Qwen-Omni's ``thinker_config.text_config``, else the
    one of ``text_config`` / ``decoder`` / ``generator`` that is set, else the config itself."""
    if top.get("is_encoder_decoder") is True:
        raise HFConfigError(str(not_a_decoder(top, str(top.get("model_type")))))
    outer = [top]
    thinker = top.get("thinker_config")
    if isinstance(thinker, dict):
        outer.insert(0, thinker)
        top = thinker
    found = [
        key for key in ("text_config", "decoder", "generator") if isinstance(top.get(key), dict)
    ]
    if len(found) > 1:
        raise HFConfigError(
            f"config.json holds {' and '.join(found)}: which is the language model is ambiguous"
        )
    config = dict(top[found[0]]) if found else top
    model_type = config.get("model_type") or top.get("model_type")
    if not isinstance(model_type, str):
        raise HFConfigError("config.json names no model_type")
    return config, model_type, outer


def _model_dtype(configs: list[dict[str, Any]]) -> str:
    for source in configs:
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
        stacklevel=4,
    )
    return "bfloat16"


def _architectures(top: dict[str, Any]) -> list[str]:
    names = top.get("architectures")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _unknown(text: dict[str, Any], model_type: str) -> list[Layer]:
    """An unknown model type read as plain full attention, when nothing hints otherwise."""
    listed = text.get("layer_types") is not None
    # an explicit layer_types of full / sliding layers is read as vLLM's Transformers backend
    # reads it (per-layer windows), with the window it names
    skip = ("layer_types", "sliding_window") if listed else ()
    ambiguous = [f for f in _AMBIGUOUS if text.get(f) is not None and f not in skip]
    known = sorted({t for f in FAMILIES for t in f.model_types})
    if not isinstance(text.get("num_attention_heads"), int) or ambiguous:
        why = f" (it has {', '.join(ambiguous)})" if ambiguous else ""
        raise HFConfigError(
            f"model_type {model_type!r} is not a family kvschema knows{why}"
            f"{did_you_mean(model_type, known)}; supported: {', '.join(known)} "
            "(kvschema models lists them)",
            model_type=model_type,
        )
    if not listed:  # an explicit layer_types says what each layer is
        warnings.warn(
            f"model_type {model_type!r} is unknown: reading it as plain full attention from "
            "num_attention_heads, num_key_value_heads and head_dim (or hidden_size)"
            f"{did_you_mean(model_type, known)}",
            KVSchemaWarning,
            stacklevel=4,
        )
    fields = Fields(text, model_type)
    count = fields.layers()
    kv, head = gqa(fields)
    found = windows(
        fields,
        count,
        layer_types=layer_types(fields, count),
        per_layer=True,
        window=window_of(fields),
    )
    return [
        one(Attention("sliding" if w else "full", kv_heads=kv, head_size=head, window=w))
        for w in found
    ]


def _records(
    top: dict[str, Any],
) -> tuple[list[Layer], str, dict[str, Any], list[dict[str, Any]], Family | None]:
    """The layer records of a top-level config, its text model_type and text config."""
    archs = _architectures(top)
    top_type = top.get("model_type")
    refused = refusal_for(archs, top_type if isinstance(top_type, str) else "")
    if refused is not None:
        raise HFConfigError(refused, model_type=top_type)
    if isinstance(top_type, str):
        reason = not_a_decoder(top, top_type) if top_type in ENCODERS else None
        if reason is not None:  # a dual encoder (CLIP, SigLIP) holds a text tower, not a decoder
            raise HFConfigError(reason, model_type=top_type)
    text, model_type, outer = _text_config(top)
    refused = refusal_for([], model_type)
    if refused is not None:
        raise HFConfigError(refused, model_type=model_type)
    if text.get("is_causal") is False:
        raise HFConfigError(
            f"{model_type} is not causal (is_causal false): vLLM serves it as an encoder, "
            "with no KV cache",
            model_type=model_type,
        )
    # vLLM picks the module by the architecture a top-level config names; a multimodal
    # config's architecture is the wrapper's, so its language model goes by model_type
    family = _ASSISTANTS.get(str(top_type)) or family_for(
        model_type, archs, by_architecture=text is top
    )
    if family is None:
        reason = not_a_decoder(text, model_type)
        if reason is not None:
            raise HFConfigError(reason, model_type=model_type)
        return _unknown(text, model_type), model_type, text, outer, None
    defaults = FAMILY_DEFAULTS.get(model_type, {})
    fields = Fields(text, model_type, defaults, aliases=family.aliases)
    return family.layers(fields), model_type, text, outer, family


def _attention_spec(
    cache: Attention, dtype: str, mla_format: str | None, tp: int, page: int, model_type: str
) -> CacheSpec:
    if cache.kind == "mla":
        record = None
        if cache.dtype is not None:
            dtype = canonical_dtype(cache.dtype)
        elif cache.sparse_mla and (mla_format or dtype.startswith("float8")):
            # vLLM's sparse MLA backend on Hopper (FlashMLA-sparse) stores a quantized cache
            # as fp8_ds_mla records (mla_attention.py, _canonicalize_sparse_mla_kv_cache_dtype)
            record, dtype = mla_format or "fp8_ds_mla", "uint8"
        return FullAttentionSpec(
            page_size=page,
            num_kv_heads=1,
            head_size=cache.head_size,
            dtype=dtype,
            use_mla=True,
            cache_dtype_str=record,
        )
    if cache.sharded:
        try:
            heads = kv_heads_per_rank(cache.kv_heads, tp)
        except KVSchemaError as err:
            raise HFConfigError(f"{model_type}: {err.message}") from None
    else:
        heads = cache.kv_heads
    geometry: dict[str, Any] = {
        "page_size": page,
        "num_kv_heads": heads,
        "head_size": cache.head_size,
        "head_size_v": cache.head_size_v,
        "dtype": dtype,
    }
    if cache.kind == "sliding" and cache.window is not None:
        return SlidingWindowSpec(**geometry, sliding_window=cache.window)
    if cache.kind == "chunked" and cache.window is not None:
        return ChunkedLocalAttentionSpec(**geometry, attention_chunk_size=cache.window)
    return FullAttentionSpec(**geometry)


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
    config's language model is used).  ``kv_cache_dtype="auto"`` is the checkpoint's dtype as
    written — float32 included; ``fp8_ds_mla`` / ``nvfp4_ds_mla`` name the record formats of a
    DeepSeek sparse-attention MLA cache.  Recurrent state takes ``mamba_cache_dtype`` (the model
    dtype when ``auto``), its SSM part ``mamba_ssm_cache_dtype`` (the family's own setting when
    ``auto``), as vLLM's ``--mamba-cache-dtype`` / ``--mamba-ssm-cache-dtype``.  Layers without
    a cache are listed in ``.no_cache``; layers that read an earlier layer's KV cache in
    ``.kv_sharing``; a layer keeping two caches has two specs (``layer.{index}.attn`` and
    ``layer.{index}.mamba`` / ``.indexer``).  A model kvschema cannot size exactly — one vLLM
    0.33 does not serve, a non-decoder, a malformed field — is an :class:`HFConfigError`.

    Every spec has ``page_size`` tokens per page and the state its raw size: the layout vLLM
    allocates for a hybrid model — a larger attention page, a padded state page, two state pages
    per request with prefix caching — is ``kvschema.planning.engine.vllm_layers_from_hf_config``.
    """
    page = positive_int_arg("page_size", page_size)
    tp = positive_int_arg("tensor_parallel_size", tensor_parallel_size)
    top = read_config(config)
    records, model_type, text, outer, family = _records(top)
    model_dtype = _model_dtype([text, *outer])
    mla_format = (
        kv_cache_dtype
        if isinstance(kv_cache_dtype, str) and kv_cache_dtype in MLA_CACHE_FORMATS
        else None
    )
    dtype = (
        model_dtype if kv_cache_dtype == "auto" or mla_format else canonical_dtype(kv_cache_dtype)
    )
    if mla_format and not any(
        isinstance(c, Attention) and c.sparse_mla for r in records for _, c in r.caches
    ):
        raise HFConfigError(
            f"kv_cache_dtype {mla_format!r} is a sparse-MLA record format; {model_type} has no "
            "DeepSeek sparse-attention MLA cache",
            model_type=model_type,
        )
    specs: dict[str, CacheSpec] = {}
    built: dict[Attention | State, CacheSpec] = {}
    names: list[str] = []
    no_cache: list[str] = []
    sharing: dict[str, str] = {}
    for index, layer in enumerate(records):
        base = f"layer.{index}"
        if layer.shares is not None:
            sharing[base] = f"layer.{layer.shares}"
            names.append(base)
            continue
        if not layer.caches:
            no_cache.append(base)
            names.append(base)
        for suffix, cache in layer.caches:
            if cache not in built:
                if isinstance(cache, State):
                    built[cache] = state_spec(
                        cache,
                        model_type,
                        model_dtype,
                        tp=tp,
                        page_size=page,
                        mamba_cache_dtype=mamba_cache_dtype,
                        mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
                    )
                else:
                    built[cache] = _attention_spec(cache, dtype, mla_format, tp, page, model_type)
            specs[base + suffix] = built[cache]
            names.append(base + suffix)
    mixers = tuple(sorted({c.mixer for c in built if isinstance(c, State)}))
    layers = HFLayers(
        specs,
        no_cache=no_cache,
        model_type=model_type,
        dtype=dtype,
        mixers=mixers,
        layer_names=tuple(names),
        kv_sharing=sharing,
        notes=(family.note,) if family is not None and family.note else (),
    )
    layers.parallelism = Parallelism(tensor_parallel_size=tp) if tp > 1 else None
    layers.model_length = model_length(text, model_type)
    return layers


def mask_details_from_hf_config(config: Mapping[str, Any] | str | Path) -> dict[int, MaskDetail]:
    """Per-layer mask details of a model whose layers are attention (EasyDeL's form).

    A layer that shares another's KV cache has its own mask; a layer without attention (a
    no-op block) has none and is left out.

    >>> details = mask_details_from_hf_config({"model_type": "gemma2", "num_hidden_layers": 4,
    ...                                        "torch_dtype": "bfloat16"})
    >>> [(d.mask_type.name, d.size) for d in details.values()]
    [('SLIDING', 4096), ('FULL', None), ('SLIDING', 4096), ('FULL', None)]
    """
    from kvschema.layout.masks import AttnMaskType, MaskDetail  # mask details only: not planning

    records, model_type, _, _, _ = _records(read_config(config))
    states = sorted({c.mixer for r in records for _, c in r.caches if isinstance(c, State)})
    if states:
        raise HFConfigError(
            f"{model_type} has layers that are not attention ({', '.join(states)}); mask details "
            "describe attention only: use layers_from_hf_config",
            model_type=model_type,
        )
    details = {}
    for index, layer in enumerate(records):
        if not layer.caches:
            continue
        cache = layer.caches[0][1]
        if isinstance(cache, Attention) and cache.kind == "sliding":
            details[index] = MaskDetail(mask_type=AttnMaskType.SLIDING, size=cache.window)
        elif isinstance(cache, Attention) and cache.kind == "chunked":
            details[index] = MaskDetail(mask_type=AttnMaskType.CHUNK, chunks=cache.window)
        else:
            details[index] = MaskDetail(mask_type=AttnMaskType.FULL)
    return details
