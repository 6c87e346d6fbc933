"""What a reader of deploy files produces: documents with positions, the faults found, the limits.

>>> Document({"num_pages": 8}, _positions={("num_pages",): (1, 2)}).position(("num_pages", "x"))
(1, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kvschema.errors import KVSchemaError

__all__ = [
    "MAX_INT_DIGITS",
    "Document",
    "Format",
    "Limits",
    "LoadError",
    "Path_",
    "Problem",
    "check_int",
    "quote",
]

Format = Literal["yaml", "json", "toml"]
Path_ = tuple[Any, ...]

#: The most decimal digits an integer read from a file may have, in any base it is written in
#: (Python's own default limit for converting integers to and from text).
MAX_INT_DIGITS = 4300
_MAX_INT_BITS = 14284  # 2**14284 < 10**4300: every int of this many bits prints in 4300 digits


def check_int(value: int) -> bool:
    """Whether an integer read from a file is within :data:`MAX_INT_DIGITS` digits.

    >>> check_int(10**4299), check_int(16**10_000)
    (True, False)
    """
    return value.bit_length() <= _MAX_INT_BITS


def quote(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a message quotes input, not all of it).

    >>> quote("x" * 100, 20)
    "'xxxxxxxxxxxxxxxxx...(100 characters)"
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[: limit - 3]!r}"[:-1] + f"...({len(value)} characters)"
    try:
        shown = repr(value)
    except ValueError:  # an integer longer than Python prints
        shown = f"<an integer of {value.bit_length()} bits>"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class LoadError(KVSchemaError):
    """A file that cannot be read, decoded, parsed, or kept within the limits (exit code 2)."""

    error_type = "load"


@dataclass(frozen=True)
class Limits:
    """Bounds that end hostile input early; each has a CLI flag.

    >>> Limits().max_bytes
    16777216
    """

    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 64
    max_values: int = 1_000_000


@dataclass(frozen=True)
class Problem:
    """A fault found while reading a document (a duplicate key): the document is wrong."""

    path: Path_
    message: str
    error_type: str
    line: int | None = None
    column: int | None = None


@dataclass
class Document:
    """One document of a file: its data, where each value stands, and faults found on reading."""

    data: Any
    index: int = 0
    problems: list[Problem] = field(default_factory=list)
    _positions: dict[Path_, tuple[int, int]] | None = None
    #: Reads the positions when first asked for (the reader sets it: JSON is parsed without them).
    _locate: Callable[[], dict[Path_, tuple[int, int]]] | None = None

    def position(self, path: Path_) -> tuple[int, int] | None:
        """1-based (line, column) of the value (or its key) at ``path``, or of its nearest parent."""
        if self._positions is None:
            self._positions = self._locate() if self._locate is not None else {}
        while True:
            found = self._positions.get(path)
            if found is not None or not path:
                return found
            path = path[:-1]
