"""A non-Python validator (ajv, under Node.js) agrees with kvschema on every structural verdict.

`.ci/run` installs ajv into tests/js (npm ci) and sets KVSCHEMA_REQUIRE_NODE=1, so there the
test cannot skip.
"""

import copy
import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kvschema.reading.checking import check_document, recognise
from kvschema.reading.loaders import load_file

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
SCHEMAS = {"config": "cache-groups-config", "group": "cache-group-spec", "spec": "cache-spec"}
# Rules JSON Schema cannot state (docs/schemas.md): a document may break them and pass the schema.
KVSCHEMA_ONLY = {
    "derived_mismatch",
    "page_size_padded_too_small",
    "layer_in_two_groups",
    "all_layers_not_alone",
    "uniform_type_page_size",
    "uniform_type_family",
    "uniform_type_layers",
    "duplicate_key",
    "mamba_dtype_form",
    "mamba_dtypes_count",
    "kv_sharing_self",
    "kv_sharing_layer_listed",
    "kv_sharing_chain",
    "kv_sharing_target_elsewhere",
    "kv_sharing_without_layer_names",
    "field_newer_than_schema_version",
}


def _node_ready() -> bool:
    return shutil.which("node") is not None and (JS / "node_modules" / "ajv").is_dir()


pytestmark = pytest.mark.skipif(
    not _node_ready() and not os.environ.get("KVSCHEMA_REQUIRE_NODE"),
    reason="needs Node.js and `npm ci --prefix tests/js` (.ci/run installs them)",
)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _mutations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Structurally broken copies of a valid document."""
    out = []
    target = document
    path: list[Any] = []
    if "kv_cache_groups" in target:
        path = ["kv_cache_groups", 0, "kv_cache_spec"]
    elif "kv_cache_spec" in target:
        path = ["kv_cache_spec"]
    for change in (
        "drop_kind",
        "zero_page",
        "string_page",
        "extra_field",
        "bad_dtype",
        "bool_page",
    ):
        broken = copy.deepcopy(document)
        node = broken
        for part in path:
            node = node[part]
        if change == "drop_kind":
            del node["kind"]
        elif change == "zero_page":
            node["page_size"] = 0
        elif change == "string_page":
            node["page_size"] = "16"
        elif change == "bool_page":
            node["page_size"] = True
        elif change == "extra_field":
            node["window"] = 7
        elif "dtype" in node:
            node["dtype"] = "int4"
        else:
            continue
        out.append(broken)
    return out


def _cases() -> list[dict[str, Any]]:
    cases = []
    for path in sorted((ROOT / "examples").rglob("*")):
        if path.suffix not in (".yaml", ".json", ".toml") or "plan" in path.parts:
            continue
        for document in load_file(str(path)):
            kind = recognise(document.data)
            if kind is None or not _finite(document.data):
                continue  # nothing to check against a schema / not expressible in standard JSON
            _, issues = check_document(document)
            types = {issue.error_type for issue in issues}
            structural = bool(types - KVSCHEMA_ONLY)
            cases.append(
                {
                    "id": f"{path.relative_to(ROOT)}#{document.index}",
                    "schema": SCHEMAS[kind],
                    "document": document.data,
                    "kvschema_valid": not issues,
                    "structural_error": structural,
                }
            )
            if not issues:
                for n, broken in enumerate(_mutations(document.data)):
                    cases.append(
                        {
                            "id": f"{path.relative_to(ROOT)}#{document.index}~{n}",
                            "schema": SCHEMAS[kind],
                            "document": broken,
                            "kvschema_valid": False,
                            "structural_error": True,
                        }
                    )
    return cases


def test_ajv_agrees_on_every_structural_verdict() -> None:
    cases = _cases()
    assert len(cases) > 40
    payload = json.dumps([{k: c[k] for k in ("id", "schema", "document")} for c in cases])
    done = subprocess.run(
        ["node", str(JS / "validate.mjs"), str(ROOT / "schemas")],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
    )
    verdicts = json.loads(done.stdout)
    disagreements = []
    for case in cases:
        ajv_valid = verdicts[case["id"]]["valid"]
        expected = not case["structural_error"]
        if ajv_valid != expected:
            disagreements.append((case["id"], ajv_valid, verdicts[case["id"]]["errors"]))
    assert not disagreements
    # the exceptions are the documented kvschema-only rules, and they do occur
    assert any(not c["kvschema_valid"] and not c["structural_error"] for c in cases)
