"""Published JSON Schemas: valid 2020-12, committed, and in agreement with kvschema."""

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kvschema import CacheGroupsConfig, CacheGroupSpec, json_schemas, parse_spec
from kvschema.exchange.schema import SCHEMA_NAMES, check_schemas, render_schema
from kvschema.strategies import cache_groups_configs, cache_specs, dtype_inputs

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = json_schemas()
VALIDATORS = {name: jsonschema.Draft202012Validator(schema) for name, schema in SCHEMAS.items()}
PARSERS = {
    "cache-spec": parse_spec,
    "cache-group-spec": CacheGroupSpec.model_validate,
    "cache-groups-config": CacheGroupsConfig.model_validate,
}


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = SCHEMAS[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f":v2:{name}")
    assert schema["title"] and schema["description"]


def test_committed_schemas_match_the_code() -> None:
    stale = check_schemas(ROOT / "schemas")
    assert not stale, (
        f"schemas/ differs from the code for {[p.name for p in stale]}; "
        "regenerate with: python -m kvschema schema --out schemas"
    )


def test_committed_files_are_exactly_the_published_set() -> None:
    assert sorted(p.name for p in (ROOT / "schemas").glob("*.json")) == sorted(
        f"{n}.schema.json" for n in SCHEMA_NAMES
    )
    for name in SCHEMA_NAMES:
        text = (ROOT / "schemas" / f"{name}.schema.json").read_text()
        assert text == render_schema(json.loads(text))


def schema_ok(name: str, document: Any) -> bool:
    return VALIDATORS[name].is_valid(document)


def kvschema_ok(name: str, document: Any) -> bool:
    try:
        PARSERS[name](document)
    except ValidationError:
        return False
    return True


@given(cache_groups_configs(), dtype_inputs)
def test_valid_documents_validate_under_the_schema(config: CacheGroupsConfig, alias: str) -> None:
    document = config.model_dump(mode="json")
    assert schema_ok("cache-groups-config", document)
    for group in document["kv_cache_groups"]:
        assert schema_ok("cache-group-spec", group)
        assert schema_ok("cache-spec", group["kv_cache_spec"])
    # hand-written documents omit derived values and use aliases
    spec = document["kv_cache_groups"][0]["kv_cache_spec"]
    if spec["kind"] == "uniform_type":
        del spec["type_id"], spec["page_size_bytes"]
        spec = next(iter(spec["kv_cache_specs"].values()))
    del spec["type_id"], spec["page_size_bytes"]
    spec.pop("page_size_padded", None)  # a padding sized for the old dtype may not cover the new
    if spec.get("dtypes"):
        spec["dtypes"][0] = alias
    else:
        spec["dtype"] = alias
    assert kvschema_ok("cache-groups-config", document)
    assert schema_ok("cache-groups-config", document)


def _mutations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key in ("kind", "page_size", "dtype"):
        if key not in spec or (key == "dtype" and spec["kind"] == "mamba"):
            continue  # a Mamba spec may give dtypes instead: a rule only kvschema checks
        broken = copy.deepcopy(spec)
        del broken[key]
        out.append(broken)
    for key, value in [
        ("page_size", 0),
        ("page_size", -3),
        ("page_size", "16"),
        ("page_size", True),
        ("dtype", "int4"),
        ("dtype", "f12"),
        ("kind", "linear"),
        ("unknown_field", 1),
        ("page_size", 2**53),
    ]:
        broken = copy.deepcopy(spec)
        broken[key] = value
        out.append(broken)
    return out


@given(cache_specs())
def test_structurally_invalid_specs_fail_both(spec: Any) -> None:
    for broken in _mutations(spec.model_dump(mode="json")):
        assert not kvschema_ok("cache-spec", broken), broken
        assert not schema_ok("cache-spec", broken), broken


@pytest.mark.parametrize(
    "document",
    [
        {"num_pages": 1},
        {"num_pages": 1, "kv_cache_groups": []},
        {
            "num_pages": 0,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[1]],
                        "dtype": "fp32",
                    }
                }
            ],
        },
        {
            "schema_version": 3,
            "num_pages": 1,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[1]],
                        "dtype": "fp32",
                    }
                }
            ],
        },
        {
            "num_pages": 1,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[1]],
                        "dtype": "fp32",
                    },
                    "layer_names": ["a", "a"],
                }
            ],
        },
        {
            "num_pages": 1,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "sliding_window",
                        "page_size": 1,
                        "num_kv_heads": 1,
                        "head_size": 1,
                        "dtype": "fp32",
                        "sliding_window": 4,
                        "use_mla": True,
                    }
                }
            ],
        },
        {
            "num_pages": 1,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "full_attention",
                        "page_size": 1,
                        "num_kv_heads": 1,
                        "head_size": 1,
                        "dtype": "fp32",
                        "sliding_window": 4,
                        "attention_chunk_size": 4,
                    }
                }
            ],
        },
    ],
)
def test_invalid_configs_fail_both(document: dict[str, Any]) -> None:
    assert not kvschema_ok("cache-groups-config", document)
    assert not schema_ok("cache-groups-config", document)


@pytest.mark.parametrize(
    "document",
    [
        # a layer in two groups, layer_names null beside another group, wrong derived value
        {
            "num_pages": 1,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[1]],
                        "dtype": "fp32",
                    },
                    "layer_names": ["a"],
                },
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[2]],
                        "dtype": "fp32",
                    },
                    "layer_names": ["a"],
                },
            ],
        },
        {
            "num_pages": 1,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[1]],
                        "dtype": "fp32",
                    }
                },
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[2]],
                        "dtype": "fp32",
                    },
                    "layer_names": ["a"],
                },
            ],
        },
        {
            "num_pages": 1,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[1]],
                        "dtype": "fp32",
                        "page_size_bytes": 8,
                    }
                }
            ],
        },
        {
            "num_pages": 1,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[4]],
                        "dtype": "fp32",
                        "page_size_padded": 8,
                    }
                }
            ],
        },
    ],
)
def test_rules_only_kvschema_checks(document: dict[str, Any]) -> None:
    """The schema cannot say these (docs/schemas.md lists them): kvschema refuses them alone."""
    assert schema_ok("cache-groups-config", document)
    assert not kvschema_ok("cache-groups-config", document)


@given(st.sampled_from(SCHEMA_NAMES))
def test_schemas_are_deterministic(name: str) -> None:
    assert render_schema(json_schemas()[name]) == render_schema(SCHEMAS[name])
