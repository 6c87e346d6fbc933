"""Realistic deploy files for the CLI benchmark: hybrid models of 32-128 layers."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any


def _attention(kind: str, heads: int, head: int, dtype: str, **extra: int) -> dict[str, Any]:
    return {
        "kind": kind,
        "page_size": 16,
        "num_kv_heads": heads,
        "head_size": head,
        "dtype": dtype,
        **extra,
    }


def layout(rng: random.Random) -> dict[str, Any]:
    """One model's CacheGroupsConfig: a sliding hybrid, a Mamba hybrid or a chunked model."""
    layers = rng.choice([32, 40, 48, 62, 64, 80, 96, 128])
    heads, head = rng.choice([(8, 128), (4, 256), (16, 128), (2, 64), (8, 64)])
    dtype = rng.choice(["bf16", "bfloat16", "fp8", "fp16"])
    family = rng.choice(["sliding", "mamba", "chunked"])
    names = [f"model.layers.{i}.self_attn" for i in range(layers)]
    if family == "sliding":
        period = rng.choice([2, 4, 6])
        full = [n for i, n in enumerate(names) if i % period == period - 1]
        local = [n for n in names if n not in full]
        groups = [
            {
                "kv_cache_spec": _attention(
                    "sliding_window",
                    heads,
                    head,
                    dtype,
                    sliding_window=rng.choice([512, 1024, 4096]),
                ),
                "layer_names": local,
            },
            {
                "kv_cache_spec": _attention("full_attention", heads, head, dtype),
                "layer_names": full,
            },
        ]
    elif family == "chunked":
        full = [n for i, n in enumerate(names) if i % 4 == 3]
        local = [n for n in names if n not in full]
        groups = [
            {
                "kv_cache_spec": _attention(
                    "local_attention", heads, head, dtype, attention_chunk_size=8192
                ),
                "layer_names": local,
            },
            {
                "kv_cache_spec": _attention("full_attention", heads, head, dtype),
                "layer_names": full,
            },
        ]
    else:
        attn = [n for i, n in enumerate(names) if i % 8 == 4]
        state = [n for n in names if n not in attn]
        groups = [
            {
                "kv_cache_spec": _attention("full_attention", heads, head, dtype),
                "layer_names": attn,
            },
            {
                "kv_cache_spec": {
                    "kind": "mamba",
                    "page_size": 16,
                    "shapes": [[8192, 3], [8192, 16]],
                    "dtype": "bf16",
                },
                "layer_names": state,
            },
        ]
    return {"schema_version": 1, "num_pages": rng.randint(1000, 200_000), "kv_cache_groups": groups}


def _yaml(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if (
                isinstance(item, (dict, list))
                and item
                and not (isinstance(item, list) and not isinstance(item[0], (dict, list)))
            ):
                out.append(f"{pad}{key}:\n{_yaml(item, indent + 1)}")
            else:
                out.append(f"{pad}{key}: {json.dumps(item)}")
        return "\n".join(out)
    if isinstance(value, list):
        out = []
        for item in value:
            body = _yaml(item, indent + 1).lstrip()
            out.append(f"{pad}- {body}")
        return "\n".join(out)
    return pad + json.dumps(value)


def write_files(folder: Path, count: int = 200, seed: int = 0) -> list[Path]:
    """Write ``count`` deploy files (YAML, one in five JSON) and return their paths."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        config = layout(rng)
        if index % 5 == 4:
            path = folder / f"deploy-{index:03d}.json"
            path.write_text(json.dumps(config, indent=2) + "\n")
        else:
            path = folder / f"deploy-{index:03d}.yaml"
            path.write_text(f"# deploy {index}\n{_yaml(config)}\n")
        paths.append(path)
    return paths
