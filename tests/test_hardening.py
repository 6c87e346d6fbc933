"""Hostile input is boring: huge numbers, deep nesting, long strings, many layers, threads."""

import importlib
import math
import pickle
import pkgutil
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import ValidationError

import kvschema
from kvschema import (
    CacheGroupsConfig,
    FullAttentionSpec,
    KVSchemaError,
    SlidingWindowSpec,
    parse_spec,
    plan_cache,
)
from kvschema.cli import main
from kvschema.hf import layers_from_hf_config
from kvschema.reading.loaders import load_bytes

SPEC = {
    "kind": "full_attention",
    "page_size": 16,
    "num_kv_heads": 8,
    "head_size": 128,
    "dtype": "bf16",
}


@pytest.mark.parametrize("value", [2**53, 2**63, 10**100, -(10**100)])
def test_huge_numbers_are_refused_by_bound(value: int) -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec({**SPEC, "page_size": value})
    assert info.value.errors()[0]["type"] in ("less_than_equal", "greater_than_equal")
    with pytest.raises(ValidationError):
        CacheGroupsConfig.model_validate_json(
            f'{{"num_pages": {value}, "kv_cache_groups": [{{"kv_cache_spec": {{"kind": "mamba", '
            f'"page_size": 1, "shapes": [[4]], "dtype": "fp32"}}}}]}}'
        )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 16.0])
def test_non_integers_are_refused(value: float) -> None:
    with pytest.raises(ValidationError, match="valid integer"):
        parse_spec({**SPEC, "num_kv_heads": value})


def test_nan_in_yaml_names_it(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    path = tmp_path / "nan.yaml"
    path.write_text(
        "kind: full_attention\npage_size: .nan\nnum_kv_heads: 8\nhead_size: 128\ndtype: bf16\n"
    )
    assert main(["validate", "-q", str(path)]) == 1
    assert "got NaN [int_type]" in capsys.readouterr().out


def test_a_million_layers_end_cleanly() -> None:
    names = [f"layer.{i}" for i in range(1_000_000)]
    with pytest.raises(ValidationError) as info:
        CacheGroupsConfig.model_validate(
            {"num_pages": 1, "kv_cache_groups": [{"kv_cache_spec": SPEC, "layer_names": names}]}
        )
    assert "too_long" in {e["type"] for e in info.value.errors()}


def test_deep_nesting_in_json_documents() -> None:
    with pytest.raises(ValidationError):
        CacheGroupsConfig.model_validate_json("[" * 10_000 + "]" * 10_000)
    with pytest.raises(ValueError, match="deeper"):
        load_bytes(('{"a": ' * 10_000 + "1" + "}" * 10_000).encode(), "json")


def test_very_long_strings_give_short_messages() -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec({**SPEC, "dtype": "x" * 1_000_000})
    assert len(str(info.value)) < 2_000
    with pytest.raises(ValidationError, match="at most 256 characters"):
        CacheGroupsConfig.model_validate(
            {
                "num_pages": 1,
                "kv_cache_groups": [{"kv_cache_spec": SPEC, "layer_names": ["x" * 1_000_000]}],
            }
        )
    with pytest.raises(ValueError, match="not a family kvschema knows") as loaded:
        layers_from_hf_config(
            {
                "model_type": "y" * 100_000,
                "num_attention_heads": 2,
                "sliding_window": 3,
                "dtype": "bf16",
            }
        )
    assert len(str(loaded.value)) < 200_000 + 2_000


def _all_error_classes() -> list[type[KVSchemaError]]:
    for module in pkgutil.iter_modules(kvschema.__path__):
        if module.name not in ("jax", "strategies", "__main__"):
            importlib.import_module(f"kvschema.{module.name}")
    found: list[type[KVSchemaError]] = []
    todo = [KVSchemaError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_public_error_pickles_with_its_message_and_fields() -> None:
    classes = _all_error_classes()
    assert len(classes) >= 10
    for cls in classes:
        err = cls("something at layer.3", layer="layer.3", needed_bytes=7)
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls
        assert str(back) == "something at layer.3"
        assert back.fields == {"layer": "layer.3", "needed_bytes": 7}
        assert isinstance(back, ValueError)


def test_threads_get_the_same_answers() -> None:
    full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=1024
    )
    layers = {f"layer.{i}": full if i % 6 == 5 else local for i in range(48)}
    text = CacheGroupsConfig.from_mask_details(
        {i: {"mask_type": "full" if i % 6 == 5 else "sliding", "size": 1024} for i in range(48)},
        num_pages=100,
        page_size=16,
        num_kv_heads=8,
        head_size=128,
        dtype="bf16",
    ).model_dump_json()

    def work(seed: int) -> tuple[str, str]:
        plan = plan_cache(
            layers,
            available_bytes=(8 + seed % 3) * 1024**3,
            max_model_len=32768,
            max_num_batched_tokens=2048,
        )
        return plan.model_dump_json(), CacheGroupsConfig.model_validate_json(text).model_dump_json()

    expected = [work(seed) for seed in range(48)]
    barrier = threading.Barrier(8)

    def threaded(seed: int) -> tuple[str, str]:
        if seed < 8:
            barrier.wait()
        return work(seed)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(threaded, range(48))) == expected
