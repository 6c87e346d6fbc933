"""Published JSON Schemas (draft 2020-12) of the documents kvschema reads, and their drift check.

The schemas state the structure (types, bounds, required fields, enums).  Rules that span
fields or documents — derived values agreeing with the fields, a ``page_size_padded`` that
covers the raw page, a layer in one group only, merge rules — are checked by kvschema alone;
``docs/schemas.md`` lists them.

>>> sorted(json_schemas())
['cache-group-spec', 'cache-groups-config', 'cache-spec']
>>> json_schemas()["cache-spec"]["$id"]
'urn:kvschema:schema:v2:cache-spec'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from kvschema._reading import MAX_BYTES, FileReadError, read_capped
from kvschema.layout.config import SCHEMA_VERSION, CacheGroupsConfig, CacheGroupSpec
from kvschema.spec.union import CacheSpec

__all__ = [
    "DRAFT",
    "SCHEMA_NAMES",
    "check_schemas",
    "json_schemas",
    "render_schema",
    "schema_id",
    "write_schemas",
]

#: The JSON Schema dialect of every published schema.
DRAFT = "https://json-schema.org/draft/2020-12/schema"

_TITLES = {
    "cache-spec": ("CacheSpec", "One layer's KV-cache spec, discriminated on `kind`."),
    "cache-group-spec": ("CacheGroupSpec", "Layers that share one page table, and their spec."),
    "cache-groups-config": (
        "CacheGroupsConfig",
        "A model's whole KV-cache layout: its page-table groups and their page count.",
    ),
}

#: The published schema names, in file order.
SCHEMA_NAMES = tuple(_TITLES)


def schema_id(name: str, version: int = SCHEMA_VERSION) -> str:
    """The ``$id`` of schema ``name`` at schema version ``version``.

    >>> schema_id("cache-groups-config")
    'urn:kvschema:schema:v2:cache-groups-config'
    """
    return f"urn:kvschema:schema:v{version}:{name}"


def _tidy(node: Any) -> Any:
    """Keep a model's summary line as its description; drop the OpenAPI-only keyword."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "discriminator":
                continue
            if key == "description" and isinstance(value, str):
                value = value.split("\n\n", 1)[0].replace("\n", " ")
            out[key] = _tidy(value)
        return out
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    return node


def _raw(name: str) -> dict[str, Any]:
    if name == "cache-spec":
        return TypeAdapter(CacheSpec).json_schema(mode="validation")
    model = CacheGroupSpec if name == "cache-group-spec" else CacheGroupsConfig
    return model.model_json_schema(mode="validation")


def json_schemas() -> dict[str, dict[str, Any]]:
    """Schema name → JSON Schema for every published document type.

    >>> json_schemas()["cache-groups-config"]["$schema"]
    'https://json-schema.org/draft/2020-12/schema'
    """
    schemas = {}
    for name, (title, description) in _TITLES.items():
        body = _tidy(_raw(name))
        body["title"] = title
        body["description"] = description
        schemas[name] = {"$schema": DRAFT, "$id": schema_id(name), **body}
    return schemas


def render_schema(schema: dict[str, Any]) -> str:
    """The committed text of a schema: two-space indented JSON and a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: str | Path) -> list[Path]:
    """Write ``<name>.schema.json`` for every schema into ``directory``; return the paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / f"{name}.schema.json"
        path.write_text(render_schema(schema), encoding="utf-8")
        written.append(path)
    return written


def check_schemas(directory: str | Path) -> list[Path]:
    """The schema files in ``directory`` that are missing or differ from what the code generates.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = write_schemas(folder)
    ...     check_schemas(folder)
    []
    """
    folder = Path(directory)
    stale = []
    for name, schema in json_schemas().items():
        path = folder / f"{name}.schema.json"
        try:  # capped, and never a hang on a named pipe or a device
            current = read_capped(path, MAX_BYTES).decode("utf-8")
        except (FileReadError, UnicodeDecodeError):
            current = None
        if current != render_schema(schema):
            stale.append(path)
    return stale
