"""The fast paths of reading JSON keep the verdicts and errors of the plain ones.

Validating text notes the versioned fields as they are read instead of walking the models;
a spec's rules and derived values are looked up when its fields passed before; ``parse_spec``
and ``read_config`` parse the text once and refuse a key twice as before; long texts count
their colons by jumping from one to the next.  Each is held here to the slower path.
"""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from json_texts import with_a_key_twice
from pydantic import BaseModel, ValidationError

from kvschema import CacheGroupsConfig, Parallelism, parse_spec
from kvschema._reading import colons_at_most, load_json
from kvschema.errors import KVSchemaError
from kvschema.exchange.canonical import read_config, to_canonical_json
from kvschema.layout.config import FIELD_VERSIONS
from kvschema.spec import base
from kvschema.spec.union import spec_adapter, spec_keys_read
from kvschema.strategies import cache_groups_configs, cache_specs


def _without_derived(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _without_derived(v)
            for k, v in node.items()
            if k not in ("type_id", "page_size_bytes")
        }
    if isinstance(node, list):
        return [_without_derived(v) for v in node]
    return node


def _document(model: Any, written: bool) -> Any:
    """As kvschema writes it (every field, derived values in), or the fields it sets only."""
    if written:
        return json.loads(model.model_dump_json())
    return _without_derived(json.loads(to_canonical_json(model)))


def _errors(call: Any, *args: Any) -> Any:
    """What ``call(*args)`` gives: a model, or its error as (type, loc, message, input)s."""
    try:
        return call(*args)
    except ValidationError as err:
        return [(e["type"], e["loc"], e["msg"], repr(e["input"])) for e in err.errors()]
    except KVSchemaError as err:
        return (type(err).__name__, str(err))


def _fields_sets(node: Any) -> Any:
    """Every model's fields set, nested as the models are."""
    if isinstance(node, BaseModel):
        return (
            sorted(node.model_fields_set),
            [_fields_sets(getattr(node, name)) for name in type(node).model_fields],
        )
    if isinstance(node, dict):
        return [_fields_sets(value) for value in node.values()]
    if isinstance(node, (list, tuple)):
        return [_fields_sets(value) for value in node]
    return None


@given(cache_groups_configs(), st.booleans(), st.sampled_from([1, 2, None]), st.booleans())
def test_versions_noted_while_parsing_agree_with_the_walk(
    config: CacheGroupsConfig, parallel: bool, version: int | None, written: bool
) -> None:
    """A document says a version and sets some fields: text (the fields note themselves as
    they are read) and a mapping (the models are walked) get the same verdict."""
    if parallel:
        config = config.model_copy(update={"parallelism": Parallelism(tensor_parallel_size=2)})
    document = _document(config, written)
    document.pop("schema_version", None)
    if version is not None:
        document["schema_version"] = version
    from_text = _errors(CacheGroupsConfig.model_validate_json, json.dumps(document))
    assert from_text == _errors(CacheGroupsConfig.model_validate, document)
    if version == 1 and config.fields_newer_than(1):
        assert from_text[0][0] == "field_newer_than_schema_version"


def _wrong_derived(document: dict[str, Any]) -> list[dict[str, Any]]:
    page = document["page_size_bytes"]
    return [
        {**document, "page_size_bytes": float(page)},
        {**document, "page_size_bytes": page + 1},
        {**document, "page_size_bytes": True},
        {**document, "type_id": document["type_id"] + "x"},
        {**document, "type_id": None},
    ]


@given(cache_specs())
def test_a_spec_checked_before_is_checked_alike(spec: Any) -> None:
    """The rules' verdict is looked up by the fields alone: a spec whose fields passed before
    gets the same result, and wrong derived values the same errors, as the first time."""
    text = spec.model_dump_json()
    wrong = [json.dumps(document) for document in _wrong_derived(json.loads(text))]
    base._CHECKED.clear()
    cold = [_errors(parse_spec, one) for one in wrong]
    first = parse_spec(text)
    assert [_errors(parse_spec, one) for one in wrong] == cold  # now looked up
    again = parse_spec(text)
    assert again == first == spec
    assert _fields_sets(again) == _fields_sets(first)
    assert all(isinstance(errors, list) and errors for errors in cold)


def _refused_by_the_old_way(text: str, title: str) -> Any:
    """The duplicate-key error as the text's first parse gave it."""
    twice = load_json(text)[1]
    return [
        (
            "duplicate_key",
            (),
            f"duplicate key {key[:60]!r} in one JSON object; the later value would silently win",
            repr(key[:60]),
        )
        for key in dict.fromkeys(twice)
    ]


@given(cache_specs(), st.booleans(), st.data())
def test_parse_spec_reads_text_once_and_refuses_a_key_twice(
    spec: Any, written: bool, data: st.DataObject
) -> None:
    document = _document(spec, written)
    text = json.dumps(document)
    read = parse_spec(text)
    assert read == spec_adapter().validate_python(document) == parse_spec(text.encode())
    assert spec_keys_read(read) == text.count(":")  # one parse: the colons prove it
    _, objects = with_a_key_twice(document, -1)
    twice, _ = with_a_key_twice(document, data.draw(st.integers(0, objects - 1)))
    assert _errors(parse_spec, twice) == _refused_by_the_old_way(twice, "CacheSpec")
    broken = twice.replace('"page_size": ', '"page_size": -', 1)
    assert _errors(parse_spec, broken.encode()) == _refused_by_the_old_way(broken, "CacheSpec")


@given(cache_groups_configs(), st.sampled_from([1, 2, None]), st.booleans(), st.data())
def test_read_config_from_text_reads_as_from_its_mapping(
    config: CacheGroupsConfig, version: int | None, written: bool, data: st.DataObject
) -> None:
    """Text, read once, gives what the mapping gives: the same migrated config (every fields
    set alike), or the same error; a key twice is refused with the same error."""
    document = _document(config, written)
    document.pop("schema_version", None)
    if version is not None:
        document["schema_version"] = version
    text = json.dumps(document)
    from_text = _errors(read_config, text)
    from_mapping = _errors(read_config, json.loads(text))
    assert from_text == from_mapping
    if isinstance(from_text, CacheGroupsConfig):
        assert _fields_sets(from_text) == _fields_sets(from_mapping)
        assert from_text.schema_version == 2
    _, objects = with_a_key_twice(document, -1)
    twice, _ = with_a_key_twice(document, data.draw(st.integers(0, objects - 1)))
    key = load_json(twice)[1][0]
    assert _errors(read_config, twice.encode()) == (
        "InvalidArgumentError",
        f"duplicate key {key[:60]!r} in one JSON object",
    )


def test_read_config_refuses_newer_fields_of_a_document_without_a_version() -> None:
    text = json.dumps(
        {
            "num_pages": 4,
            "kv_cache_groups": [
                {
                    "kv_cache_spec": {"kind": "full_attention", "page_size": 16, "num_kv_heads": 1},
                    "layer_names": ["a"],
                }
            ],
        }
    ).replace(
        '"num_kv_heads": 1',
        '"num_kv_heads": 1, "head_size": 64, "dtype": "fp16", "head_size_v": 32',
    )
    error = _errors(read_config, text)
    assert error == _errors(read_config, json.loads(text))
    assert error[0] == "UnsupportedVersionError" and "head_size_v" in error[1]


_texts = st.text(alphabet=st.sampled_from(':ab"{}'), max_size=64).map(lambda t: t * 300)


@given(_texts | st.text(max_size=200), st.integers(0, 400), st.booleans())
def test_colons_at_most_is_a_count(text: str, limit: int, raw: bool) -> None:
    data: str | bytes = text.encode() if raw else text
    assert colons_at_most(data, limit) == (text.count(":") <= limit)


@pytest.mark.parametrize("layers", [4, 600])
def test_a_long_document_with_a_key_twice_is_refused(layers: int) -> None:
    names = [f"layer.{i}" for i in range(layers)]
    spec = '{"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32", "dtype": "fp32"}'
    text = (
        f'{{"num_pages": 4, "kv_cache_groups": [{{"kv_cache_spec": {spec}, '
        f'"layer_names": {json.dumps(names)}}}]}}'
    )
    with pytest.raises(ValidationError, match="duplicate key 'dtype'"):
        CacheGroupsConfig.model_validate_json(text)


_FULL = {"kind": "full_attention", "page_size": 16, "num_kv_heads": 1, "head_size": 64}
_MAMBA = {"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32"}
# Each versioned field, set alone in a one-group document: (spec, group fields, config fields)
_SETTING: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "head_size_v": ({**_FULL, "dtype": "bf16", "head_size_v": 32}, {}, {}),
    "cache_dtype_str": (
        {**_FULL, "dtype": "uint8", "use_mla": True, "cache_dtype_str": "fp8_ds_mla"},
        {},
        {},
    ),
    "kv_sharing": ({**_FULL, "dtype": "bf16"}, {"kv_sharing": {"b": "a"}}, {}),
    "parallelism": ({**_FULL, "dtype": "bf16"}, {}, {"parallelism": {"tensor_parallel_size": 2}}),
    "mamba_cache_mode": ({**_MAMBA, "mamba_cache_mode": "align"}, {}, {}),
    "num_speculative_blocks": ({**_MAMBA, "num_speculative_blocks": 1}, {}, {}),
    "num_prefill_checkpoint_blocks": (
        {**_MAMBA, "mamba_cache_mode": "align", "num_prefill_checkpoint_blocks": 1},
        {},
        {},
    ),
}


@pytest.mark.parametrize("field", sorted(_SETTING))
@pytest.mark.parametrize("uniform", [False, True])
def test_each_versioned_field_is_noted_as_it_is_read(field: str, uniform: bool) -> None:
    spec, group, config = _SETTING[field]
    if uniform and spec["kind"] == "full_attention":  # the field on a uniform-type member
        spec = {"kind": "uniform_type", "page_size": 16, "kv_cache_specs": {"a": spec}}
    document = {
        "schema_version": 1,
        "num_pages": 4,
        "kv_cache_groups": [{"kv_cache_spec": spec, "layer_names": ["a"], **group}],
        **config,
    }
    from_text = _errors(CacheGroupsConfig.model_validate_json, json.dumps(document))
    assert from_text == _errors(CacheGroupsConfig.model_validate, document)
    assert from_text[0][0] == "field_newer_than_schema_version"
    assert field in from_text[0][2]
    assert isinstance(
        CacheGroupsConfig.model_validate_json(json.dumps({**document, "schema_version": 2})),
        CacheGroupsConfig,
    )


def test_every_versioned_field_has_a_case() -> None:
    assert _SETTING.keys() == FIELD_VERSIONS.keys()
