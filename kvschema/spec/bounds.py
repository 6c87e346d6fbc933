"""Derived sizes stay within 2**53 - 1, the largest integer every JSON reader keeps exact.

A spec's fields are each at most that, but their product (a page's bytes) need not be: a spec
whose ``page_size_bytes`` would pass the bound is refused, saying so, rather than written as a
number a JavaScript or Go reader would round.

>>> page_bytes_error(65536) is None
True
>>> print(page_bytes_error(2**60))
page_size_bytes would be 1152921504606846976, more than 2**53 - 1 = 9007199254740991, the largest integer every JSON reader keeps exact; no engine pages that much
"""

from __future__ import annotations

from pydantic_core import PydanticCustomError

from kvschema._args import MAX_INT, MAX_INT_WHY, shown_value

__all__ = ["page_bytes_error"]


def page_bytes_error(value: int) -> PydanticCustomError | None:
    """The error of a page of ``value`` bytes past :data:`~kvschema._args.MAX_INT`, else None."""
    if value <= MAX_INT:
        return None
    return PydanticCustomError(
        "page_size_bytes_too_large",
        "page_size_bytes would be {value}, more than {why}; no engine pages that much",
        {"value": shown_value(value), "why": MAX_INT_WHY},
    )
