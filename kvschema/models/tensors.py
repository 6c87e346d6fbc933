"""Checkpoint tensors (names and sizes from safetensors headers) → weight parts vLLM splits alike.

Each tensor is placed by its name: ``embed_tokens`` on the first stage, ``lm_head`` and the final
norm on the last, ``layers.{i}.`` on its layer's stage; and split by its module: ``q_proj``,
``gate_up_proj``, ``in_proj`` … column-wise, ``o_proj``, ``down_proj``, ``out_proj`` … row-wise,
``k_proj`` / ``v_proj`` by KV heads, experts whole or sharded, norms and routers replicated.
Scales, zero points and group indices ride with their weight.  A name kvschema cannot place (a
vision tower, a new module) is an ``unknown`` part: split over TP at best, replicated at worst,
so the per-rank figure widens rather than guesses.  Tensors of layers past
``num_hidden_layers`` (DeepSeek's and Qwen3-Next's multi-token-prediction heads), which vLLM's
main model does not load, are left out when the config is known.

>>> from kvschema.models.safetensors import TensorInfo
>>> tensors = {"model.layers.0.self_attn.q_proj.weight": TensorInfo(dtype="BF16",
...            shape=(4096, 4096), nbytes=33554432)}
>>> parts, layers, notes = parts_from_tensors(tensors)
>>> parts[0].split, parts[0].layer, layers
('column', 0, 1)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kvschema.models.safetensors import TensorInfo
from kvschema.models.split import Place, Split, WeightPart

__all__ = ["parts_from_tensors"]

_LAYER = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")
_EXPERT = re.compile(r"\.experts\.(\d+)\.")
_META = re.compile(
    r"(?:^|[._])(scales|qzeros|g_idx|weight_scale|weight_scale_inv|input_scale|"
    r"weight_zero_point|weight_global_scale|input_global_scale|weight_shape|k_scale|v_scale)$"
)
_VISION = (
    "visual",
    "vision_tower",
    "vision_model",
    "multi_modal_projector",
    "mm_projector",
    "audio_tower",
    "image_newline",
)
_COLUMN = {
    "q_proj",
    "gate_proj",
    "up_proj",
    "gate_up_proj",
    "w1",
    "w3",
    "c_fc",
    "fc1",
    "in_proj",
    "in_proj_qkvz",
    "in_proj_ba",
    "in_proj_qkv",
    "in_proj_z",
    "in_proj_b",
    "in_proj_a",
    "conv1d",
    "q_b_proj",
    "kv_b_proj",
    "dt_proj",
    "query",
    "sinks",
    "A_log",
    "D",
    "dt_bias",
}
_ROW = {"o_proj", "down_proj", "w2", "dense", "out_proj", "c_proj", "fc2", "x_proj", "wo"}
_KV = {"k_proj", "v_proj", "key", "value"}
_FUSED_QKV = {"qkv_proj", "query_key_value", "Wqkv", "c_attn"}
_REPLICATED = {
    "q_a_proj",
    "kv_a_proj_with_mqa",
    "gate",
    "router",
    "shared_expert_gate",
    "e_score_correction_bias",
}


def _module_words(name: str) -> list[str]:
    words = name.split(".")
    last = re.sub(r"_(blocks|scales|bias)$", "", words[-1])  # gpt-oss experts.*_blocks
    return [*words[:-1], last]


def _split_of(name: str, layer: int | None) -> Split:
    words = _module_words(name)
    if ".experts." in f".{name}." and "shared_expert" not in name:
        return "expert"
    for word in reversed(words):
        if word in _KV:
            return "kv"
        if word in _FUSED_QKV:
            return "kv"  # q and kv heads together; refined with the config
        if word in _REPLICATED:
            return "replicated"
        if word in _COLUMN:
            return "column"
        if word in _ROW:
            return "row"
    if any("norm" in w for w in words[-2:]):
        return "column" if words[-2:-1] == ["norm"] and "mixer" in words else "replicated"
    return "unknown"


def _place_of(name: str, layer: int | None) -> tuple[Place, Split | None]:
    if any(v in name for v in _VISION):
        return "other", "unknown"
    if layer is not None:
        return "layer", None
    if re.search(r"(embed_tokens|wte|word_embeddings|tok_embeddings)\.weight$", name):
        return "embed", "vocab"
    if re.search(r"(^|\.)(lm_head|embed_out|output)\.weight$", name):
        return "head", "vocab"
    if "norm" in name:
        return "final", "replicated"
    return "other", "unknown"


def parts_from_tensors(
    tensors: Mapping[str, TensorInfo],
    *,
    config: Mapping[str, Any] | None = None,
    model_dtype_bytes: int | None = None,
) -> tuple[list[WeightPart], int, list[str]]:
    """The parts of a checkpoint's tensors, its layer count, and what was left out or assumed.

    ``config`` (the text config) gives the layer count, the KV heads and the experts;
    ``model_dtype_bytes`` the size floating weights load at (vLLM loads float32 checkpoints in
    16 bits); None keeps them as stored.
    """
    cfg = dict(config or {})
    layers_cfg = cfg.get("num_hidden_layers")
    kv_heads = cfg.get("num_key_value_heads") or cfg.get("num_attention_heads")
    q_heads = cfg.get("num_attention_heads")
    notes: list[str] = []
    skipped = unknown = 0
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    top_layer = -1
    for name, info in tensors.items():
        found = _LAYER.search(name)
        layer = int(found.group(1)) if found else None
        if name.startswith("mtp.") or (
            isinstance(layers_cfg, int) and layer is not None and layer >= layers_cfg
        ):
            skipped += info.nbytes
            continue
        place, split = _place_of(name, layer)
        split = split or _split_of(name, layer)
        top_layer = max(top_layer, layer if layer is not None else -1)
        nbytes = info.nbytes
        meta = bool(_META.search(name))
        if (
            not meta
            and model_dtype_bytes is not None
            and info.dtype in ("F32", "F16", "BF16")
            and not name.endswith("e_score_correction_bias")
        ):
            nbytes = nbytes * model_dtype_bytes // (4 if info.dtype == "F32" else 2)
        unknown += nbytes if split == "unknown" else 0
        expert = _EXPERT.search(name)
        key = (place, layer, split, name.rsplit(".", 1)[0] if split != "expert" else "experts")
        group = groups.setdefault(
            key,
            {
                "weight": 0,
                "meta": 0,
                "experts": set(),
                "fused": 0,
                "name": name,
                "rows": None,
                "fused_qkv": False,
            },
        )
        group["meta" if meta else "weight"] += nbytes
        if split == "expert":
            if expert:
                group["experts"].add(int(expert.group(1)))
            elif info.shape and not meta:
                group["fused"] = max(group["fused"], info.shape[0])
        if split == "vocab" and info.shape:
            group["rows"] = info.shape[0]
        if any(w in _FUSED_QKV for w in _module_words(name)):
            group["fused_qkv"] = True
    parts = [p for key, g in groups.items() for p in _part(key, g, kv_heads, q_heads, cfg)]
    if skipped:
        notes.append(
            f"{skipped} bytes of layers past num_hidden_layers (MTP heads) not counted: "
            "vLLM's main model does not load them"
        )
    if unknown:
        notes.append(
            f"{unknown} bytes in tensors kvschema cannot place or split (vision towers, "
            "unknown modules): split over TP at best, replicated at worst"
        )
    num_layers = layers_cfg if isinstance(layers_cfg, int) else top_layer + 1
    return parts, max(num_layers, 1), notes


def _part(
    key: tuple[Any, ...], g: dict[str, Any], kv_heads: Any, q_heads: Any, cfg: dict[str, Any]
) -> list[WeightPart]:
    place, layer, split, _ = key
    experts = len(g["experts"]) or g["fused"] or None
    if split == "expert":
        experts = (
            cfg.get("num_experts")
            or cfg.get("n_routed_experts")
            or cfg.get("num_local_experts")
            or experts
        )
    heads = kv_heads if isinstance(kv_heads, int) else None
    common = {"place": place, "layer": layer, "meta_bytes": g["meta"], "rows": g["rows"]}
    if g["fused_qkv"] and isinstance(heads, int) and isinstance(q_heads, int):
        q_share = g["weight"] * q_heads // (q_heads + 2 * heads)
        return [
            WeightPart(name=g["name"] + ":q", split="column", nbytes=q_share, **common),
            WeightPart(
                name=g["name"] + ":kv",
                split="kv",
                nbytes=g["weight"] - q_share,
                heads=heads,
                place=place,
                layer=layer,
            ),
        ]
    if g["fused_qkv"]:
        heads = None
    return [
        WeightPart(
            name=g["name"],
            split=split,
            nbytes=g["weight"],
            heads=heads,
            experts=experts if split == "expert" else None,
            **common,
        )
    ]
