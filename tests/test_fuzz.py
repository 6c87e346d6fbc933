"""Random input never escapes as anything but a ValueError subclass."""

import contextlib
import warnings
from typing import Any

from hypothesis import given
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
