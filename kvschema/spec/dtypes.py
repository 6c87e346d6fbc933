"""Cache dtypes: canonical names, the aliases engines use, and byte sizes.

A dtype is written in documents by its canonical name (``bfloat16``, ``float8_e4m3fn``…).
On input kvschema also takes the usual aliases (``bf16``, ``fp16``, ``half``, ``fp8`` …)
and, from Python, numpy / jax / ml_dtypes / torch dtype objects and scalar types, all
normalized to the canonical name.  numpy is never imported here: an object can only be a
numpy dtype if the caller already imported numpy.

>>> canonical_dtype("bf16"), canonical_dtype("fp8"), dtype_size("float32")
('bfloat16', 'float8_e4m3fn', 4)
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from kvschema._args import did_you_mean
from kvschema.errors import DTypeError

__all__ = [
    "DTYPE_ALIASES",
    "DTYPE_JSON_SCHEMA",
    "DTYPE_SIZES",
    "DTypeName",
    "canonical_dtype",
    "dtype_size",
]

#: Canonical dtype name → bytes per element.
DTYPE_SIZES: dict[str, int] = {
    "bfloat16": 2,
    "bool": 1,
    "float16": 2,
    "float32": 4,
    "float64": 8,
    "float8_e3m4": 1,
    "float8_e4m3": 1,
    "float8_e4m3b11fnuz": 1,
    "float8_e4m3fn": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2": 1,
    "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "int8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "uint8": 1,
}

#: Alias → canonical name.  ``fp8`` and ``fp8_e4m3`` are e4m3fn, as in vLLM's cache dtypes.
DTYPE_ALIASES: dict[str, str] = {
    "bf16": "bfloat16",
    "double": "float64",
    "e4m3": "float8_e4m3fn",
    "e5m2": "float8_e5m2",
    "f16": "float16",
    "f32": "float32",
    "f64": "float64",
    "float": "float32",
    "fp16": "float16",
    "fp32": "float32",
    "fp64": "float64",
    "fp8": "float8_e4m3fn",
    "fp8_e4m3": "float8_e4m3fn",
    "fp8_e4m3fn": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
    "fp8_inc": "float8_e4m3fn",
    "half": "float16",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "i8": "int8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
    "u8": "uint8",
}

# Element types narrower than a byte: a cache of them has no whole byte size per element.
_SUB_BYTE_BITS: dict[str, int] = {
    "float4_e2m1fn": 4,
    "float6_e2m3fn": 6,
    "float6_e3m2fn": 6,
    "int2": 2,
    "int4": 4,
    "uint2": 2,
    "uint4": 4,
}

_LOOKUP: dict[str, str] = {**{name: name for name in DTYPE_SIZES}, **DTYPE_ALIASES}
_ACCEPTED = sorted(_LOOKUP)
_PY_TYPES = (bool, int, float, complex, str, bytes, object)


def _unknown(shown: str, hint: str = "", name: str | None = None) -> DTypeError:
    """The error of an unknown dtype: the close names when there are (``name`` is what was
    looked up), else the canonical names (each has aliases; ``DTYPE_ALIASES`` lists them)."""
    close = did_you_mean(name, _ACCEPTED) if name is not None and not hint else ""
    if close:
        return DTypeError(f"unknown dtype {shown}{close}", dtype=shown)
    names = ", ".join(sorted(DTYPE_SIZES))
    return DTypeError(
        f"unknown dtype {shown}{hint}; valid names: {names} (or an alias such as bf16, fp16, "
        "fp8; kvschema.DTYPE_ALIASES lists them)",
        dtype=shown,
    )


def _from_name(name: str, shown: str) -> str:
    found = _LOOKUP.get(name)
    if found is not None:
        return found
    if name in _SUB_BYTE_BITS:
        raise DTypeError(
            f"dtype {shown} has {_SUB_BYTE_BITS[name]} bits per element, less than a byte; "
            "kvschema sizes caches in whole bytes per element (store packed values as uint8)",
            dtype=shown,
        )
    if name == "auto":
        raise DTypeError(
            "dtype 'auto' must be resolved to a concrete dtype first "
            "(layers_from_hf_config does this from the checkpoint's dtype)",
            dtype=shown,
        )
    lowered = name.lower()
    if lowered != name and (lowered in _LOOKUP or lowered in _SUB_BYTE_BITS):
        raise DTypeError(
            f"unknown dtype {shown} (names are lowercase: did you mean {lowered!r}?)", dtype=shown
        )
    raise _unknown(shown, name=name)


def _object_name(value: Any) -> str | None:
    """The dtype name of a numpy / jax / ml_dtypes / torch dtype object, or None."""
    module = type(value).__module__.split(".", 1)[0]
    if module == "torch":
        text = str(value)
        return text.removeprefix("torch.") if text.startswith("torch.") else None
    np = sys.modules.get("numpy")
    if np is None:
        return None
    try:
        name = np.dtype(value).name
    except (TypeError, ValueError, AttributeError):
        return None
    return str(name)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def canonical_dtype(dtype: Any) -> str:
    """The canonical name of ``dtype``: a name, an alias, or a numpy / jax / torch dtype object.

    Raises :class:`~kvschema.DTypeError` (a ``ValueError``) naming the value and the valid
    names when it is unknown, or when its elements are narrower than a byte.

    >>> canonical_dtype("half")
    'float16'
    >>> canonical_dtype("int4")
    Traceback (most recent call last):
    ...
    kvschema.errors.DTypeError: dtype 'int4' has 4 bits per element, less than a byte; kvschema sizes caches in whole bytes per element (store packed values as uint8)
    """
    if isinstance(dtype, str):
        found = _LOOKUP.get(dtype)  # the usual case: a name or an alias, looked up at once
        return found if found is not None else _from_name(dtype, _shown(dtype))
    if (
        any(dtype is t for t in _PY_TYPES)
        or dtype is None
        or isinstance(dtype, (int, float, bytes))
    ):
        raise _unknown(_shown(dtype), " (name a dtype such as 'bfloat16')")
    name = _object_name(dtype)
    if name is None:
        raise _unknown(f"{_shown(dtype)} of type {type(dtype).__qualname__}")
    return _from_name(name, f"{_shown(name)} (from {_shown(dtype)})")


def dtype_size(dtype: Any) -> int:
    """Bytes per element of ``dtype`` (any form :func:`canonical_dtype` takes).

    >>> dtype_size("bf16"), dtype_size("fp8_e5m2"), dtype_size("int64")
    (2, 1, 8)
    """
    size = DTYPE_SIZES.get(dtype) if type(dtype) is str else None  # a canonical name: at once
    return size if size is not None else DTYPE_SIZES[canonical_dtype(dtype)]


def _validate_dtype(value: Any) -> str:
    found = _LOOKUP.get(value) if type(value) is str else None  # the usual case, at once
    if found is not None:
        return found
    try:
        return canonical_dtype(value)
    except DTypeError as err:
        raise PydanticCustomError("dtype", "{reason}", {"reason": err.message}) from None


#: The JSON Schema of a dtype field: a canonical name or an alias.
DTYPE_JSON_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": _ACCEPTED,
    "description": "Cache element dtype: a canonical name or an alias "
    "(normalized to the canonical name on output).",
}

#: A pydantic field type: any dtype form on input, the canonical name in the model and on output.
DTypeName = Annotated[
    str,
    BeforeValidator(_validate_dtype),
    WithJsonSchema(DTYPE_JSON_SCHEMA, mode="validation"),
]
