"""Validation throughput on 128- and 1,024-layer hybrid CacheGroupsConfig JSON documents.

Two documents per size: the deploy-file form (fields only) and the form kvschema writes
(``model_dump_json()``: every field, with the derived ``type_id`` / ``page_size_bytes`` that
kvschema checks against the fields).  kvschema (parse + every rule) against the same structure
as plain pydantic models with no rules or constraints (the floor of any pydantic validator),
jsonschema-rs and jsonschema (each parsing the JSON and validating it against our exported
schema: structure only), and msgspec (typed structs, no rules; shown, no target).
Targets: <= 1.5x the pydantic floor, no slower than jsonschema-rs, >= 50x jsonschema.
Run: python benchmarks/throughput.py
"""

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, measure_main, table, time_interleaved

from kvschema import CacheGroupsConfig

FLOOR_TARGET = 1.5


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


def written(layers: int) -> str:
    """The same layout as kvschema writes it: every field, derived values included."""
    return CacheGroupsConfig.model_validate_json(document(layers)).model_dump_json()


def _msgspec_decoder() -> Any:
    import msgspec

    class Full(msgspec.Struct, tag="full_attention", tag_field="kind"):
        page_size: int
        num_kv_heads: int
        head_size: int
        dtype: str
        use_mla: bool = False
        head_size_v: int | None = None
        cache_dtype_str: str | None = None
        page_size_padded: int | None = None
        sliding_window: int | None = None
        attention_chunk_size: int | None = None
        type_id: str | None = None
        page_size_bytes: int | None = None

    class Sliding(msgspec.Struct, tag="sliding_window", tag_field="kind"):
        page_size: int
        num_kv_heads: int
        head_size: int
        dtype: str
        sliding_window: int
        use_mla: bool = False
        head_size_v: int | None = None
        cache_dtype_str: str | None = None
        page_size_padded: int | None = None
        type_id: str | None = None
        page_size_bytes: int | None = None

    class Mamba(msgspec.Struct, tag="mamba", tag_field="kind"):
        page_size: int
        shapes: list[list[int]]
        dtype: str | None = None
        dtypes: list[str] | None = None
        page_size_padded: int | None = None
        mamba_cache_mode: str = "none"
        num_speculative_blocks: int = 0
        num_prefill_checkpoint_blocks: int = 0
        type_id: str | None = None
        page_size_bytes: int | None = None

    class Group(msgspec.Struct):
        kv_cache_spec: Full | Sliding | Mamba
        layer_names: list[str] | None = None
        kv_sharing: dict[str, str] | None = None

    class Config(msgspec.Struct):
        num_pages: int
        kv_cache_groups: list[Group]
        schema_version: int = 1
        parallelism: dict[str, int] | None = None

    return msgspec.json.Decoder(Config)


def _plain_pydantic() -> Any:
    """The same structure as plain pydantic models: no rules, no constraints (pydantic's floor).

    Every field kvschema writes is declared (the derived values as plain optional fields), so
    both documents are parsed field by field, as kvschema parses them.
    """
    from typing import Annotated, Literal

    from pydantic import BaseModel, Field

    class Full(BaseModel):
        kind: Literal["full_attention"]
        page_size: int
        num_kv_heads: int
        head_size: int
        dtype: str
        use_mla: bool = False
        head_size_v: int | None = None
        cache_dtype_str: str | None = None
        page_size_padded: int | None = None
        sliding_window: int | None = None
        attention_chunk_size: int | None = None
        type_id: str | None = None
        page_size_bytes: int | None = None

    class Sliding(BaseModel):
        kind: Literal["sliding_window"]
        page_size: int
        num_kv_heads: int
        head_size: int
        dtype: str
        use_mla: bool = False
        head_size_v: int | None = None
        cache_dtype_str: str | None = None
        page_size_padded: int | None = None
        sliding_window: int
        type_id: str | None = None
        page_size_bytes: int | None = None

    class Mamba(BaseModel):
        kind: Literal["mamba"]
        page_size: int
        shapes: list[list[int]]
        dtype: str | None = None
        dtypes: list[str] | None = None
        page_size_padded: int | None = None
        mamba_cache_mode: str = "none"
        num_speculative_blocks: int = 0
        num_prefill_checkpoint_blocks: int = 0
        type_id: str | None = None
        page_size_bytes: int | None = None

    class Group(BaseModel):
        kv_cache_spec: Annotated[Full | Sliding | Mamba, Field(discriminator="kind")]
        layer_names: list[str] | None = None
        kv_sharing: dict[str, str] | None = None

    class Parallelism(BaseModel):
        tensor_parallel_size: int = 1
        pipeline_parallel_size: int = 1
        pipeline_stage: int | None = None

    class Config(BaseModel):
        schema_version: int = 1
        num_pages: int
        kv_cache_groups: list[Group]
        parallelism: Parallelism | None = None

    return Config


def _baselines(schema: dict[str, Any]) -> dict[str, tuple[Any, int]]:
    """Name -> (a validator taking JSON text, calls per sample); those installed."""
    plain = _plain_pydantic()
    found: dict[str, tuple[Any, int]] = {"pydantic, no rules": (plain.model_validate_json, 100)}
    try:
        import jsonschema_rs

        fast = jsonschema_rs.validator_for(schema)
        found["jsonschema-rs"] = (lambda text: fast.validate(json.loads(text)), 100)
    except ImportError:
        pass
    try:
        import jsonschema

        checker = jsonschema.Draft202012Validator(schema)
        found["jsonschema"] = (lambda text: checker.validate(json.loads(text)), 1)
    except ImportError:
        pass
    with contextlib.suppress(ImportError):
        found["msgspec (no rules)"] = (_msgspec_decoder().decode, 100)
    return found


def measure(runs: int = 25) -> dict[str, dict[str, float]]:
    """Document -> validator -> median microseconds (kvschema's and the baselines')."""
    schema = json.loads((ROOT / "schemas" / "cache-groups-config.schema.json").read_text())
    baselines = _baselines(schema)
    results: dict[str, dict[str, float]] = {}
    for layers in (128, 1024):
        for form, text in (("fields only", document(layers)), ("as written", written(layers))):
            calls: dict[str, tuple[Callable[[], object], int]] = {
                "kvschema": (lambda t=text: CacheGroupsConfig.model_validate_json(t), 100)
            }
            for name, (call, inner) in baselines.items():
                call(text)  # it is valid for every validator
                calls[name] = (lambda c=call, t=text: c(t), inner)
            times = time_interleaved(calls, runs)
            results[f"{layers:,} layers, {form}"] = {k: v * 1e6 for k, v in times.items()}
    return results


def flat(runs: int = 25) -> dict[str, float]:
    """``measure`` as one level: "document: validator (us)" -> median."""
    return {
        f"{doc}: {name} (us)": value
        for doc, times in measure(runs).items()
        for name, value in times.items()
    }


def main(runs: int = 25) -> list[list[str]]:
    rows = [["document", "validator", "median us", "kvschema's time is"]]
    for doc, times in measure(runs).items():
        ours = times.pop("kvschema")
        rows.append([doc, "kvschema", f"{ours:.1f}", ""])
        for name, theirs in times.items():
            rows.append(["", name, f"{theirs:.1f}", f"{ours / theirs:.2f}x theirs"])
    rows.append(
        [
            f"targets: <= {FLOOR_TARGET}x pydantic, no rules; <= 1x jsonschema-rs; "
            "<= 0.02x jsonschema (msgspec: no target)",
            "",
            "",
            "",
        ]
    )
    return rows


if __name__ == "__main__" and not measure_main(flat):
    print(table(main()))
