"""Random input never escapes as anything but a ValueError subclass."""

import contextlib
import warnings
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from kvschema import CacheGroupsConfig, CacheGroupSpec, groups_from_mask_details, parse_spec
from kvschema.strategies import cache_groups_configs

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=30,
)
keys = st.sampled_from(
    [
        "kind",
        "page_size",
        "num_kv_heads",
        "head_size",
        "dtype",
        "use_mla",
        "sliding_window",
        "attention_chunk_size",
        "shapes",
        "page_size_padded",
        "type_id",
        "page_size_bytes",
        "kv_cache_spec",
        "layer_names",
        "num_pages",
        "kv_cache_groups",
        "schema_version",
        "mask_type",
        "size",
        "chunks",
    ]
)
plausible = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 1 << 16)
    | st.sampled_from(
        [
            "full_attention",
            "sliding_window",
            "local_attention",
            "mamba",
            "bf16",
            "int4",
            "sliding",
            "full",
        ]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=8),
    max_leaves=40,
)


def only_value_errors(call: Any, value: Any) -> None:
    with contextlib.suppress(ValueError):
        call(value)


@given(json_values | plausible)
def test_parse_spec(value: Any) -> None:
    only_value_errors(parse_spec, value)


@given(json_values | plausible)
def test_models(value: Any) -> None:
    only_value_errors(CacheGroupsConfig.model_validate, value)
    only_value_errors(CacheGroupSpec.model_validate, value)


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_raw_bytes_and_text(value: Any) -> None:
    only_value_errors(parse_spec, value)
    only_value_errors(CacheGroupsConfig.model_validate_json, value)


@given(
    st.dictionaries(
        st.none() | st.booleans() | st.integers(-2, 8) | st.floats() | st.text(max_size=4),
        json_values | plausible,
        max_size=6,
    )
    | json_values
)
def test_converter(details: Any) -> None:
    only_value_errors(
        lambda d: groups_from_mask_details(
            d, page_size=16, num_kv_heads=8, head_size=128, dtype="bf16"
        ),
        details,
    )


@given(cache_groups_configs(max_layers=8), st.data())
def test_mutated_valid_documents(config: CacheGroupsConfig, data: st.DataObject) -> None:
    document = config.model_dump(mode="json")
    spec = document["kv_cache_groups"][0]["kv_cache_spec"]
    key = data.draw(st.sampled_from(sorted(spec)))
    spec[key] = data.draw(json_values | plausible)
    only_value_errors(CacheGroupsConfig.model_validate, document)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "model_type",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "head_dim",
                "hidden_size",
                "sliding_window",
                "layer_types",
                "torch_dtype",
                "text_config",
                "kv_lora_rank",
                "hybrid_override_pattern",
                "attn_layer_period",
                "mamba_expand",
            ]
        ),
        json_values
        | plausible
        | st.sampled_from(["llama", "gemma3", "nemotron_h", "jamba", "bf16"]),
        max_size=10,
    )
    | json_values
)
def test_hf_import(config: Any) -> None:
    from kvschema.hf import layers_from_hf_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        only_value_errors(layers_from_hf_config, config)


@given(
    st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    st.sampled_from([None, "yaml", "json", "toml"]),
)
def test_cli_loader(raw: bytes, fmt: Any) -> None:
    from kvschema.reading.loaders import load_bytes

    only_value_errors(lambda data: load_bytes(data, fmt), raw)


@given(
    st.dictionaries(st.text(max_size=8), plausible, max_size=6) | json_values,
    st.integers(-2, 1 << 40),
)
def test_planner(layers: Any, budget: int) -> None:
    from kvschema import plan_cache

    only_value_errors(
        lambda ls: plan_cache(
            ls, available_bytes=budget, max_model_len=4096, max_num_batched_tokens=256
        ),
        layers,
    )


# -- the readers' hostile paths: YAML aliases, YAML streams, TOML (issue 17) -----------------

_LIMITS_KW = {"max_values": 2_000, "max_depth": 12}
_SCALARS = st.sampled_from(
    [
        "1",
        "0x1f",
        "0o17",
        "-3",
        "1.5",
        ".inf",
        ".nan",
        "true",
        "null",
        "~",
        "''",
        "yes",
        "x",
        "'a\\nb'",
        '"\\u202e"',
        "mamba",
        "fp32",
        "page_size",
        "kind",
    ]
)


@st.composite
def yaml_with_aliases(draw: st.DrawFn) -> str:
    """A mapping of anchored flow collections, each holding scalars and aliases of earlier ones."""
    lines = []
    for index in range(draw(st.integers(1, 8))):
        items = draw(
            st.lists(
                _SCALARS
                | (st.integers(0, max(index - 1, 0)).map(lambda i: f"*a{i}") if index else _SCALARS)
                | st.just("[]")
                | st.just("{}"),
                max_size=8,
            )
        )
        if draw(st.booleans()):
            body = "[" + ", ".join(items) + "]"
        else:
            body = "{" + ", ".join(f"k{n}: {item}" for n, item in enumerate(items)) + "}"
        key = draw(
            st.sampled_from(
                [f"a{index}", "kind", "shapes", "page_size", "dtype", "1", "true", "1.0"]
            )
        )
        lines.append(f"{key}: &a{index} {body}")
    if draw(st.booleans()):
        lines.insert(0, draw(st.sampled_from(["%YAML 1.2\n---", "%YAML 1.1\n---", "---"])))
    return "\n".join(lines) + "\n"


def _expanded(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(1 + _expanded(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_expanded(v) for v in value)
    return 1


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _check_and_print(documents: list[Any]) -> None:
    """Every document checks without escaping, and its error lines forge nothing."""
    from kvschema.cli.commands import _error_line, _issue_dict
    from kvschema.cli.output import Style
    from kvschema.reading.checking import check_document

    for document in documents:
        for kind in (None, "spec", "config", "layers"):
            _, issues = check_document(document, kind)
            for issue in issues:
                line = _error_line("f.yaml", _issue_dict(issue, len(documents)), Style(None))
                assert line.isprintable() and len(line) < 2_000


@given(yaml_with_aliases())
def test_yaml_aliases_are_counted_as_expanded(text: str) -> None:
    from kvschema.reading.loaders import Limits, LoadError, load_text

    limits = Limits(**_LIMITS_KW)
    try:
        documents = load_text(text, "yaml", limits)
    except LoadError as err:
        assert err.message.isprintable() and len(err.message) < 500
        return
    for document in documents:  # what was let through is within the limits, expanded
        assert _expanded(document.data) <= limits.max_values
        assert _depth(document.data) <= limits.max_depth
    _check_and_print(documents)


@given(st.lists(json_values | plausible, min_size=1, max_size=6), st.data())
def test_yaml_streams_read_as_their_documents_alone(values: list[Any], data: st.DataObject) -> None:
    import json

    from kvschema.reading.loaders import LoadError, load_text

    texts = [json.dumps(value, ensure_ascii=False) for value in values]  # YAML flow style
    alone = []
    for text in texts:
        try:
            alone.append(load_text(f"---\n{text}\n", "yaml")[0])
        except LoadError:  # YAML refuses raw control characters, which JSON strings may hold
            assume(False)
    stream = "".join(f"---\n{text}\n" for text in texts)
    documents = load_text(stream, "yaml")
    assert [d.index for d in documents] == list(range(len(texts)))
    assert _same([d.data for d in documents], [d.data for d in alone])
    index = data.draw(st.integers(0, len(texts) - 1))
    line = documents[index].position(())
    assert line is not None and line[0] == 2 * index + 2  # each document on its own line
    _check_and_print(documents)


def _same(a: Any, b: Any) -> bool:  # NaN is NaN here
    return json_dumps(a) == json_dumps(b)


def json_dumps(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=repr)


_TOML_LINES = st.sampled_from(
    [
        "[kv_cache_groups.kv_cache_spec]",
        "[[kv_cache_groups]]",
        "[a.b]",
        "['q.x'.\"y z\"]",
        'kind = "mamba"',
        "page_size = 0x10",
        "page_size = 1_000",
        "num_pages = 9999999999999999999999",
        "shapes = [[4], [2, 2]]",
        "shapes = [",
        "  [4],",
        "]",
        "dtype = 'fp32'",
        "layer_names = [\"a\", 'b']",
        "a.b.c = 1",
        '"k.e\\"y" = 2',
        's = """',
        "multi [not a table]",
        '"""',
        "t = '''x'''",
        "inline = {x = 1, y = [1, 2]}",
        "# a comment",
        "",
        "x = = 1",
        "v = 0x" + "f" * 4000,
        "w = " + "[" * 40 + "]" * 40,
        "d = 1979-05-27T07:32:00Z",
        "f = nan",
    ]
)


@given(st.lists(_TOML_LINES | st.text(max_size=12), max_size=25))
def test_toml_reads_with_lines_or_fails_clearly(lines: list[str]) -> None:
    from kvschema.reading.loaders import Limits, LoadError, load_text
    from kvschema.reading.tomlpos import toml_positions

    text = "\n".join(lines)
    positions = toml_positions(text)  # never raises, whatever the text
    count = text.count("\n") + 1
    assert all(1 <= line <= count and column >= 1 for line, column in positions.values())
    try:
        documents = load_text(text, "toml", Limits(**_LIMITS_KW))
    except LoadError as err:
        assert err.message.isprintable() or "\n" not in err.message
        if "line" in err.fields:
            assert 1 <= err.fields["line"] <= count
        return
    _check_and_print(documents)
