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
>>> plan.config.num_pages, plan.pages_per_request, plan.inputs.tokens_in_flight
(16384, [321, 321, 321, 321, 321, 512], 4096)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kvschema._args import positive_int_arg, shown_value
from kvschema.errors import InvalidArgumentError
from kvschema.layout.config import CacheGroupsConfig, CacheGroupSpec
from kvschema.layout.parallel import Parallelism
from kvschema.planning.decisions import (
    max_concurrent_batches,
    resolve_async_scheduling,
    resolve_hybrid_kv_cache_manager,
)
from kvschema.planning.grouping import (
    hybrid_groups,
    layer_map,
    per_layer_groups,
    unify_hybrid_specs,
)
from kvschema.planning.plan import (
    CachePlan,
    GroupSummary,
    InsufficientMemoryError,
    PlanInputs,
    StagePlan,
    Strategy,
    json_exact,
    pages_per_request,
    plan_groups,
    stage_sizes,
    summary,
)
from kvschema.planning.scope import (
    is_layer_map,
    max_model_len_to_plan,
    parallel_sizes,
    rank_specs,
    scoped,
)
from kvschema.planning.sharing import attach_sharing_layers, drop_sharing_layers, sharing_map
from kvschema.spec.sharding import shard_spec
from kvschema.spec.union import (
    CacheSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
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
    async_scheduling: bool | None = None,
    disable_hybrid_kv_cache_manager: bool | None = None,
    allow_chunked_local_with_hybrid: bool = True,
    eagle: bool = False,
    kv_connector_supports_hybrid: bool | None = None,
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
    (['sliding_window', 'mamba'], [65, 1])

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

    No layers (an attention-free model) plan no KV cache (see :class:`CachePlan`).

    The engine settings default to what vLLM 0.33 decides for a GPU deployment (see
    ``kvschema.planning.decisions`` and ``docs/planner.md``): ``async_scheduling=None`` is
    on (``pp + 1`` batches in flight; ``pp`` when False; the per_layer strategy keeps it off
    unless asked).  ``disable_hybrid_kv_cache_manager=None`` leaves the hybrid KV cache manager
    on unless chunked local attention meets ``eagle`` speculative decoding or
    ``allow_chunked_local_with_hybrid=False`` (the environment variable
    ``VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=0``), or a KV connector without hybrid
    support is used (``kv_connector_supports_hybrid=False``).  Disabled, every layer is
    allocated as full attention in one group, as
    ``kvschema.planning.grouping.unify_hybrid_specs`` gives it.
    """
    source, scope = scoped(layers, parallelism)
    tp, pp, scope = parallel_sizes(
        scope, tensor_parallel_size, pipeline_parallel_size, specs_per_rank
    )
    specs = rank_specs(layer_map(source), tp, scope)
    sharing = sharing_map(layers if is_layer_map(layers) else source, kv_sharing)
    specs = drop_sharing_layers(specs, sharing, pipeline_parallel_size=pp)
    inputs = _checked_inputs(
        available_bytes,
        max_model_len_to_plan(layers, max_model_len, allow_long_max_model_len),
        max_num_batched_tokens,
        strategy,
        tp,
        pp,
        _Switches(
            async_scheduling,
            disable_hybrid_kv_cache_manager,
            allow_chunked_local_with_hybrid,
            eagle,
            kv_connector_supports_hybrid,
        ),
        chunked_local=any(map(_is_chunked, {id(s): s for s in specs.values()}.values())),
    )
    if not specs:
        return json_exact(_no_cache_plan(inputs))
    if inputs.disable_hybrid_kv_cache_manager:
        specs = unify_hybrid_specs(specs)
    grouped = hybrid_groups(specs) if strategy == "hybrid" else per_layer_groups(specs)
    pages = [
        pages_per_request(spec, inputs.max_model_len, inputs.tokens_in_flight)
        for spec, _ in grouped
    ]
    costs = _StageCosts.of(grouped, list(specs), inputs)
    stages = [costs.plan_stage(stage, budget, pages) for stage, budget in enumerate(costs.budgets)]
    return json_exact(
        attach_sharing_layers(_assemble(grouped, pages, stages, costs, inputs), sharing)
    )


# -- the steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Switches:
    """The engine settings vLLM 0.33 decides when they are left unset."""

    async_scheduling: bool | None
    disable_hybrid_kv_cache_manager: bool | None
    allow_chunked_local_with_hybrid: bool
    eagle: bool
    kv_connector_supports_hybrid: bool | None


def _is_chunked(spec: CacheSpec) -> bool:
    """Whether a layer has chunked local attention (vLLM's ``model_config.attention_chunk_size``)."""
    return isinstance(spec, ChunkedLocalAttentionSpec) or (
        isinstance(spec, FullAttentionSpec) and spec.attention_chunk_size is not None
    )


def _checked_inputs(
    available_bytes: int | Sequence[int],
    max_model_len: int,
    max_num_batched_tokens: int,
    strategy: Strategy,
    tp: int,
    pipeline_parallel_size: int,
    switches: _Switches,
    *,
    chunked_local: bool,
) -> PlanInputs:
    """The arguments checked, the engine settings decided, and the tokens kept in flight."""
    max_len = positive_int_arg("max_model_len", max_model_len)
    batched = positive_int_arg("max_num_batched_tokens", max_num_batched_tokens)
    pp = positive_int_arg("pipeline_parallel_size", pipeline_parallel_size)
    if strategy not in ("hybrid", "per_layer"):
        raise InvalidArgumentError(f"strategy must be 'hybrid' or 'per_layer', got {strategy!r}")
    if strategy == "per_layer" and switches.disable_hybrid_kv_cache_manager is not None:
        raise InvalidArgumentError(
            "disable_hybrid_kv_cache_manager is vLLM's switch: it applies to the hybrid "
            "strategy only, not to per_layer"
        )
    disable = resolve_hybrid_kv_cache_manager(
        switches.disable_hybrid_kv_cache_manager,
        chunked_local=chunked_local,
        allow_chunked_local_with_hybrid=switches.allow_chunked_local_with_hybrid,
        eagle=switches.eagle,
        kv_connector_supports_hybrid=switches.kv_connector_supports_hybrid,
    )
    async_on = resolve_async_scheduling(switches.async_scheduling)
    if strategy == "per_layer" and switches.async_scheduling is None:
        async_on = False  # EasyDeL's pool: vLLM's async-scheduling default is not assumed
    batches = max_concurrent_batches(async_on, pp)
    return PlanInputs(
        available_bytes=_budgets(available_bytes, pp),
        max_model_len=max_len,
        max_num_batched_tokens=batched,
        tokens_in_flight=batched * batches,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        async_scheduling=async_on,
        max_concurrent_batches=batches,
        strategy=strategy,
        disable_hybrid_kv_cache_manager=disable if strategy == "hybrid" else None,
        eagle=switches.eagle,
        allow_chunked_local_with_hybrid=switches.allow_chunked_local_with_hybrid,
        kv_connector_supports_hybrid=switches.kv_connector_supports_hybrid,
    )


def _budgets(available_bytes: Any, pp: int) -> list[int]:
    """One budget per stage: an int (every stage) or a sequence of ``pp`` ints, each checked."""
    if isinstance(available_bytes, int) and not isinstance(available_bytes, bool):
        return [positive_int_arg("available_bytes", available_bytes)] * pp
    if not isinstance(available_bytes, Sequence) or isinstance(available_bytes, (str, bytes)):
        raise InvalidArgumentError(
            f"available_bytes must be an int or one int per stage ({pp}), got "
            f"{shown_value(available_bytes)}",
            available_bytes=available_bytes,
        )
    if len(available_bytes) != pp:
        raise InvalidArgumentError(
            f"available_bytes must be an int or one int per stage ({pp}), got "
            f"{len(available_bytes)} figures: {shown_value(available_bytes)}",
            available_bytes=available_bytes,
        )
    return [positive_int_arg("available_bytes", value) for value in available_bytes]


@dataclass(frozen=True)
class _StageCosts:
    """What a page index costs per layer, and which pipeline stage holds each layer."""

    grouped: _Groups
    order: list[str]
    layer_bytes: dict[str, int]
    #: Each group's spec's page_size_bytes (computed once: the summaries and padding read it).
    page_bytes: list[int]
    stage_of: dict[str, int]
    budgets: list[int]
    inputs: PlanInputs

    @classmethod
    def of(cls, grouped: _Groups, order: list[str], inputs: PlanInputs) -> _StageCosts:
        # One page index costs, per layer: the group's page (a uniform-type member's own page).
        layer_bytes: dict[str, int] = {}
        page_bytes = [spec.page_size_bytes for spec, _ in grouped]
        for (spec, names), page in zip(grouped, page_bytes, strict=True):
            if isinstance(spec, UniformTypeSpec):
                layer_bytes.update((n, spec.kv_cache_specs[n].page_size_bytes) for n in names)
            else:
                layer_bytes.update(dict.fromkeys(names, page))
        stage_of: dict[str, int] = {}
        start = 0
        for stage, size in enumerate(stage_sizes(len(order), inputs.pipeline_parallel_size)):
            stage_of.update(dict.fromkeys(order[start : start + size], stage))
            start += size
        return cls(
            grouped, order, layer_bytes, page_bytes, stage_of, inputs.available_bytes, inputs
        )

    def members(self, stage: int) -> list[list[str]]:
        """Each group's layers on ``stage``."""
        return [[n for n in names if self.stage_of[n] == stage] for _, names in self.grouped]

    def padding_bytes(self, pages: list[int]) -> int:
        """Bytes one request reserves in the empty layer slots of the hybrid pools."""
        if self.inputs.strategy != "hybrid":
            return 0
        unified_page = max(self.page_bytes)
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


def _no_cache_plan(inputs: PlanInputs) -> CachePlan:
    """No layer keeps a cache: no groups, one (null) page, as vLLM plans attention-free models."""
    return CachePlan(
        config=None,
        strategy=inputs.strategy,
        bytes_per_page=0,
        pages_per_request=[],
        max_concurrency=None,
        kv_cache_size_tokens=None,
        padding_layers=0,
        padding_bytes=0,
        groups=[],
        stages=[],
        inputs=inputs,
    )


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
        kv_cache_groups=plan_groups(grouped, costs.order),
        # the specs are one rank's: say of which layout (absent for one GPU, the whole model)
        parallelism=Parallelism(tensor_parallel_size=tp, pipeline_parallel_size=pp)
        if tp > 1 or pp > 1
        else None,
    )
    # ints computed here and strings of validated specs: built without validation
    layer_bytes = costs.layer_bytes
    summaries = [
        summary(
            spec,
            layers=len(names),
            page_size_bytes=page,
            group_page_bytes=sum(map(layer_bytes.__getitem__, names)),
            pages_per_request=need,
            request_bytes=need * bytes_per_page,
        )
        for (spec, names), need, page in zip(grouped, pages, costs.page_bytes, strict=True)
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
