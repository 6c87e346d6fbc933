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
from dataclasses import dataclass
from typing import Any

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError
from kvschema.layout.config import CacheGroupsConfig, CacheGroupSpec
from kvschema.layout.layer_map import LayerMap
from kvschema.layout.parallel import Parallelism
from kvschema.models.context import ModelLength
from kvschema.planning.grouping import hybrid_groups, layer_map, per_layer_groups
from kvschema.planning.plan import (
    CachePlan,
    GroupSummary,
    InsufficientMemoryError,
    PlanInputs,
    StagePlan,
    Strategy,
    pages_per_request,
    stage_sizes,
)
from kvschema.planning.sharing import attach_sharing_layers, drop_sharing_layers, sharing_map
from kvschema.spec.sharding import shard_spec
from kvschema.spec.union import CacheSpec, UniformTypeSpec

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

#: Groups as the grouping returns them: one spec and its layers' names each.
_Groups = list[tuple[CacheSpec, list[str]]]


def plan_cache(
    layers: Mapping[str, Any] | Sequence[CacheGroupSpec],
    *,
    available_bytes: int | Sequence[int],
    max_model_len: int | None = None,
    max_num_batched_tokens: int,
    strategy: Strategy = "hybrid",
    tensor_parallel_size: int | None = None,
    pipeline_parallel_size: int | None = None,
    async_scheduling: bool = False,
    specs_per_rank: bool = False,
    parallelism: Parallelism | None = None,
    allow_long_max_model_len: bool = False,
    kv_sharing: Mapping[str, str] | None = None,
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

    ``layers`` maps layer name → spec in model order, or is a list of groups, a
    :class:`CacheGroupsConfig` or a :class:`LayerMap`.  Its scope says what the specs are: a
    document's ``parallelism`` record (or ``parallelism=``, or what ``layers_from_hf_config``
    recorded) makes them one rank of that parallel layout, taken as they are; without one they
    are the whole model's, sharded once for ``tensor_parallel_size``.  Specs that are one rank
    of another tensor-parallel size are refused.  ``tensor_parallel_size`` and
    ``pipeline_parallel_size`` default to the scope's (else 1).  ``specs_per_rank=True`` says
    the specs are one rank of ``tensor_parallel_size`` (a check when the scope is recorded).
    ``available_bytes`` is per rank: one figure for every stage, or one per pipeline stage.
    ``max_model_len`` defaults to the model's own when the layers know it (what
    ``layers_from_hf_config`` returns); a longer one is refused, as vLLM refuses it, unless
    ``allow_long_max_model_len`` (vLLM's ``VLLM_ALLOW_LONG_MAX_MODEL_LEN``).
    ``kv_sharing`` maps layers that read another layer's KV cache (vLLM's
    ``kv_sharing_target_layer_name``) to that layer: they take no memory, listed in ``layers``
    or not, and join their target's group in the plan's config (``kvschema.planning.sharing``).
    Raises :class:`InsufficientMemoryError` when one request of ``max_model_len`` does not fit.

    >>> from kvschema import FullAttentionSpec
    >>> full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> whole = plan_cache({"a": full}, available_bytes=2**30, max_model_len=4096,
    ...                    max_num_batched_tokens=256, tensor_parallel_size=2)
    >>> whole.config.kv_cache_groups[0].kv_cache_spec.num_kv_heads, whole.config.parallelism
    (4, Parallelism(tensor_parallel_size=2, pipeline_parallel_size=1, pipeline_stage=None))
    >>> again = plan_cache(whole.config, available_bytes=2**30, max_model_len=4096,
    ...                    max_num_batched_tokens=256)  # one rank of TP=2: taken as it is
    >>> again.num_pages == whole.num_pages
    True
    """
    source, scope = _scoped(layers, parallelism)
    tp, pp, scope = _parallel_sizes(
        scope, tensor_parallel_size, pipeline_parallel_size, specs_per_rank
    )
    inputs = _checked_inputs(
        available_bytes,
        _max_model_len(layers, max_model_len, allow_long_max_model_len),
        max_num_batched_tokens,
        strategy,
        tp,
        pp,
        async_scheduling,
    )
    specs = _rank_specs(layer_map(source), tp, scope)
    sharing = sharing_map(source, kv_sharing)
    specs = drop_sharing_layers(specs, sharing, pipeline_parallel_size=pp)
    grouped = hybrid_groups(specs) if strategy == "hybrid" else per_layer_groups(specs)
    pages = [
        pages_per_request(spec, inputs.max_model_len, inputs.tokens_in_flight)
        for spec, _ in grouped
    ]
    costs = _StageCosts.of(grouped, list(specs), inputs)
    stages = [costs.plan_stage(stage, budget, pages) for stage, budget in enumerate(costs.budgets)]
    return attach_sharing_layers(_assemble(grouped, pages, stages, costs, inputs), sharing)


# -- the steps ------------------------------------------------------------------------------


def _checked_inputs(
    available_bytes: int | Sequence[int],
    max_model_len: int,
    max_num_batched_tokens: int,
    strategy: Strategy,
    tensor_parallel_size: int,
    pipeline_parallel_size: int,
    async_scheduling: bool,
) -> PlanInputs:
    """The arguments checked, with the tokens a windowed layer keeps in flight."""
    max_len = positive_int_arg("max_model_len", max_model_len)
    batched = positive_int_arg("max_num_batched_tokens", max_num_batched_tokens)
    tp = positive_int_arg("tensor_parallel_size", tensor_parallel_size)
    pp = positive_int_arg("pipeline_parallel_size", pipeline_parallel_size)
    if strategy not in ("hybrid", "per_layer"):
        raise InvalidArgumentError(f"strategy must be 'hybrid' or 'per_layer', got {strategy!r}")
    if not isinstance(async_scheduling, bool):
        raise InvalidArgumentError(f"async_scheduling must be a bool, got {async_scheduling!r}")
    return PlanInputs(
        available_bytes=_budgets(available_bytes, pp),
        max_model_len=max_len,
        max_num_batched_tokens=batched,
        tokens_in_flight=batched * pp * (2 if async_scheduling and pp == 1 else 1),
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        async_scheduling=async_scheduling,
        strategy=strategy,
    )


def _budgets(available_bytes: int | Sequence[int], pp: int) -> list[int]:
    values = [available_bytes] * pp if isinstance(available_bytes, int) else list(available_bytes)
    if isinstance(available_bytes, bool) or len(values) != pp:
        raise InvalidArgumentError(
            f"available_bytes must be an int or one figure per stage ({pp}), got {available_bytes!r}"
        )
    return [positive_int_arg("available_bytes", value) for value in values]


def _scoped(
    layers: Any, parallelism: Parallelism | None
) -> tuple[Mapping[str, Any] | Sequence[CacheGroupSpec], Parallelism | None]:
    """The layers to plan, and the parallel scope their specs are one rank of (None: whole model)."""
    if parallelism is not None and not isinstance(parallelism, Parallelism):
        raise InvalidArgumentError(
            f"parallelism must be a Parallelism or None, got {type(parallelism).__name__}"
        )
    source: Mapping[str, Any] | Sequence[CacheGroupSpec]
    recorded: Any
    if isinstance(layers, CacheGroupsConfig):
        source, recorded = layers.kv_cache_groups, layers.parallelism
    elif isinstance(layers, LayerMap):
        source, recorded = layers.layers, layers.parallelism
    else:
        source, recorded = layers, getattr(layers, "parallelism", None)
        recorded = recorded if isinstance(recorded, Parallelism) else None
    if parallelism is not None and recorded is not None and parallelism != recorded:
        raise InvalidArgumentError(
            f"the layers record their scope as {recorded.describe()} but parallelism= says "
            f"{parallelism.describe()}; give one scope"
        )
    return source, parallelism or recorded


def _parallel_sizes(
    scope: Parallelism | None, tp_asked: Any, pp_asked: Any, per_rank: Any
) -> tuple[int, int, Parallelism | None]:
    """The TP and PP to plan for (asked, else the scope's, else 1) and the specs' scope.

    The scope must agree: specs that are one rank of tensor_parallel_size=t plan for t only.
    """
    if not isinstance(per_rank, bool):
        raise InvalidArgumentError(f"specs_per_rank must be a bool, got {per_rank!r}")
    if tp_asked is None:
        tp_asked = 1 if scope is None else scope.tensor_parallel_size
    if pp_asked is None:
        pp_asked = 1 if scope is None else scope.pipeline_parallel_size
    tp = positive_int_arg("tensor_parallel_size", tp_asked)
    pp = positive_int_arg("pipeline_parallel_size", pp_asked)
    if per_rank and scope is None:
        scope = Parallelism(tensor_parallel_size=tp)
    if scope is None:
        return tp, pp, None
    if scope.pipeline_stage is not None:
        raise InvalidArgumentError(
            f"the specs are {scope.describe()}: one stage's layers do not say how the model "
            "splits; plan the whole model's layers (every stage)"
        )
    if scope.tensor_parallel_size not in (1, tp):
        raise InvalidArgumentError(
            f"the specs are {scope.describe()}, so they cannot be planned for "
            f"tensor_parallel_size={tp}: give the whole model's specs (or the Hugging Face "
            "config) to plan another tensor-parallel size",
            scope_tensor_parallel_size=scope.tensor_parallel_size,
            tensor_parallel_size=tp,
        )
    return tp, pp, scope


def _max_model_len(layers: Any, asked: Any, allow_long: Any) -> int:
    """The length to plan for: as asked (within the model's own, when known), else the model's."""
    if not isinstance(allow_long, bool):
        raise InvalidArgumentError(f"allow_long_max_model_len must be a bool, got {allow_long!r}")
    length = getattr(layers, "model_length", None)
    if isinstance(length, ModelLength):
        return length.resolve(asked, allow_long=allow_long)
    if asked is None:
        raise InvalidArgumentError(
            "max_model_len is required: these layers do not say the model's context length "
            "(layers_from_hf_config's do)"
        )
    return positive_int_arg("max_model_len", asked)


def _rank_specs(
    specs: dict[str, CacheSpec], tp: int, scope: Parallelism | None
) -> dict[str, CacheSpec]:
    """One rank's specs: the whole model's sharded once for ``tp``; one rank's as they are."""
    if scope is not None and scope.tensor_parallel_size == tp:
        return specs
    return {name: shard_spec(spec, tp) for name, spec in specs.items()}


@dataclass(frozen=True)
class _StageCosts:
    """What a page index costs per layer, and which pipeline stage holds each layer."""

    grouped: _Groups
    order: list[str]
    layer_bytes: dict[str, int]
    stage_of: dict[str, int]
    budgets: list[int]
    inputs: PlanInputs

    @classmethod
    def of(cls, grouped: _Groups, order: list[str], inputs: PlanInputs) -> _StageCosts:
        # One page index costs, per layer: the group's page (a uniform-type member's own page).
        layer_bytes = {
            name: (
                spec.kv_cache_specs[name].page_size_bytes
                if isinstance(spec, UniformTypeSpec)
                else spec.page_size_bytes
            )
            for spec, names in grouped
            for name in names
        }
        stage_of: dict[str, int] = {}
        start = 0
        for stage, size in enumerate(stage_sizes(len(order), inputs.pipeline_parallel_size)):
            stage_of.update(dict.fromkeys(order[start : start + size], stage))
            start += size
        return cls(grouped, order, layer_bytes, stage_of, inputs.available_bytes, inputs)

    def members(self, stage: int) -> list[list[str]]:
        """Each group's layers on ``stage``."""
        return [[n for n in names if self.stage_of[n] == stage] for _, names in self.grouped]

    def padding_bytes(self, pages: list[int]) -> int:
        """Bytes one request reserves in the empty layer slots of the hybrid pools."""
        if self.inputs.strategy != "hybrid":
            return 0
        unified_page = max(spec.page_size_bytes for spec, _ in self.grouped)
        wasted = 0
        for stage in range(len(self.budgets)):
            per_group = self.members(stage)
            widest = max(map(len, per_group))
            wasted += unified_page * sum(
                need * (widest - len(names)) for need, names in zip(pages, per_group, strict=True)
            )
        return wasted

    def plan_stage(self, stage: int, budget: int, pages: list[int]) -> StagePlan:
        """One stage's page cost and count, or the refusal when one request does not fit."""
        per_group = self.members(stage)
        sums = [sum(self.layer_bytes[name] for name in names) for names in per_group]
        if self.inputs.strategy == "hybrid":
            bytes_per_page = max(sums)
            widest = max(map(len, per_group))
            padding = sum(widest - len(names) for names in per_group)
        else:
            bytes_per_page, padding = sum(sums), 0
        needed = bytes_per_page * sum(pages)
        _check_fits(self.grouped, self.inputs, stage, budget, bytes_per_page, needed)
        members = [name for name in self.order if self.stage_of[name] == stage]
        return StagePlan(
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


def _gib(value: int) -> str:
    return f"{value / 1024**3:.2f} GiB"


def _check_fits(
    grouped: _Groups, inputs: PlanInputs, stage: int, budget: int, bytes_per_page: int, needed: int
) -> None:
    """Refuse a stage whose budget cannot hold the null page and one request of max_model_len."""
    max_len = inputs.max_model_len
    where = f" on pipeline stage {stage}" if inputs.pipeline_parallel_size > 1 else ""
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
    if needed <= budget - bytes_per_page:
        return
    estimate = _largest_fitting_length(
        [spec for spec, _ in grouped],
        bytes_per_page,
        budget - bytes_per_page,
        max_len,
        inputs.tokens_in_flight,
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


def _largest_fitting_length(
    specs: list[CacheSpec], bytes_per_page: int, budget: int, max_model_len: int, tokens: int
) -> int:
    def fits(length: int) -> bool:
        pages = sum(pages_per_request(spec, length, tokens) for spec in specs)
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


def _assemble(
    grouped: _Groups,
    pages: list[int],
    stages: list[StagePlan],
    costs: _StageCosts,
    inputs: PlanInputs,
) -> CachePlan:
    """The plan: the fewest pages any stage holds, and what each group costs and takes."""
    num_pages = min(stage.num_pages for stage in stages)
    bytes_per_page = max(stage.bytes_per_page for stage in stages)
    concurrency = num_pages / sum(pages)
    tp, pp = inputs.tensor_parallel_size, inputs.pipeline_parallel_size
    config = CacheGroupsConfig(
        num_pages=num_pages,
        kv_cache_groups=[
            CacheGroupSpec(kv_cache_spec=spec, layer_names=names) for spec, names in grouped
        ],
        # the specs are one rank's: say of which layout (absent for one GPU, the whole model)
        parallelism=Parallelism(tensor_parallel_size=tp, pipeline_parallel_size=pp)
        if tp > 1 or pp > 1
        else None,
    )
    summaries = [
        GroupSummary(
            kind=spec.kind,
            type_id=spec.type_id,
            layers=len(names),
            page_size_bytes=spec.page_size_bytes,
            group_page_bytes=sum(costs.layer_bytes[name] for name in names),
            pages_per_request=need,
            request_bytes=need * bytes_per_page,
        )
        for (spec, names), need in zip(grouped, pages, strict=True)
    ]
    return CachePlan(
        config=config,
        strategy=inputs.strategy,
        bytes_per_page=bytes_per_page,
        pages_per_request=pages,
        max_concurrency=concurrency,
        kv_cache_size_tokens=int(concurrency * inputs.max_model_len),
        padding_layers=sum(stage.padding_layers for stage in stages),
        padding_bytes=costs.padding_bytes(pages),
        groups=summaries,
        stages=stages,
        inputs=inputs,
    )
