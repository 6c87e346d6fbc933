"""Checks of a library entry point's arguments, raising kvschema's errors (never ``TypeError``).

>>> positive_int_arg("num_pages", 8)
8
"""

from __future__ import annotations

from typing import Any

from kvschema.errors import InvalidArgumentError

__all__ = ["positive_int_arg"]


def positive_int_arg(name: str, value: Any) -> int:
    """``value`` when it is an int >= 1 (not a bool), else an :class:`InvalidArgumentError`.

    >>> positive_int_arg("max_model_len", 0)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: max_model_len must be an int >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}", **{name: value})
    return value
