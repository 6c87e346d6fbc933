"""Validation throughput on a 128-layer and a 1,024-layer hybrid CacheGroupsConfig JSON document.

kvschema (parse + every rule) against jsonschema and jsonschema-rs (each parsing the JSON and
validating it against our exported schema: structure only) and msgspec (decoding the same
structure into typed structs, no rules).  Targets: >= 50x faster than jsonschema, no slower
than jsonschema-rs, <= 2x msgspec.  The same structure as plain pydantic models (no rules, no
constraints) is timed too: the floor of any pydantic validator.
Run: python benchmarks/throughput.py
"""

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, median, table, time_call

from kvschema import CacheGroupsConfig


def document(layers: int) -> str:
    """A sliding-window / full / Mamba hybrid with ``layers`` layers, as a JSON document."""
    names = [f"model.layers.{i}.self_attn" for i in range(layers)]
    attention = {"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"}
    groups = [
        {
            "kv_cache_spec": {"kind": "sliding_window", **attention, "sliding_window": 4096},
            "layer_names": [n for i, n in enumerate(names) if i % 8 not in (5, 7)],
        },
        {
            "kv_cache_spec": {"kind": "full_attention", **attention},
            "layer_names": [n for i, n in enumerate(names) if i % 8 == 5],
        },
        {
            "kv_cache_spec": {
                "kind": "mamba",
                "page_size": 16,
                "shapes": [[8192, 3], [8192, 16]],
                "dtype": "bf16",
            },
            "layer_names": [n for i, n in enumerate(names) if i % 8 == 7],
        },
    ]
    return json.dumps({"schema_version": 1, "num_pages": 100000, "kv_cache_groups": groups})


def _msgspec_decoder() -> Any:
    import msgspec

    class Full(msgspec.Struct, tag="full_attention", tag_field="kind"):
        page_size: int
        num_kv_heads: int
        head_size: int
        dtype: str
        use_mla: bool = False
        sliding_window: int | None = None
        attention_chunk_size: int | None = None
        page_size_padded: int | None = None

    class Sliding(msgspec.Struct, tag="sliding_window", tag_field="kind"):
        page_size: int
        num_kv_heads: int
        head_size: int
        dtype: str
        sliding_window: int
        use_mla: bool = False
        page_size_padded: int | None = None

    class Mamba(msgspec.Struct, tag="mamba", tag_field="kind"):
        page_size: int
        shapes: list[list[int]]
        dtype: str | None = None
        dtypes: list[str] | None = None
        page_size_padded: int | None = None

    class Group(msgspec.Struct):
        kv_cache_spec: Full | Sliding | Mamba
        layer_names: list[str] | None = None

    class Config(msgspec.Struct):
        num_pages: int
        kv_cache_groups: list[Group]
        schema_version: int = 1

    return msgspec.json.Decoder(Config)


def _plain_pydantic() -> Any:
    """The same structure as plain pydantic models: no rules, no constraints (pydantic's floor)."""
    from typing import Annotated, Literal

    from pydantic import BaseModel, Field

    class Full(BaseModel):
        kind: Literal["full_attention"]
        page_size: int
        num_kv_heads: int
        head_size: int
        dtype: str
        use_mla: bool = False
        sliding_window: int | None = None
        attention_chunk_size: int | None = None
        page_size_padded: int | None = None

    class Sliding(BaseModel):
        kind: Literal["sliding_window"]
        page_size: int
        num_kv_heads: int
        head_size: int
        dtype: str
        sliding_window: int
        use_mla: bool = False
        page_size_padded: int | None = None

    class Mamba(BaseModel):
        kind: Literal["mamba"]
        page_size: int
        shapes: list[list[int]]
        dtype: str | None = None
        dtypes: list[str] | None = None
        page_size_padded: int | None = None

    class Group(BaseModel):
        kv_cache_spec: Annotated[Full | Sliding | Mamba, Field(discriminator="kind")]
        layer_names: list[str] | None = None

    class Config(BaseModel):
        schema_version: int = 1
        num_pages: int
        kv_cache_groups: list[Group]

    return Config


def main(runs: int = 15) -> list[list[str]]:
    schema = json.loads((ROOT / "schemas" / "cache-groups-config.schema.json").read_text())
    rows = [["document", "validator", "median us", "kvschema is"]]
    for layers in (128, 1024):
        text = document(layers)
        ours_call = lambda text=text: CacheGroupsConfig.model_validate_json(text)  # noqa: E731
        ours = median(time_call(ours_call, runs, inner=200)) * 1e6
        rows.append([f"{layers} layers", "kvschema", f"{ours:.1f}", ""])
        others: dict[str, Any] = {}
        plain = _plain_pydantic()
        others["pydantic, no rules"] = (lambda text=text, p=plain: p.model_validate_json(text), 200)
        try:
            import jsonschema

            checker = jsonschema.Draft202012Validator(schema)
            others["jsonschema"] = (lambda text=text, c=checker: c.validate(json.loads(text)), 5)
        except ImportError:
            pass
        try:
            import jsonschema_rs

            fast = jsonschema_rs.validator_for(schema)
            others["jsonschema-rs"] = (lambda text=text, f=fast: f.validate(json.loads(text)), 200)
        except ImportError:
            pass
        try:
            decoder = _msgspec_decoder()
            others["msgspec (no rules)"] = (lambda text=text, d=decoder: d.decode(text), 200)
        except ImportError:
            pass
        for name, (call, inner) in others.items():
            theirs = median(time_call(call, runs, inner=inner)) * 1e6
            rows.append(["", name, f"{theirs:.1f}", f"{theirs / ours:.2f}x as fast"])
    rows.append(["targets: >= 50x jsonschema, >= 1x jsonschema-rs, >= 0.5x msgspec", "", "", ""])
    return rows


if __name__ == "__main__":
    print(table(main()))
