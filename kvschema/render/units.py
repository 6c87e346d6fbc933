"""Byte sizes as people write them (``40GiB``, ``80GB``, ``512MiB``) and as tables show them.

>>> parse_size("40GiB"), parse_size("1.5 GB"), parse_size("4096")
(42949672960, 1500000000, 4096)
>>> human_bytes(42949672960), human_bytes(1536)
('40.00 GiB', '1.50 KiB')
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from kvschema.errors import InvalidArgumentError

__all__ = ["human_bytes", "parse_size", "parse_sizes"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*\Z")


def parse_size(text: str) -> int:
    """Bytes from ``N``, ``N B``, ``N KB/MB/GB/TB`` (powers of 1000) or ``N KiB/MiB/GiB/TiB``."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise InvalidArgumentError(
            f"size {text!r} is not a number of bytes with an optional unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
            size=text,
        )
    try:
        value = Decimal(match.group(1)) * _UNITS[unit]
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise InvalidArgumentError(f"size {text!r} is not a number", size=text) from None
    if value != value.to_integral_value():
        raise InvalidArgumentError(f"size {text!r} is not a whole number of bytes", size=text)
    if value < 1:
        raise InvalidArgumentError(f"size {text!r} must be at least one byte", size=text)
    return int(value)


def parse_sizes(text: str) -> list[int]:
    """One size, or one per pipeline stage separated by commas: ``40GiB,38GiB``."""
    return [parse_size(part) for part in text.split(",")]


def human_bytes(value: int) -> str:
    """A byte count in binary units with two decimals."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{value} B" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} TiB"
