"""Capacity planning: pages from a memory budget, grouped as vLLM v1's hybrid allocator groups them.

``plan_cache`` answers offline what an engine learns at start-up: how the layers share page
tables, what one page index costs, how many pages a budget holds, and whether one request of
``max_model_len`` tokens fits at all.

>>> from kvschema import FullAttentionSpec, SlidingWindowSpec
>>> full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> local = SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16",
...                           sliding_window=1024)
>>> layers = {f"layer.{i}": full if i % 6 == 5 else local for i in range(12)}
>>> plan = plan_cache(layers, available_bytes=2 * 1024**3, max_model_len=8192,
...                   max_num_batched_tokens=2048)
>>> [len(g.layer_names) for g in plan.config.kv_cache_groups], plan.bytes_per_page
([2, 2, 2, 2, 2, 2], 131072)
>>> plan.config.num_pages, plan.pages_per_request
(16384, [193, 193, 193, 193, 193, 512])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kvschema.errors import InvalidArgumentError, KVSchemaError, positive_int_arg
from kvschema.grouping import hybrid_groups, layer_map, per_layer_groups
from kvschema.groups import CacheGroupsConfig, CacheGroupSpec
from kvschema.sharding import shard_spec
from kvschema.spec_base import _cdiv
from kvschema.specs import (
    CacheSpec,
    UniformTypeSpec,
)

__all__ = [
    "CachePlan",
    "GroupSummary",
    "InsufficientMemoryError",
    "PlanInputs",
    "StagePlan",
    "Strategy",
    "plan_cache",
    "shard_spec",
    "stage_sizes",
]

Strategy = Literal["hybrid", "per_layer"]


def _gib(value: int) -> str:
    return f"{value / 1024**3:.2f} GiB"


class InsufficientMemoryError(KVSchemaError):
    """The budget cannot hold one request of ``max_model_len`` tokens (as vLLM refuses to start).

    ``needed_bytes`` is what one request needs (the null page not included),
    ``available_bytes`` the budget as passed, ``max_model_len_estimate`` the longest request
    that fits (0 when not even one token does).

    >>> from kvschema import FullAttentionSpec
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> try:
    ...     plan_cache({"layer.0": spec}, available_bytes=2**20, max_model_len=8192,
    ...                max_num_batched_tokens=2048)
    ... except InsufficientMemoryError as err:
    ...     err.needed_bytes, err.max_model_len_estimate
    (33554432, 240)
    """

    error_type = "insufficient_memory"

    @property
    def needed_bytes(self) -> int:
        return int(self.fields.get("needed_bytes", 0))

    @property
    def available_bytes(self) -> int:
        return int(self.fields.get("available_bytes", 0))

    @property
    def max_model_len_estimate(self) -> int:
        return int(self.fields.get("max_model_len_estimate", 0))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlanInputs(_Frozen):
    """What a plan was made from."""

    available_bytes: list[int] = Field(description="Per-rank budget of each pipeline stage.")
    max_model_len: int
    max_num_batched_tokens: int
    tokens_in_flight: int = Field(
        description="Batched tokens a windowed layer must keep: batched * pp (* 2 async at pp=1)."
    )
    tensor_parallel_size: int
    pipeline_parallel_size: int
    async_scheduling: bool
    strategy: Strategy


class GroupSummary(_Frozen):
    """One planned group, as the plan table shows it."""

    kind: str
    type_id: str
    layers: int
    page_size_bytes: int = Field(description="Bytes of one page of one layer of the group.")
    group_page_bytes: int = Field(description="Bytes of one page across the group's layers.")
    pages_per_request: int = Field(description="Page indices one request takes in this group.")
    request_bytes: int = Field(
        description="What those pages cost: pages_per_request * bytes_per_page (a page index "
        "spans the whole pool, whichever group holds it)."
    )


class StagePlan(_Frozen):
    """One pipeline stage: its layers, what a page index costs there, and its page count."""

    stage: int
    layers: int
    first_layer: str
    last_layer: str
    available_bytes: int
    bytes_per_page: int
    num_pages: int
    needed_bytes: int = Field(description="What one request of max_model_len needs here.")
    padding_layers: int = Field(description="Empty layer slots in this stage's pools.")


class CachePlan(_Frozen):
    """A planned cache: its groups and page count, what they cost, and what they hold.

    >>> from kvschema import FullAttentionSpec
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> plan = plan_cache({"layer.0": spec, "layer.1": spec}, available_bytes=2**30,
    ...                   max_model_len=8192, max_num_batched_tokens=2048)
    >>> plan.num_pages, plan.pages_per_request, plan.max_concurrency
    (8192, [512], 16.0)
    >>> plan.concurrency_at(16384)
    8.0
    """

    config: CacheGroupsConfig
    strategy: Strategy
    bytes_per_page: int = Field(
        description="What one page index costs across a rank's layers (the largest stage's)."
    )
    pages_per_request: list[int] = Field(description="Pages one request needs, per group.")
    max_concurrency: float = Field(description="num_pages / Σ pages_per_request.")
    kv_cache_size_tokens: int = Field(description="int(max_concurrency * max_model_len).")
    padding_layers: int = Field(description="Empty layer slots the grouping adds (hybrid).")
    padding_bytes: int = Field(
        description="Bytes one request of max_model_len reserves in those empty slots."
    )
    groups: list[GroupSummary]
    stages: list[StagePlan]
    inputs: PlanInputs

    @property
    def num_pages(self) -> int:
        """The planned page count (the null page included, as engines count it)."""
        return self.config.num_pages

    def pages_at(self, max_model_len: int) -> int:
        """Page indices one request of ``max_model_len`` tokens takes, groups and pages fixed."""
        length = positive_int_arg("max_model_len", max_model_len)
        tokens = self.inputs.tokens_in_flight
        return sum(
            _pages_per_request(group.kv_cache_spec, length, tokens)
            for group in self.config.kv_cache_groups
        )

    def concurrency_at(self, max_model_len: int) -> float:
        """Requests of ``max_model_len`` tokens the planned pages hold at once (the capacity curve)."""
        return self.num_pages / self.pages_at(max_model_len)


def stage_sizes(num_layers: int, pipeline_parallel_size: int) -> list[int]:
    """Layers per pipeline stage as vLLM splits them: extras go to stages pp-2, pp-3, ...

    >>> stage_sizes(10, 4)
    [2, 3, 3, 2]
    """
    pp = positive_int_arg("pipeline_parallel_size", pipeline_parallel_size)
    if num_layers < pp:
        raise InvalidArgumentError(
            f"pipeline_parallel_size={pp} is more stages than the {num_layers} cache layers"
        )
    sizes = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    return sizes


# -- sizing -------------------------------------------------------------------------------


def _pages_per_request(spec: CacheSpec, max_model_len: int, tokens: int) -> int:
    if isinstance(spec, UniformTypeSpec):
        return spec.pages_per_request(max_model_len=max_model_len, max_num_batched_tokens=tokens)
    memory = spec.max_memory_usage_bytes(max_model_len=max_model_len, max_num_batched_tokens=tokens)
    return _cdiv(memory, spec.page_size_bytes)


def _largest_fitting_length(
    specs: list[CacheSpec], bytes_per_page: int, budget: int, max_model_len: int, tokens: int
) -> int:
    def fits(length: int) -> bool:
        pages = sum(_pages_per_request(spec, length, tokens) for spec in specs)
        return bytes_per_page * pages <= budget

    if not fits(1):
        return 0
    low, high = 1, max_model_len
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _budgets(available_bytes: int | Sequence[int], pp: int) -> list[int]:
    values = [available_bytes] * pp if isinstance(available_bytes, int) else list(available_bytes)
    if isinstance(available_bytes, bool) or len(values) != pp:
        raise InvalidArgumentError(
            f"available_bytes must be an int or one figure per stage ({pp}), got {available_bytes!r}"
        )
    return [positive_int_arg("available_bytes", value) for value in values]


def plan_cache(
    layers: Mapping[str, Any] | Sequence[CacheGroupSpec],
    *,
    available_bytes: int | Sequence[int],
    max_model_len: int,
    max_num_batched_tokens: int,
    strategy: Strategy = "hybrid",
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    async_scheduling: bool = False,
    specs_per_rank: bool = False,
) -> CachePlan:
    """Plan the cache of a model for a per-rank memory budget; see ``docs/planner.md``.

    >>> from kvschema import MambaSpec, SlidingWindowSpec
    >>> local = SlidingWindowSpec(page_size=16, num_kv_heads=4, head_size=64, dtype="bf16",
    ...                           sliding_window=512)
    >>> state = MambaSpec(page_size=16, shapes=[[256, 4]], dtype="fp32")  # 4 KiB, one page
    >>> plan = plan_cache({"a": local, "b": state}, available_bytes=2**26,
    ...                   max_model_len=4096, max_num_batched_tokens=256)
    >>> [g.kv_cache_spec.kind for g in plan.config.kv_cache_groups], plan.pages_per_request
    (['sliding_window', 'mamba'], [49, 1])

    ``layers`` maps layer name → spec for the whole model in order (or is a list of groups);
    specs are sharded for ``tensor_parallel_size`` first.  ``available_bytes`` is per rank: one
    figure for every stage, or one per pipeline stage.  Raises
    :class:`InsufficientMemoryError` when one request of ``max_model_len`` does not fit.
    With ``specs_per_rank=True`` the specs already describe one rank (as
    ``layers_from_hf_config(tensor_parallel_size=...)`` returns them) and are not sharded again.
    """
    max_len = positive_int_arg("max_model_len", max_model_len)
    batched = positive_int_arg("max_num_batched_tokens", max_num_batched_tokens)
    tp = positive_int_arg("tensor_parallel_size", tensor_parallel_size)
    pp = positive_int_arg("pipeline_parallel_size", pipeline_parallel_size)
    if strategy not in ("hybrid", "per_layer"):
        raise InvalidArgumentError(f"strategy must be 'hybrid' or 'per_layer', got {strategy!r}")
    if not isinstance(async_scheduling, bool):
        raise InvalidArgumentError(f"async_scheduling must be a bool, got {async_scheduling!r}")
    budgets = _budgets(available_bytes, pp)
    tokens = batched * pp * (2 if async_scheduling and pp == 1 else 1)

    by_name = layer_map(layers)
    sharded = by_name if specs_per_rank else {n: shard_spec(s, tp) for n, s in by_name.items()}
    grouped = hybrid_groups(sharded) if strategy == "hybrid" else per_layer_groups(sharded)
    pages = [_pages_per_request(spec, max_len, tokens) for spec, _ in grouped]
    total_pages = sum(pages)

    # One page index costs, per layer: the group's page (a uniform-type member's own page).
    layer_bytes: dict[str, int] = {}
    for spec, names in grouped:
        for name in names:
            if isinstance(spec, UniformTypeSpec):
                layer_bytes[name] = spec.kv_cache_specs[name].page_size_bytes
            else:
                layer_bytes[name] = spec.page_size_bytes
    stage_of: dict[str, int] = {}
    order = list(sharded)
    start = 0
    for stage, size in enumerate(stage_sizes(len(order), pp)):
        for name in order[start : start + size]:
            stage_of[name] = stage
        start += size

    stages: list[StagePlan] = []
    unified_page = max(spec.page_size_bytes for spec, _ in grouped)
    wasted = 0
    for stage, budget in enumerate(budgets):
        per_group = [[name for name in names if stage_of[name] == stage] for _, names in grouped]
        sums = [sum(layer_bytes[name] for name in names) for names in per_group]
        if strategy == "hybrid":
            bytes_per_page = max(sums)
            widest = max(len(names) for names in per_group)
            padding = sum(widest - len(names) for names in per_group)
            wasted += unified_page * sum(
                need * (widest - len(names)) for need, names in zip(pages, per_group, strict=True)
            )
        else:
            bytes_per_page, padding = sum(sums), 0
        needed = bytes_per_page * total_pages
        where = f" on pipeline stage {stage}" if pp > 1 else ""
        if budget <= bytes_per_page:
            raise InsufficientMemoryError(
                f"{budget} bytes{where} hold at most one page of {bytes_per_page} bytes, and that "
                "one is the null page: nothing is left for requests. One request of "
                f"{max_len} tokens needs {needed} bytes ({_gib(needed)}) more; raise the budget",
                needed_bytes=needed,
                available_bytes=budget,
                max_model_len_estimate=0,
                bytes_per_page=bytes_per_page,
                stage=stage,
            )
        if needed > budget - bytes_per_page:
            estimate = _largest_fitting_length(
                [spec for spec, _ in grouped],
                bytes_per_page,
                budget - bytes_per_page,
                max_len,
                tokens,
            )
            hint = (
                f"at most {estimate} tokens fit: lower max_model_len to {estimate} or "
                if estimate
                else "not even one token fits: "
            )
            raise InsufficientMemoryError(
                f"one request of max_model_len={max_len} tokens needs {needed} bytes "
                f"({_gib(needed)}) of KV cache{where}, more than the {budget} bytes "
                f"({_gib(budget)}) available less one null page of {bytes_per_page} bytes; "
                f"{hint}raise the memory budget (or shard over more ranks)",
                needed_bytes=needed,
                available_bytes=budget,
                max_model_len_estimate=estimate,
                bytes_per_page=bytes_per_page,
                stage=stage,
            )
        members = [name for name in order if stage_of[name] == stage]
        stages.append(
            StagePlan(
                stage=stage,
                layers=len(members),
                first_layer=members[0],
                last_layer=members[-1],
                available_bytes=budget,
                bytes_per_page=bytes_per_page,
                num_pages=budget // bytes_per_page,
                needed_bytes=needed,
                padding_layers=padding,
            )
        )

    num_pages = min(stage.num_pages for stage in stages)
    concurrency = num_pages / total_pages
    padding_layers = sum(stage.padding_layers for stage in stages)
    config = CacheGroupsConfig(
        num_pages=num_pages,
        kv_cache_groups=[
            CacheGroupSpec(kv_cache_spec=spec, layer_names=names) for spec, names in grouped
        ],
    )
    summaries = []
    for (spec, names), need in zip(grouped, pages, strict=True):
        group_bytes = sum(layer_bytes[name] for name in names)
        summaries.append(
            GroupSummary(
                kind=spec.kind,
                type_id=spec.type_id,
                layers=len(names),
                page_size_bytes=spec.page_size_bytes,
                group_page_bytes=group_bytes,
                pages_per_request=need,
                request_bytes=need * max(stage.bytes_per_page for stage in stages),
            )
        )
    return CachePlan(
        config=config,
        strategy=strategy,
        bytes_per_page=max(stage.bytes_per_page for stage in stages),
        pages_per_request=pages,
        max_concurrency=concurrency,
        kv_cache_size_tokens=int(concurrency * max_len),
        padding_layers=padding_layers,
        padding_bytes=wasted,
        groups=summaries,
        stages=stages,
        inputs=PlanInputs(
            available_bytes=budgets,
            max_model_len=max_len,
            max_num_batched_tokens=batched,
            tokens_in_flight=tokens,
            tensor_parallel_size=tp,
            pipeline_parallel_size=pp,
            async_scheduling=async_scheduling,
            strategy=strategy,
        ),
    )
