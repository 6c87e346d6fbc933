"""Right verdicts on wrong arguments (issue 17): every public entry point answers a wrong type
with a ValueError subclass naming what was wrong — never TypeError, OverflowError, KeyError,
AttributeError, MemoryError or a hang — errors pickle whatever their fields hold, and what a
plan writes stays within 2**53 - 1 and reads back as the same plan.
"""

from __future__ import annotations

import inspect
import io
import math
import pickle
import re
import threading
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import kvschema
from kvschema import (
    CacheGroupsConfig,
    CacheGroupSpec,
    CachePlan,
    FullAttentionSpec,
    InsufficientMemoryError,
    MambaSpec,
    SlidingWindowSpec,
    plan_cache,
)
from kvschema._args import MAX_INT
from kvschema.errors import (
    DTypeError,
    InvalidArgumentError,
    KVSchemaError,
    MaskDetailsError,
    SpecMergeError,
)
from kvschema.exchange.canonical import migrate, read_config
from kvschema.planning.plan import stage_sizes
from kvschema.spec.base import MAX_INT as SPEC_MAX_INT
from kvschema.strategies import layer_specs

ROOT = Path(__file__).resolve().parent.parent
FULL = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
LOCAL = SlidingWindowSpec(
    page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=1024
)
CONFIG = CacheGroupsConfig(
    num_pages=100, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=FULL, layer_names=["a", "b"])]
)
PLAN = plan_cache(
    {"a": FULL}, available_bytes=2**30, max_model_len=4096, max_num_batched_tokens=256
)
HF = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}


class _Details:
    num_hidden_layers = 2

    def get_mask_details(self) -> dict[int, Any]:
        return {0: {"mask_type": "full"}, 1: {"mask_type": "sliding", "size": 512}}


#: Each entry point, and keyword arguments it accepts.  Every public function of
#: ``kvschema.__all__`` is here (a test checks that), with the methods and readers the command
#: line calls.
CALLS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "canonical_dtype": (kvschema.canonical_dtype, {"dtype": "bf16"}),
    "dtype_size": (kvschema.dtype_size, {"dtype": "bf16"}),
    "check_compatible": (
        kvschema.check_compatible,
        {"a": CONFIG, "b": CONFIG, "tp_a": 1, "tp_b": 2},
    ),
    "create_kv_cache_specs_from_config": (
        kvschema.create_kv_cache_specs_from_config,
        {
            "config": _Details(),
            "page_size": 16,
            "num_kv_heads": 8,
            "head_size": 128,
            "dtype": "bf16",
            "use_mla": False,
        },
    ),
    "fingerprint": (kvschema.fingerprint, {"obj": CONFIG}),
    "layout_fingerprint": (kvschema.layout_fingerprint, {"config": CONFIG}),
    "to_canonical_json": (kvschema.to_canonical_json, {"obj": FULL}),
    "groups_from_mask_details": (
        kvschema.groups_from_mask_details,
        {
            "mask_details": {0: {"mask_type": "full"}, 1: {"mask_type": "sliding", "size": 64}},
            "page_size": 16,
            "num_kv_heads": 8,
            "head_size": 128,
            "dtype": "bf16",
            "use_mla": False,
            "num_layers": 2,
        },
    ),
    "json_schemas": (kvschema.json_schemas, {}),
    "fit": (
        kvschema.fit,
        {
            "hf_config": str(ROOT / "tests" / "fixtures" / "hf" / "llama3-8b.json"),
            "gpu": "H100",
            "max_model_len": 4096,
        },
    ),
    "merge_specs": (kvschema.merge_specs, {"specs": [FULL, FULL]}),
    "parse_spec": (kvschema.parse_spec, {"data": FULL.model_dump()}),
    "shard_spec": (kvschema.shard_spec, {"spec": FULL, "tensor_parallel_size": 2}),
    "plan_cache": (
        plan_cache,
        {
            "layers": {"a": FULL, "b": LOCAL},
            "available_bytes": 2**30,
            "max_model_len": 4096,
            "max_num_batched_tokens": 256,
            "strategy": "hybrid",
            "tensor_parallel_size": 1,
            "pipeline_parallel_size": 1,
            "async_scheduling": None,
            "disable_hybrid_kv_cache_manager": None,
            "allow_chunked_local_with_hybrid": True,
            "eagle": False,
            "kv_connector_supports_hybrid": None,
            "specs_per_rank": False,
            "parallelism": None,
            "allow_long_max_model_len": False,
            "kv_sharing": None,
        },
    ),
    "vllm_layers_from_hf_config": (
        kvschema.vllm_layers_from_hf_config,
        {
            "config": HF,
            "block_size": None,
            "kv_cache_dtype": "auto",
            "tensor_parallel_size": 1,
            "enable_prefix_caching": None,
            "max_model_len": None,
            "gdn_prefill_backend": "flashinfer",
            "mamba_cache_dtype": "auto",
            "mamba_ssm_cache_dtype": "auto",
        },
    ),
    "CachePlan.pages_at": (PLAN.pages_at, {"max_model_len": 100}),
    "CachePlan.concurrency_at": (PLAN.concurrency_at, {"max_model_len": 100}),
    "max_memory_usage_bytes": (
        LOCAL.max_memory_usage_bytes,
        {"max_model_len": 100, "max_num_batched_tokens": 10},
    ),
    "CacheGroupsConfig.from_mask_details": (
        CacheGroupsConfig.from_mask_details,
        {
            "mask_details": None,
            "num_pages": 100,
            "page_size": 16,
            "num_kv_heads": 8,
            "head_size": 128,
            "dtype": "bf16",
            "num_layers": 2,
        },
    ),
    "CacheGroupsConfig.model_validate_json": (
        CacheGroupsConfig.model_validate_json,
        {"json_data": CONFIG.model_dump_json()},
    ),
    "read_config": (read_config, {"document": CONFIG.model_dump(mode="json")}),
    "migrate": (migrate, {"document": {"schema_version": 1}}),
    "stage_sizes": (stage_sizes, {"num_layers": 10, "pipeline_parallel_size": 4}),
    "Parallelism": (kvschema.Parallelism, {"tensor_parallel_size": 1, "pipeline_parallel_size": 1}),
}

#: What escapes instead of a ValueError when an argument's type is not checked.
ESCAPES = (TypeError, OverflowError, KeyError, AttributeError, IndexError, MemoryError)


def _unpicklable() -> Any:
    return lambda: None


#: Values of every wrong type: None, bools, floats (NaN, infinities), huge ints, strings,
#: bytes, containers of those, numpy scalars and dtypes of unknown kinds, plain objects,
#: callables, open files.
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 2**53, 2**53 - 1, 2**63, 2**64, 10**40, -(10**40), 10**400]),
    st.text(max_size=20),
    st.binary(max_size=8),
    st.sampled_from(
        [
            object(),
            [],
            {},
            (),
            set(),
            [None],
            {"a": None},
            ["a", None],
            (1,),
            Decimal("3"),
            Fraction(1, 2),
            np.int64(16),
            np.float32(2.0),
            np.dtype("float32"),
            np.dtype("complex64"),
            np.dtype("datetime64[s]"),
            np.dtype([("a", "i4")]),
            np.dtype("O"),
            np.dtype("U4"),
            np.dtype("V3"),
            io.StringIO("x"),
            threading.Lock(),
            1j,
            range(3),
            Ellipsis,
            NotImplemented,
            type,
            print,
        ]
    ),
    st.builds(_unpicklable),
    st.lists(st.none() | st.integers() | st.text(max_size=3), max_size=3),
)


def _named(message: str, name: str, value: Any) -> bool:
    """Whether an error message points at the argument: its name, its value or its type."""
    lowered = message.lower()
    hints = {name.lower(), name.split(".")[-1].lower(), type(value).__name__.lower()}
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        hints.add(str(value)[:12].lower())
    hints.add(repr(value)[:12].lower())
    if isinstance(value, (list, tuple, dict)):  # a container: the message may name an item
        items = list(value.values()) if isinstance(value, dict) else list(value)
        hints.update(type(item).__name__.lower() for item in items)
        hints.update(repr(item)[:12].lower() for item in items)
    return any(hint and hint in lowered for hint in hints)


#: Examples per entry point: 60 in a normal run, the long profile's count in the fuzz run.
_EXAMPLES = 60 if settings.default.max_examples <= 100 else settings.default.max_examples


@pytest.mark.parametrize("entry", sorted(CALLS))
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_wrong_argument_types_raise_value_errors_naming_them(entry: str, data: Any) -> None:
    function, valid = CALLS[entry]
    if not valid:
        function()
        return
    name = data.draw(st.sampled_from(sorted(valid)), label="argument")
    value = data.draw(HOSTILE, label="value")
    try:
        function(**{**valid, name: value})
    except ESCAPES as err:  # pragma: no cover - the failure this test exists to catch
        pytest.fail(f"{entry}({name}={value!r:.60}) raised {type(err).__name__}: {err}")
    except ValueError as err:
        message = str(err)
        assert message and len(message) < 20_000
        by_item = entry == "merge_specs" and re.match(r"spec \d+ is a", message)  # an item's
        # pydantic's errors name the field and show the input (input_value=...) themselves
        named = isinstance(err, ValidationError) or _named(message, name, value) or by_item
        assert named, f"{entry}({name}={value!r:.60}): {message[:300]}"


def test_every_public_function_is_audited() -> None:
    functions = {
        name
        for name in kvschema.__all__
        if inspect.isfunction(getattr(kvschema, name)) and not name.startswith("_")
    }
    assert functions <= set(CALLS), functions - set(CALLS)


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"available_bytes": None}, "available_bytes must be an int or one int per stage"),
        ({"available_bytes": 1.5e9}, "available_bytes must be an int or one int per stage"),
        ({"available_bytes": "80GiB"}, "available_bytes must be an int or one int per stage"),
        ({"available_bytes": 10**40}, "available_bytes must be at most 9007199254740991"),
        ({"available_bytes": [2**30, 2**30]}, "one int per stage (1), got 2 figures"),
        ({"max_model_len": 2**60}, "max_model_len must be at most 9007199254740991"),
        ({"pipeline_parallel_size": 10**40}, "pipeline_parallel_size must be at most 100000"),
        ({"pipeline_parallel_size": 2**53}, "pipeline_parallel_size must be at most 100000"),
        ({"tensor_parallel_size": 10**400}, "an integer of 1329 bits"),
    ],
)
def test_plan_arguments_are_refused_by_name(arguments: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        plan_cache(**{**CALLS["plan_cache"][1], "layers": {"a": FULL}, **arguments})
    assert says in str(info.value)


def test_huge_layer_counts_and_indices_are_refused_without_building_them() -> None:
    common = {"page_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"}
    with pytest.raises(InvalidArgumentError, match="num_layers must be at most 100000"):
        kvschema.groups_from_mask_details(None, num_layers=10**12, **common)
    with pytest.raises(MaskDetailsError, match="layer index 1000000000000 is beyond the 100000"):
        kvschema.groups_from_mask_details({10**12: {"mask_type": "full"}}, **common)
    with pytest.raises(MaskDetailsError, match="layer indices >= 0"):
        kvschema.groups_from_mask_details({"9" * 5000: {"mask_type": "full"}}, **common)


# -- errors pickle whatever their fields hold -------------------------------------------------

ERRORS = [KVSchemaError, InvalidArgumentError, DTypeError, SpecMergeError, MaskDetailsError]
ERRORS.append(InsufficientMemoryError)


def _generator() -> Any:
    return (i for i in range(2))  # a generator does not pickle


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner)


FIELD_VALUES = st.recursive(HOSTILE | st.builds(_generator), _nested, max_leaves=6)


@given(
    cls=st.sampled_from(ERRORS),
    message=st.text(max_size=50),
    fields=st.dictionaries(st.text(min_size=1, max_size=8), FIELD_VALUES, max_size=4),
)
def test_every_error_pickles_whatever_its_fields_hold(
    cls: type[KVSchemaError], message: str, fields: dict[str, Any]
) -> None:
    err = cls(message, **fields)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and back.message == message and str(back) == str(err)
    assert back.error_type == cls.error_type
    assert back.fields.keys() == fields.keys()
    for key, value in fields.items():
        try:
            same = pickle.loads(pickle.dumps(value))
        except Exception:
            assert isinstance(back.fields[key], str)  # shown as text
        else:
            if not (isinstance(value, float) and math.isnan(value)):
                assert type(back.fields[key]) is type(same)


def test_an_error_in_its_own_fields_pickles() -> None:
    err = InvalidArgumentError("loop", message="a field named message", self=None)
    err.fields["self"] = err
    err.fields["nested"] = [err, {"again": err}]
    with open(__file__, encoding="utf-8") as handle:
        err.fields["file"] = handle
        back = pickle.loads(pickle.dumps(err))
    assert back.fields["file"].startswith("<_io.TextIOWrapper")
    assert back.fields["message"] == "a field named message"
    assert back.fields["self"] == "<InvalidArgumentError: loop>"
    assert back.fields["nested"] == ["<InvalidArgumentError: loop>", {"again": back.fields["self"]}]


# -- sizes stay within 2**53 - 1, and a plan re-validates -------------------------------------


def test_the_bound_is_one_everywhere() -> None:
    assert MAX_INT == SPEC_MAX_INT == 2**53 - 1


@pytest.mark.parametrize(
    "build",
    [
        lambda: FullAttentionSpec(
            page_size=2**40, num_kv_heads=2**20, head_size=2**20, dtype="fp32"
        ),
        lambda: MambaSpec(page_size=1, shapes=[[2**40, 2**40]], dtype="fp32"),
        lambda: kvschema.UniformTypeSpec(
            page_size=2**20,  # eight members of 2**51 bytes a page: 2**54 in all
            kv_cache_specs={
                f"l{i}": FullAttentionSpec(
                    page_size=2**20, num_kv_heads=2**19, head_size=2**9, dtype="fp32"
                )
                for i in range(8)
            },
        ),
    ],
)
def test_a_page_past_the_json_bound_is_refused_saying_so(build: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match=r"page_size_bytes would be \d+, more than 2\*\*53 - 1"):
        build()


def test_a_plan_whose_numbers_pass_the_bound_is_refused_saying_which() -> None:
    state = MambaSpec(page_size=1, shapes=[[4]], dtype="fp32")
    with pytest.raises(InvalidArgumentError, match=r"\$\.inputs\.tokens_in_flight would be"):
        plan_cache(
            {"a": state}, available_bytes=2**40, max_model_len=4096, max_num_batched_tokens=2**52
        )


def _ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [i for item in value.values() for i in _ints(item)]
    if isinstance(value, list):
        return [i for item in value for i in _ints(item)]
    return []


@st.composite
def _plan_arguments(draw: st.DrawFn) -> dict[str, Any]:
    specs = draw(st.lists(layer_specs(), min_size=1, max_size=6))
    count = draw(st.integers(len(specs), 12))
    layers = {f"layer.{i}": specs[i % len(specs)] for i in range(count)}
    pp = draw(st.integers(1, min(3, count)))
    budget = draw(st.integers(1, 2**53 - 1) | st.sampled_from([2**30, 80 * 2**30]))
    return {
        "layers": layers,
        "available_bytes": budget if draw(st.booleans()) else [budget] * pp,
        "max_model_len": draw(st.integers(1, 2**53 - 1) | st.integers(1, 1 << 20)),
        "max_num_batched_tokens": draw(st.integers(1, 2**53 - 1) | st.integers(1, 1 << 16)),
        "pipeline_parallel_size": pp,
        "strategy": draw(st.sampled_from(["hybrid", "per_layer"])),
    }


@settings(max_examples=150)
@given(arguments=_plan_arguments())
def test_a_plan_always_revalidates_and_stays_exact(arguments: dict[str, Any]) -> None:
    try:
        plan = plan_cache(**arguments)
    except KVSchemaError as err:  # it does not fit, passes the bound, or vLLM cannot group it
        event(f"refused: {type(err).__name__}")
        return  # (a pydantic error about the plan's own fields would fail this test)
    event("planned")
    text = plan.model_dump_json()
    assert CachePlan.model_validate_json(text) == plan
    assert all(abs(i) <= 2**53 - 1 for i in _ints(plan.model_dump(mode="json")))
    assert plan.config is not None
    config_text = plan.config.model_dump_json()
    assert CacheGroupsConfig.model_validate_json(config_text) == plan.config
    assert math.isfinite(plan.max_concurrency or 0.0)


def test_jax_dtypes_of_unknown_kinds_are_dtype_errors() -> None:
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    unknown = [jnp.complex64, jax.dtypes.float0, jnp.dtype("int4"), jax.random.key(0).dtype]
    for dtype in unknown:
        with pytest.raises(DTypeError):
            kvschema.canonical_dtype(dtype)
        with pytest.raises(ValueError, match="dtype"):
            FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=8, dtype=dtype)
    assert kvschema.canonical_dtype(jnp.bfloat16) == "bfloat16"
