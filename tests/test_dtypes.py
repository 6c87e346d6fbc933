"""Dtype names, aliases, objects and byte sizes."""

import pytest
from hypothesis import given

from kvschema import DTYPE_ALIASES, DTYPE_SIZES, DTypeError, canonical_dtype, dtype_size
from kvschema.strategies import dtype_inputs


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("bf16", "bfloat16"),
        ("fp16", "float16"),
        ("half", "float16"),
        ("float", "float32"),
        ("fp8", "float8_e4m3fn"),
        ("fp8_e4m3", "float8_e4m3fn"),
        ("fp8_e5m2", "float8_e5m2"),
        ("u8", "uint8"),
    ],
)
def test_aliases_resolve_as_vllm_names_them(alias: str, canonical: str) -> None:
    assert canonical_dtype(alias) == canonical


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("bfloat16", 2),
        ("float32", 4),
        ("float64", 8),
        ("float8_e4m3fn", 1),
        ("int8", 1),
        ("bool", 1),
    ],
)
def test_sizes(name: str, size: int) -> None:
    assert dtype_size(name) == size


@given(dtype_inputs)
def test_every_accepted_name_is_canonical_after_one_step(name: str) -> None:
    canonical = canonical_dtype(name)
    assert canonical in DTYPE_SIZES
    assert canonical_dtype(canonical) == canonical
    assert dtype_size(name) == DTYPE_SIZES[canonical] >= 1


def test_aliases_point_at_canonical_names() -> None:
    assert set(DTYPE_ALIASES.values()) <= set(DTYPE_SIZES)
    assert not set(DTYPE_ALIASES) & set(DTYPE_SIZES)


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(
        DTypeError, match=r"unknown dtype 'f12'.*bfloat16.*or an alias such as bf16"
    ):
        canonical_dtype("f12")


def test_wrong_case_suggests_the_name() -> None:
    with pytest.raises(DTypeError, match=r"did you mean 'bf16'"):
        canonical_dtype("BF16")


@pytest.mark.parametrize("name", ["int4", "uint4", "float4_e2m1fn", "int2"])
def test_sub_byte_dtypes_are_refused_never_zero(name: str) -> None:
    with pytest.raises(DTypeError, match="less than a byte"):
        dtype_size(name)


@pytest.mark.parametrize("value", [float, int, bool, None, 3, 2.0, b"bf16", object()])
def test_python_values_are_not_dtypes(value: object) -> None:
    with pytest.raises(DTypeError, match="unknown dtype"):
        canonical_dtype(value)


def test_auto_must_be_resolved_first() -> None:
    with pytest.raises(DTypeError, match="'auto' must be resolved"):
        canonical_dtype("auto")


def test_torch_like_dtype_objects_by_their_name() -> None:
    # A stand-in with torch's module and str(), so the test needs no torch.
    fake = type("dtype", (), {"__module__": "torch", "__str__": lambda self: "torch.bfloat16"})()
    assert canonical_dtype(fake) == "bfloat16"


def test_numpy_objects_when_numpy_is_there() -> None:
    np = pytest.importorskip("numpy")
    assert canonical_dtype(np.float16) == "float16"
    assert canonical_dtype(np.dtype("bool")) == "bool"
    assert canonical_dtype(np.dtype("int8")) == "int8"
    with pytest.raises(DTypeError, match="complex64"):
        canonical_dtype(np.complex64)


def test_jax_objects_when_jax_is_there() -> None:
    jnp = pytest.importorskip("jax.numpy")
    assert canonical_dtype(jnp.bfloat16) == "bfloat16"
    assert canonical_dtype(jnp.dtype("bfloat16")) == "bfloat16"
    assert canonical_dtype(jnp.dtype("float8_e4m3fn")) == "float8_e4m3fn"
    assert canonical_dtype(jnp.float8_e5m2) == "float8_e5m2"
