"""Byte sizes as people write them (``40GiB``, ``80GB``, ``80G``, ``512Mi``) and as tables show them.

What each suffix means (the same bytes as vLLM's ``--kv-cache-memory-bytes`` reads them, where
vLLM takes the form at all):

- ``KB``, ``MB``, ``GB``, ``TB`` (any case): powers of 1000, as the SI writes them;
- ``KiB``, ``MiB``, ``GiB``, ``TiB`` and ``Ki``, ``Mi``, ``Gi``, ``Ti`` (any case): powers of 1024;
- one letter, case-sensitive as in vLLM's ``human_readable_int``
  (vllm/utils/argparse_utils.py): upper case ``K``, ``M``, ``G``, ``T`` are powers of 1024
  (``80G`` = 80 GiB), lower case ``k``, ``m``, ``g``, ``t`` powers of 1000 (``80g`` = 80 GB);
- ``B`` or nothing: bytes.

>>> parse_size("40GiB"), parse_size("1.5 GB"), parse_size("4096")
(42949672960, 1500000000, 4096)
>>> parse_size("80G") == parse_size("80Gi") == parse_size("80GiB") == 80 * 1024**3
True
>>> parse_size("80g") == parse_size("80GB") == 80 * 10**9
True
>>> human_bytes(42949672960), human_bytes(1536)
('40.00 GiB', '1.50 KiB')
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from kvschema.errors import InvalidArgumentError

__all__ = ["UNITS_HELP", "human_bytes", "parse_size", "parse_sizes"]

_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4}
#: Suffixes read in any case: bytes, SI (powers of 1000) and IEC (powers of 1024) units.
_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    **{f"{p}b": 1000**n for p, n in _POWERS.items()},
    **{f"{p}ib": 1024**n for p, n in _POWERS.items()},
    **{f"{p}i": 1024**n for p, n in _POWERS.items()},
}
#: One-letter suffixes, case-sensitive as vLLM reads them: upper case binary, lower decimal.
_LETTERS: dict[str, int] = {
    **{p.upper(): 1024**n for p, n in _POWERS.items()},
    **{p: 1000**n for p, n in _POWERS.items()},
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*\Z")
#: The most characters of a size read (a longer one is no size anyone means).
_LONGEST = 64

#: What ``--memory`` help says the units are.
UNITS_HELP = (
    "GB/MB (powers of 1000), GiB/Gi/MiB (powers of 1024), or as vLLM reads them: G, M "
    "(powers of 1024), g, m (powers of 1000)"
)


def _multiplier(unit: str) -> int | None:
    if unit in _LETTERS:
        return _LETTERS[unit]
    return _UNITS.get(unit.lower()) if len(unit) != 1 or unit.lower() == "b" else None


def parse_size(text: str) -> int:
    """Bytes from a number and an optional unit (see the module's list of units).

    >>> parse_size("2 TiB") // 2**40, parse_size("512Mi") // 2**20, parse_size("3k")
    (2, 512, 3000)
    """
    match = _SIZE.match(text) if len(text) <= _LONGEST else None
    unit = match.group(2) if match else ""
    factor = _multiplier(unit) if match else None
    if match is None or factor is None:
        raise InvalidArgumentError(
            f"size {text[:_LONGEST]!r} is not a number of bytes with an optional unit "
            "(B; KB, MB, GB, TB: powers of 1000; KiB, MiB, GiB, TiB or Ki, Mi, Gi, Ti: powers "
            "of 1024; K, M, G, T: powers of 1024 and k, m, g, t: powers of 1000, as vLLM "
            "reads them)",
            size=text[:_LONGEST],
        )
    try:
        value = Decimal(match.group(1)) * factor
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
