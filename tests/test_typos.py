"""Typos get a "did you mean" (issue 17): field names, dtypes and model families.

The suggestion comes from one helper, ``kvschema._args.did_you_mean``; the dtype error names
the close names instead of listing all 48.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema import DTYPE_ALIASES, DTYPE_SIZES, canonical_dtype
from kvschema._args import close_matches, did_you_mean
from kvschema.cli import main
from kvschema.errors import DTypeError, KVSchemaError, KVSchemaWarning
from kvschema.hf import layers_from_hf_config

NAMES = sorted({*DTYPE_SIZES, *DTYPE_ALIASES})


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("bf17", "bf16"), ("bfloat61", "bfloat16"), ("fp8e4m3", "fp8_e4m3"), ("flaot32", "float32")],
)
def test_a_misspelt_dtype_names_the_close_ones_only(typo: str, meant: str) -> None:
    with pytest.raises(DTypeError) as info:
        canonical_dtype(typo)
    message = str(info.value)
    assert f"did you mean '{meant}'" in message or f"'{meant}'" in message.split("mean")[1]
    assert "valid names" not in message and message.count("'") <= 8  # three names at most


def test_a_dtype_nothing_is_close_to_lists_the_canonical_names() -> None:
    with pytest.raises(DTypeError) as info:
        canonical_dtype("xyz")
    message = str(info.value)
    assert all(name in message for name in DTYPE_SIZES)
    assert "i16" not in message  # the aliases are not all listed


@given(st.sampled_from(NAMES), st.integers(0, 20), st.sampled_from("xz_"))
def test_one_wrong_character_is_suggested_back(name: str, where: int, char: str) -> None:
    """A known name with one character changed: the suggestion includes the name (or a name
    that means the same dtype), unless the change made another known name."""
    where %= len(name)
    typo = name[:where] + char + name[where + 1 :]
    if typo.lower() in {n.lower() for n in NAMES}:
        return
    found = close_matches(typo, NAMES)
    canonical = {DTYPE_ALIASES.get(n, n) for n in found}
    assert name in found or DTYPE_ALIASES.get(name, name) in canonical or len(name) <= 3


def test_did_you_mean_is_empty_for_nothing_close_and_any_non_string() -> None:
    assert did_you_mean("zzzz", ["window"]) == ""
    assert did_you_mean(None, ["window"]) == ""
    assert did_you_mean("x" * 10_000, ["window"]) == ""


@pytest.mark.parametrize(
    ("document", "suggested"),
    [
        (
            "{kind: sliding_window, page_size: 16, num_kv_heads: 8, head_size: 128, dtype: bf16, window: 512}",
            "sliding_window",
        ),
        ("{kind: mamba, page_size: 16, shape: [[4]], dtype: fp32}", "shapes"),
        (
            "{kind: full_attention, page_size: 16, num_kv_head: 8, head_size: 128, dtype: bf16}",
            "num_kv_heads",
        ),
        ("num_pages: 4\nkv_cache_group: []\n", "kv_cache_groups"),
        (
            "{kv_cache_spec: {kind: mamba, page_size: 1, shapes: [[4]], dtype: fp32}, layer_name: [a]}",
            "layer_names",
        ),
        (
            "num_pages: 4\nparallelism: {tensor_parallel: 2}\nkv_cache_groups: "
            "[{kv_cache_spec: {kind: mamba, page_size: 1, shapes: [[4]], dtype: fp32}}]\n",
            "tensor_parallel_size",
        ),
    ],
)
def test_a_misspelt_field_names_the_closest_known_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, document: str, suggested: str
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(document + "\n")
    kind = ["--kind", "config"] if document.startswith("num_pages") else []
    assert main(["validate", "-q", *kind, str(path)]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "[extra_forbidden]" in line)
    assert f"did you mean '{suggested}'" in line


def test_a_field_the_mapping_already_has_is_not_suggested(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "extra.yaml"
    path.write_text(
        "{kind: sliding_window, page_size: 16, num_kv_heads: 8, head_size: 128, dtype: bf16, "
        "sliding_window: 512, window: 512}\n"
    )
    assert main(["validate", "-q", str(path)]) == 1
    assert "did you mean" not in capsys.readouterr().out


CONFIG = {
    "num_hidden_layers": 2,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "torch_dtype": "bfloat16",
}


def test_a_misspelt_family_is_suggested() -> None:
    with pytest.warns(KVSchemaWarning, match="did you mean 'llama'"):
        layers_from_hf_config({"model_type": "llamma", **CONFIG}, page_size=16)
    with pytest.raises(KVSchemaError, match="did you mean 'jamba'"):
        layers_from_hf_config({"model_type": "jambba", "sliding_window": 4, **CONFIG}, page_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(KVSchemaWarning) as info:
            layers_from_hf_config({"model_type": "zzzzzz", **CONFIG}, page_size=16)
    assert "did you mean" not in str(info.value)
