"""A model's own context length, as vLLM 0.33's ``_get_and_verify_max_len`` derives it."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema import InvalidArgumentError
from kvschema.models.context import LENGTH_DEFAULTS, LENGTH_KEYS, ModelLength, model_length


@pytest.mark.parametrize(
    ("config", "default", "key"),
    [
        ({"max_position_embeddings": 4096}, 4096, "max_position_embeddings"),
        ({"n_positions": 1024}, 1024, "n_positions"),  # GPT-2
        # the smallest key wins ...
        ({"max_position_embeddings": 8192, "seq_length": 4096}, 4096, "seq_length"),
        # ... but model_max_length (Command-R) overrides them all
        ({"max_position_embeddings": 8192, "model_max_length": 131072}, 131072, "model_max_length"),
        # RoPE factors scale the length, except the types whose length is already scaled
        ({"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 4}}, 16384, "max_position_embeddings"),
        ({"max_position_embeddings": 4096, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, 8192, "max_position_embeddings"),
        ({"max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, 131072, "max_position_embeddings"),
        ({"max_position_embeddings": 163840, "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096}}, 163840, "max_position_embeddings"),
        # transformers 5's name, nested per layer type
        ({"max_position_embeddings": 2048, "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 2.0}, "sliding_attention": {"rope_type": "default"}}}, 4096, "max_position_embeddings"),
        # Gemma 3's length is already scaled: its factor is skipped
        ({"model_type": "gemma3_text", "max_position_embeddings": 131072, "rope_scaling": {"rope_type": "linear", "factor": 8.0}}, 131072, "max_position_embeddings"),
        # LongRoPE: the default is the original length, the limit the long one
        ({"max_position_embeddings": 131072, "original_max_position_embeddings": 4096, "rope_scaling": {"type": "longrope"}}, 4096, "max_position_embeddings"),
        # a null factor is taken as 1, as vLLM does
        ({"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": None}}, 4096, "max_position_embeddings"),
    ],
)  # fmt: skip
def test_vllm_derivation(config: dict[str, Any], default: int, key: str) -> None:
    length = model_length(config)
    assert (length.default, length.key) == (default, key)
    assert length.resolve(None) == default


def test_longrope_allows_up_to_the_long_length() -> None:
    length = model_length(
        {
            "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096,
            "rope_scaling": {"type": "longrope"},
        }
    )
    assert length.resolve(131072) == 131072
    with pytest.raises(InvalidArgumentError, match="greater than the derived"):
        length.resolve(131073)


def test_family_defaults_fill_a_missing_length() -> None:
    assert model_length({}, "gemma3_text").default == 131072
    assert model_length({"max_position_embeddings": 8192}, "gemma3_text").default == 8192


def test_no_length_is_a_refusal_unless_asked() -> None:
    length = model_length({"model_type": "unknown"})
    assert length == ModelLength(None, None, None, None)
    with pytest.raises(InvalidArgumentError, match="pass max_model_len"):
        length.resolve(None)
    assert length.resolve(123456) == 123456  # nothing to check it against, as in vLLM


def test_model_max_length_allows_a_longer_request() -> None:
    length = ModelLength(4096.0, "max_position_embeddings", 8192, 4096)
    assert length.resolve(8192) == 8192
    with pytest.raises(InvalidArgumentError) as err:
        length.resolve(8193)
    assert pickle.loads(pickle.dumps(err.value)).fields["max_model_len"] == 8193
    assert length.resolve(10**6, allow_long=True) == 10**6
    with pytest.raises(InvalidArgumentError, match="max_model_len must be an int"):
        length.resolve(0)


@given(
    lengths=st.dictionaries(st.sampled_from(LENGTH_KEYS[:4]), st.integers(1, 2**31), min_size=1),
    asked=st.integers(1, 2**32),
)
def test_resolve_never_exceeds_the_model_unless_allowed(
    lengths: dict[str, int], asked: int
) -> None:
    length = model_length(lengths)
    assert length.default == min(lengths.values())
    try:
        resolved = length.resolve(asked)
    except InvalidArgumentError:
        assert asked > min(lengths.values())
    else:
        assert resolved == asked <= min(lengths.values())
    assert length.resolve(asked, allow_long=True) == asked


def test_defaults_are_the_transformers_config_classes() -> None:
    """Each default is what transformers' config class fills in (config classes only)."""
    auto = pytest.importorskip("transformers.models.auto.configuration_auto")
    for model_type, expected in LENGTH_DEFAULTS.items():
        config = auto.CONFIG_MAPPING[model_type]()
        assert config.max_position_embeddings == expected, model_type
