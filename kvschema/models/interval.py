"""A byte count that is known only within bounds: ``{low, point, high}``, never false precision.

Estimates of memory (weights counted from a config, activation peaks, CUDA-graph pools) are
carried as an :class:`Interval`: ``point`` is the best guess and ``[low, high]`` is the range the
evidence allows.  An exact figure is an interval of width zero.

>>> weights = Interval.exact(16_060_522_496)
>>> activation = Interval(low=2**30, point=3 * 2**29, high=2**31)
>>> total = weights + activation
>>> total.low, total.high, total.is_exact
(17134264320, 18208006144, False)
"""

import math
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GIB", "Interval"]

#: One gibibyte, the unit vLLM prints memory in.
GIB = 1 << 30


class Interval(BaseModel):
    """Bytes within ``[low, high]``, best guess ``point``; ``low <= point <= high``, all ``>= 0``.

    >>> try:
    ...     Interval(low=5, point=3, high=9)
    ... except ValueError as err:
    ...     print(err.errors()[0]["msg"])
    Value error, an interval needs low <= point <= high, got low=5 point=3 high=9
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    low: int = Field(ge=0, strict=True, description="The least the quantity can be, in bytes.")
    point: int = Field(ge=0, strict=True, description="The best estimate, in bytes.")
    high: int = Field(ge=0, strict=True, description="The most the quantity can be, in bytes.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.low <= self.point <= self.high:
            raise ValueError(
                f"an interval needs low <= point <= high, got low={self.low} "
                f"point={self.point} high={self.high}"
            )
        return self

    @classmethod
    def exact(cls, value: int) -> "Interval":
        """An exactly known count.

        >>> Interval.exact(7).is_exact
        True
        """
        return cls(low=value, point=value, high=value)

    @classmethod
    def around(cls, point: float, *, below: float, above: float, extra: float = 0.0) -> "Interval":
        """``point`` widened by the fractions ``below`` / ``above`` (and ``extra`` bytes above).

        Fractional bytes round outwards: ``low`` down, ``high`` up.

        >>> Interval.around(1000, below=0.1, above=0.5, extra=24)
        Interval(low=900, point=1000, high=1524)
        """
        low = math.floor(max(point * (1.0 - below), 0.0))
        high = math.ceil(point * (1.0 + above) + extra)
        mid = min(max(round(point), low), high)
        return cls(low=low, point=mid, high=high)

    @property
    def is_exact(self) -> bool:
        """Whether the bounds coincide."""
        return self.low == self.high

    def __add__(self, other: "Interval") -> "Interval":
        return Interval(
            low=self.low + other.low, point=self.point + other.point, high=self.high + other.high
        )

    def scaled(self, factor: float) -> "Interval":
        """Every bound times ``factor`` (>= 0), rounded outwards.

        >>> Interval(low=10, point=11, high=13).scaled(0.5)
        Interval(low=5, point=6, high=7)
        """
        low = math.floor(self.low * factor)
        high = math.ceil(self.high * factor)
        return Interval(low=low, point=min(max(round(self.point * factor), low), high), high=high)

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within ``[low, high]``.

        >>> Interval(low=1, point=2, high=3).contains(3)
        True
        """
        return self.low <= value <= self.high

    def gib(self) -> tuple[float, float, float]:
        """``(low, point, high)`` in GiB, rounded to 2 places as vLLM prints memory.

        >>> Interval.exact(3 * 2**29).gib()
        (1.5, 1.5, 1.5)
        """
        return (
            round(self.low / GIB, 2),
            round(self.point / GIB, 2),
            round(self.high / GIB, 2),
        )
