"""Checks of a library entry point's arguments, raising kvschema's errors (never ``TypeError``).

>>> positive_int_arg("num_pages", 8)
8
>>> did_you_mean("bf17", ["bf16", "fp16", "int8"])
"; did you mean 'bf16'?"
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kvschema.errors import InvalidArgumentError

__all__ = [
    "MAX_INT",
    "close_matches",
    "did_you_mean",
    "optional_bool_arg",
    "positive_int_arg",
    "shown_value",
]

#: The largest integer kvschema takes or writes: 2**53 - 1, the largest every JSON reader
#: keeps exact (the same bound as ``kvschema.spec.base.MAX_INT``).
MAX_INT = 2**53 - 1

#: Why :data:`MAX_INT` bounds a value, as messages say it.
MAX_INT_WHY = f"2**53 - 1 = {MAX_INT}, the largest integer every JSON reader keeps exact"

#: The most characters of a value a message quotes.
_SHOWN = 120


def shown_value(value: Any, limit: int = _SHOWN) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe for any value.

    An integer too long to print in full is named by its size, and an object whose ``repr``
    fails by its type, so a message about a bad argument never fails itself.

    >>> shown_value(2**5000)
    'an integer of 5001 bits'
    >>> shown_value("x" * 500)[-20:]
    'xxxxx... (502 chars)'
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        sign = "a negative" if value < 0 else "an"
        return f"{sign} integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the argument's error
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} chars)"


def positive_int_arg(name: str, value: Any, limit: int = MAX_INT, why: str = MAX_INT_WHY) -> int:
    """``value`` when it is an int in ``1..limit`` (not a bool), else an :class:`InvalidArgumentError`.

    The limit is :data:`MAX_INT` unless another is given, with ``why`` it is the limit.

    >>> positive_int_arg("max_model_len", 0)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: max_model_len must be an int >= 1, got 0
    >>> positive_int_arg("max_model_len", 2**60)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: max_model_len must be at most 9007199254740991 (2**53 - 1 = 9007199254740991, the largest integer every JSON reader keeps exact), got 1152921504606846976
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            f"{name} must be an int >= 1, got {shown_value(value)}", **{name: value}
        )
    if value > limit:
        raise InvalidArgumentError(
            f"{name} must be at most {limit} ({why}), got {shown_value(value)}", **{name: value}
        )
    return value


def optional_bool_arg(name: str, value: Any) -> bool | None:
    """``value`` when it is True, False or None, else an :class:`InvalidArgumentError`.

    >>> optional_bool_arg("enable_prefix_caching", 1)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: enable_prefix_caching must be True, False or None, got 1
    """
    if value is not None and not isinstance(value, bool):
        raise InvalidArgumentError(
            f"{name} must be True, False or None, got {shown_value(value)}", **{name: value}
        )
    return value


def close_matches(word: Any, choices: Iterable[str], n: int = 3) -> list[str]:
    """The (at most ``n``) ``choices`` closest to ``word``, best first; none when nothing is close.

    Case is ignored when comparing; the choices are returned as given.

    >>> close_matches("FP16", ["fp16", "fp32", "bf16", "int8"])
    ['fp16', 'bf16']
    >>> close_matches("window", ["sliding_window", "page_size", "kind"])
    ['sliding_window']
    >>> close_matches(42, ["fp16"])
    []
    """
    if not isinstance(word, str) or not word or len(word) > 256:
        return []
    import difflib  # here: suggestions are for errors, and start-up pays for every import

    by_key: dict[str, str] = {}
    for choice in choices:
        by_key.setdefault(choice.lower(), choice)
    lowered = word.lower()
    matcher = difflib.SequenceMatcher(b=lowered)
    scores: dict[str, float] = {}
    for key in by_key:
        matcher.set_seq1(key)
        score = matcher.ratio()
        # a word inside a choice, or a choice inside it (window, sliding_window): close enough
        if min(len(key), len(lowered)) >= 4 and (lowered in key or key in lowered):
            score = max(score, 0.7)
        if key == lowered:  # the word in another case
            score = 2.0
        if score >= 0.7:
            scores[key] = score
    found = sorted(scores, key=lambda key: (-scores[key], key))[:n]
    return [by_key[key] for key in found]


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` (or ``'x', 'y' or 'z'``) for the choices close to ``word``, else "".

    A suffix for an error message about an unknown name: a field, a dtype, a model family.

    >>> did_you_mean("windw", ["window", "widow", "kind"])
    "; did you mean 'window' or 'widow'?"
    >>> did_you_mean("Float16", ["float16", "bfloat16", "float64", "int8"])
    "; did you mean 'float16', 'bfloat16' or 'float64'?"
    >>> did_you_mean("zzz", ["window"])
    ''
    """
    found = close_matches(word, choices)
    if not found:
        return ""
    quoted = [repr(choice) for choice in found]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"; did you mean {listed}?"
