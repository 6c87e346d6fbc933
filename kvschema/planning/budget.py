"""The KV-cache budget of one rank, as vLLM 0.33 computes it, with every term an interval.

``Worker.determine_available_memory`` (``vllm/v1/worker/gpu_worker.py``) gives the KV cache
``requested_memory - non_kv_cache_memory - cudagraph_memory_estimate_applied``, where
``requested_memory = ceil(total x gpu_memory_utilization)`` (``request_memory`` in
``vllm/v1/worker/utils.py``), ``non_kv_cache_memory`` is the weights, the memory kept since the
baseline snapshot (non-torch) and the profile run's transient peak (``memory_profiling``), and
the CUDA-graph estimate is applied by default (``VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1``).
With ``kv_cache_memory_bytes`` set, the profile is skipped and that figure is the budget.

Never overstated: ``low`` takes the smallest device total and the largest of every term, ``high``
the reverse.

>>> from kvschema.models.interval import Interval
>>> zero = Interval.exact(0)
>>> stage = stage_budget(0, total=Interval.exact(80 * 2**30), utilization=0.9,
...                      weights=Interval.exact(16 * 2**30), activation=Interval.exact(2**30),
...                      non_torch=zero, cuda_graphs=zero, startup=zero)
>>> stage.requested.point / 2**30, stage.available.point / 2**30
(72.0, 55.0)
"""

import math
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kvschema.errors import InvalidArgumentError
from kvschema.models.interval import GIB, Interval

__all__ = ["ByteRange", "StageBudget", "check_utilization", "requested_memory", "stage_budget"]


class ByteRange(BaseModel):
    """Bytes within ``[low, high]`` with best guess ``point``; unlike an ``Interval`` it may be
    negative (a budget the weights already overrun).

    >>> ByteRange(low=-2**30, point=2**31, high=3 * 2**30).gib()  # the low end overrun by 1 GiB
    (-1.0, 2.0, 3.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    low: int = Field(strict=True, description="The least it can be, in bytes.")
    point: int = Field(strict=True, description="The best estimate, in bytes.")
    high: int = Field(strict=True, description="The most it can be, in bytes.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.low <= self.point <= self.high:
            raise ValueError(
                f"a range needs low <= point <= high, got low={self.low} point={self.point} "
                f"high={self.high}"
            )
        return self

    @classmethod
    def exact(cls, value: int) -> "ByteRange":
        """An exactly known figure.

        >>> ByteRange.exact(4).is_exact
        True
        """
        return cls(low=value, point=value, high=value)

    @property
    def is_exact(self) -> bool:
        """Whether the bounds coincide."""
        return self.low == self.high

    def gib(self) -> tuple[float, float, float]:
        """``(low, point, high)`` in GiB, to 2 places."""
        return (
            round(self.low / GIB, 2),
            round(self.point / GIB, 2),
            round(self.high / GIB, 2),
        )


class StageBudget(BaseModel):
    """One rank of one pipeline stage: the memory vLLM requests, each term, and what is left.

    Every rank of a stage holds the same (tensor parallelism splits evenly), so a stage's
    budget is each of its ranks'.  Pinned (``kv_cache_memory_bytes``), ``requested`` is None
    and ``available`` is exact.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    stage: int = Field(ge=0)
    #: ``ceil(total x gpu_memory_utilization)``; None when the budget is pinned.
    requested: Interval | None
    weights: Interval | None
    activation: Interval | None
    non_torch: Interval | None
    cuda_graphs: Interval | None
    #: CUDA context, NCCL and cuBLAS: outside the budget, but start-up needs room for them.
    startup: Interval | None
    #: What the KV cache gets on each rank of this stage.
    available: ByteRange

    @property
    def pinned(self) -> bool:
        """Whether the budget was given (``kv_cache_memory_bytes``), not computed."""
        return self.requested is None


def check_utilization(value: float) -> float:
    """``gpu_memory_utilization`` in ``(0, 1]``, as vLLM's ``CacheConfig`` accepts it.

    >>> check_utilization(1.5)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: gpu_memory_utilization must be in (0, 1], got 1.5
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= 1
        or value != value
    ):
        raise InvalidArgumentError(
            f"gpu_memory_utilization must be in (0, 1], got {value!r}",
            gpu_memory_utilization=value,
        )
    return float(value)


def requested_memory(total: int, utilization: float) -> int:
    """``math.ceil(total x utilization)``, as ``request_memory`` computes it (a float product).

    >>> requested_memory(85_020_524_544, 0.9)
    76518472090
    """
    return math.ceil(total * utilization)


def stage_budget(
    stage: int,
    *,
    total: Interval,
    utilization: float,
    weights: Interval,
    activation: Interval,
    non_torch: Interval,
    cuda_graphs: Interval,
    startup: Interval,
) -> StageBudget:
    """One stage's budget: ``low`` with the least memory and the most of every term."""
    requested = Interval(
        low=requested_memory(total.low, utilization),
        point=requested_memory(total.point, utilization),
        high=requested_memory(total.high, utilization),
    )
    taken = weights + activation + non_torch + cuda_graphs
    available = ByteRange(
        low=requested.low - taken.high,
        point=requested.point - taken.point,
        high=requested.high - taken.low,
    )
    return StageBudget(
        stage=stage,
        requested=requested,
        weights=weights,
        activation=activation,
        non_torch=non_torch,
        cuda_graphs=cuda_graphs,
        startup=startup,
        available=available,
    )
