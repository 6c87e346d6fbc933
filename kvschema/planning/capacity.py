"""What a budget holds, once the layout is planned: vLLM 0.33's admission check, auto-fit and
capacity as arithmetic on one plan, so that many budgets cost one plan.

A :class:`CacheShape` is the plan of a model for one parallel layout, one batch size and one
``max_model_len`` at a budget no rank could have: it fixes the groups, what a page index costs on
each pipeline stage, and the pages one request takes at any length.  :meth:`CacheShape.outcome`
then answers for real budgets exactly as ``plan_cache`` would (a property the tests check), and as
``get_kv_cache_configs`` (``vllm/v1/core/kv_cache_planning.py``) decides:

- each stage's check memory is its budget less one block (the null block the block pool keeps);
- ``max_model_len=-1`` (auto-fit, ``_auto_fit_max_model_len``): the largest length in
  ``[1, the model's]`` whose request fits every stage's check memory; none: refused;
- otherwise each stage in order must have check memory above 0 ("No available memory") and hold
  one request of ``max_model_len`` (else the ValueError with the estimated length);
- ``num_blocks`` is the smallest stage's ``budget // block bytes``; the concurrency is
  ``num_blocks / pages per request`` and the token count ``int(concurrency x max_model_len)``
  (``get_kv_cache_capacity``).

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> shape = CacheShape.of({f"layer.{i}": spec for i in range(32)}, max_model_len=8192,
...                       max_num_batched_tokens=2048)
>>> out = shape.outcome([8 * 2**30])
>>> out.fits, out.num_pages, out.max_concurrency, out.kv_cache_size_tokens
(True, 4096, 8.0, 65536)
>>> shape.outcome([2**30]).max_model_len_estimate  # 511 blocks beside the null block
8176
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from kvschema.planning.plan import CachePlan
from kvschema.planning.planner import plan_cache
from kvschema.spec.base import MAX_INT

__all__ = ["CacheShape", "Failure", "Outcome"]

#: A budget no rank has (2**53 - 1 bytes, the largest a plan takes): the shape's plan fits,
#: and fixes only the layout.
_UNBOUNDED = MAX_INT

Failure = Literal["no_memory", "max_model_len", "auto_fit"]


class Outcome(NamedTuple):
    """What vLLM 0.33 does with per-stage budgets: start, or refuse and why."""

    fits: bool
    #: Why it refuses: no block beyond the null one, one request too long, auto-fit found none.
    failure: Failure | None
    #: The stage vLLM refuses on (the first that fails; auto-fit: the one that limits it).
    stage: int | None
    #: The length it runs with (auto-fit's result, or as asked).
    max_model_len: int
    #: When one request does not fit: the longest that would (vLLM's estimate; 0: none).
    max_model_len_estimate: int | None
    #: One request's bytes on the refusing stage, and that stage's budget less one block.
    needed_bytes: int | None
    check_bytes: int | None
    num_pages: int | None
    max_concurrency: float | None
    kv_cache_size_tokens: int | None
    #: Auto-fit: the check memory of the stage that limited the length (vLLM logs it).
    limiting_check_bytes: int | None = None


@dataclass
class CacheShape:
    """One model's planned layout, for any budget; see :mod:`kvschema.planning.capacity`."""

    plan: CachePlan
    #: What one page index costs on each pipeline stage's ranks.
    stage_page_bytes: tuple[int, ...]
    _pages: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls,
        layers: Mapping[str, Any],
        *,
        max_model_len: int,
        max_num_batched_tokens: int,
        **settings: Any,
    ) -> CacheShape:
        """Plan ``layers`` once (``settings`` are :func:`plan_cache`'s) and keep the layout.

        The length is checked against the model's own as ``plan_cache`` checks it.
        """
        pp = settings.get("pipeline_parallel_size") or 1
        plan = plan_cache(
            layers,
            available_bytes=[_UNBOUNDED] * pp if isinstance(pp, int) else _UNBOUNDED,
            max_model_len=max_model_len,
            max_num_batched_tokens=max_num_batched_tokens,
            **settings,
        )
        return cls(plan, tuple(stage.bytes_per_page for stage in plan.stages))

    @property
    def has_kv_cache(self) -> bool:
        """Whether any layer keeps a cache (an attention-free model plans none)."""
        return self.plan.has_kv_cache

    @property
    def max_model_len(self) -> int:
        """The length the shape was planned at (the model's own under auto-fit)."""
        return self.plan.inputs.max_model_len

    def pages_at(self, max_model_len: int) -> int:
        """Page indices one request of ``max_model_len`` tokens takes (memoized)."""
        pages = self._pages.get(max_model_len)
        if pages is None:
            pages = self._pages[max_model_len] = self.plan.pages_at(max_model_len)
        return pages

    def needed_bytes(self, stage: int, max_model_len: int) -> int:
        """What one request of ``max_model_len`` needs on ``stage`` (null block excluded)."""
        return self.stage_page_bytes[stage] * self.pages_at(max_model_len)

    def longest(self, stage: int, check_bytes: int, upper: int) -> int:
        """vLLM's estimate: the longest request in ``[1, upper]`` ``check_bytes`` hold; 0: none."""
        if self.needed_bytes(stage, 1) > check_bytes:
            return 0
        low, high = 1, upper
        while low < high:
            mid = (low + high + 1) // 2
            if self.needed_bytes(stage, mid) <= check_bytes:
                low = mid
            else:
                high = mid - 1
        return low

    def outcome(
        self, budgets: Sequence[int], *, max_model_len: int | None = None, auto: bool = False
    ) -> Outcome:
        """vLLM's start-up with these per-stage budgets (one figure per pipeline stage).

        ``max_model_len`` defaults to the shape's; ``auto`` is ``--max-model-len auto``, which
        searches up to it.
        """
        length = self.max_model_len if max_model_len is None else max_model_len
        if len(budgets) != len(self.stage_page_bytes) and self.has_kv_cache:
            raise ValueError(
                f"{len(budgets)} budgets for {len(self.stage_page_bytes)} pipeline stages"
            )
        if not self.has_kv_cache:
            return Outcome(True, None, None, length, None, None, None, 1, None, None)
        checks = [b - page for b, page in zip(budgets, self.stage_page_bytes, strict=True)]
        limiting = None
        if auto:
            fitted, limiting, stage = length, checks[0], 0
            for index, check in enumerate(checks):
                longest = self.longest(index, check, length) if check > 0 else 0
                if longest < fitted:
                    fitted, limiting, stage = longest, check, index
            if fitted <= 0:
                return Outcome(False, "auto_fit", stage, length, 0, None, None, None, None, None)
            length = fitted
        for index, check in enumerate(checks):
            if check <= 0:
                needed = self.needed_bytes(index, length)
                return Outcome(
                    False, "no_memory", index, length, 0, needed, check, None, None, None
                )
            needed = self.needed_bytes(index, length)
            if needed > check:
                estimate = self.longest(index, check, length)
                return Outcome(
                    False, "max_model_len", index, length, estimate, needed, check, None, None, None
                )
        pages = min(b // page for b, page in zip(budgets, self.stage_page_bytes, strict=True))
        concurrency = pages / self.pages_at(length)
        return Outcome(
            True,
            None,
            None,
            length,
            None,
            None,
            None,
            pages,
            concurrency,
            int(concurrency * length),
            limiting,
        )
