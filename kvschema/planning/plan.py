"""A plan's result: the groups and page count, what they cost per stage, and what they hold.

>>> stage_sizes(10, 4)
[2, 3, 3, 2]
"""

import math
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kvschema._args import MAX_INT, MAX_INT_WHY, positive_int_arg, shown_value
from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.layout.config import CacheGroupsConfig, CacheGroupSpec
from kvschema.layout.group import MAX_LAYERS
from kvschema.spec.base import _cdiv
from kvschema.spec.union import CacheSpec, UniformTypeSpec

__all__ = [
    "CachePlan",
    "GroupSummary",
    "InsufficientMemoryError",
    "PlanInputs",
    "StagePlan",
    "Strategy",
    "json_exact",
    "pages_per_request",
    "plan_groups",
    "stage_sizes",
    "summary",
]

Strategy = Literal["hybrid", "per_layer"]

_M = TypeVar("_M", bound=BaseModel)
_set_slot = object.__setattr__


def built(cls: type[_M], values: dict[str, Any], fields_set: set[str]) -> _M:
    """An instance of ``cls`` holding ``values`` (every field, in the order of the fields),
    ``fields_set`` the ones a caller gave: what ``cls(**given)`` makes, without validating.

    For what the planner computes, thousands a plan, whose types and rules hold by
    construction (ints it derives, strings and specs that were validated); each caller says
    why its values need no validation.  ~1 µs where validation costs ~5 µs.
    """
    model = cls.__new__(cls)
    _set_slot(model, "__dict__", values)
    _set_slot(model, "__pydantic_fields_set__", fields_set)
    _set_slot(model, "__pydantic_extra__", None)
    _set_slot(model, "__pydantic_private__", None)
    return model


class InsufficientMemoryError(KVSchemaError):
    """The budget cannot hold one request of ``max_model_len`` tokens (as vLLM refuses to start).

    ``needed_bytes`` is what one request needs (the null page not included),
    ``available_bytes`` the budget as passed, ``max_model_len_estimate`` the longest request
    that fits (0 when not even one token does).

    >>> from kvschema import FullAttentionSpec, plan_cache
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
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class PlanInputs(_Frozen):
    """What a plan was made from, with the engine settings as vLLM 0.33 resolved them."""

    available_bytes: list[int] = Field(description="Per-rank budget of each pipeline stage.")
    max_model_len: int
    max_num_batched_tokens: int
    tokens_in_flight: int = Field(
        description="Tokens a windowed layer keeps beyond its window: max_num_batched_tokens x "
        "max_concurrent_batches (vLLM's max_in_flight_tokens)."
    )
    tensor_parallel_size: int
    pipeline_parallel_size: int
    async_scheduling: bool = Field(description="Async scheduling, as resolved (unset: on).")
    max_concurrent_batches: int = Field(
        default=1, description="Batches in flight: pp + 1 with async scheduling, else pp."
    )
    strategy: Strategy
    disable_hybrid_kv_cache_manager: bool | None = Field(
        default=None,
        description="The hybrid KV cache manager disabled (True) or on (False), as resolved; "
        "None for the per_layer strategy.",
    )
    eagle: bool = Field(default=False, description="EAGLE-style speculative decoding.")
    allow_chunked_local_with_hybrid: bool = Field(
        default=True,
        description="VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE (0.33 default: on).",
    )
    kv_connector_supports_hybrid: bool | None = Field(
        default=None,
        description="A KV connector with (True) or without (False) hybrid support; None: none.",
    )


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

    A model whose layers keep no cache (attention-free) plans no KV cache: ``config`` is None,
    ``num_pages`` 1 (vLLM's block pool keeps its null block), and concurrency is not bounded by
    the cache (``max_concurrency`` None).

    >>> from kvschema import FullAttentionSpec, plan_cache
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> plan = plan_cache({"layer.0": spec, "layer.1": spec}, available_bytes=2**30,
    ...                   max_model_len=8192, max_num_batched_tokens=2048)
    >>> plan.num_pages, plan.pages_per_request, plan.max_concurrency
    (8192, [512], 16.0)
    >>> plan.concurrency_at(16384)
    8.0
    >>> empty = plan_cache({}, available_bytes=2**30, max_model_len=8192,
    ...                    max_num_batched_tokens=2048)
    >>> empty.has_kv_cache, empty.num_pages, empty.max_concurrency
    (False, 1, None)
    """

    config: CacheGroupsConfig | None = Field(
        description="The groups and their page count; None when the model keeps no KV cache."
    )
    strategy: Strategy
    bytes_per_page: int = Field(
        description="What one page index costs across a rank's layers (the largest stage's)."
    )
    pages_per_request: list[int] = Field(description="Pages one request needs, per group.")
    max_concurrency: float | None = Field(
        description="num_pages / sum(pages_per_request); None without a KV cache (no bound)."
    )
    kv_cache_size_tokens: int | None = Field(
        description="int(max_concurrency * max_model_len); None without a KV cache."
    )
    padding_layers: int = Field(description="Empty layer slots the grouping adds (hybrid).")
    padding_bytes: int = Field(
        description="Bytes one request of max_model_len reserves in those empty slots."
    )
    groups: list[GroupSummary]
    stages: list[StagePlan]
    inputs: PlanInputs

    @property
    def has_kv_cache(self) -> bool:
        """Whether any layer keeps a cache (False for an attention-free model)."""
        return self.config is not None

    @property
    def num_pages(self) -> int:
        """The planned page count (the null page included, as engines count it); 1 without cache."""
        return 1 if self.config is None else self.config.num_pages

    def pages_at(self, max_model_len: int) -> int:
        """Page indices one request of ``max_model_len`` tokens takes, groups and pages fixed."""
        length = positive_int_arg("max_model_len", max_model_len)
        if self.config is None:
            return 0
        tokens = self.inputs.tokens_in_flight
        return sum(
            pages_per_request(group.kv_cache_spec, length, tokens)
            for group in self.config.kv_cache_groups
        )

    def concurrency_at(self, max_model_len: int) -> float:
        """Requests of ``max_model_len`` tokens the planned pages hold at once (the capacity curve).

        ``math.inf`` for a model without KV cache: the cache bounds nothing.
        """
        pages = self.pages_at(max_model_len)
        return self.num_pages / pages if pages else math.inf


def stage_sizes(num_layers: int, pipeline_parallel_size: int) -> list[int]:
    """Layers per pipeline stage as vLLM splits them: extras go to stages pp-2, pp-3, ...

    >>> stage_sizes(10, 4)
    [2, 3, 3, 2]
    """
    pp = positive_int_arg("pipeline_parallel_size", pipeline_parallel_size)
    positive_int_arg("num_layers", num_layers)
    if num_layers < pp:
        raise InvalidArgumentError(
            f"pipeline_parallel_size={pp} is more stages than the {num_layers} cache layers"
        )
    sizes = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    return sizes


_GROUP_GIVEN = frozenset({"kv_cache_spec", "layer_names"})
_MAX_NAME = 256  # LayerName's max_length


def plan_groups(
    grouped: list[tuple[CacheSpec, list[str]]], order: list[str]
) -> list[CacheGroupSpec]:
    """The plan's groups, built without validating each again when that cannot fail.

    Validating a group checks its spec (an instance: its rules are run again), its layer names
    (strings of 1 to 256 characters, each once) and a uniform-type group's members.  The
    grouping gives each layer once, and a uniform-type group exactly its members; its specs are
    the validated ones of the layer map, or their copies with a page padded or scaled to
    another validated page.  So when every layer name is a plain ASCII string of the right
    length (checked here, ~0.1 µs a name), the groups are built as given (~1 µs each, where
    validation costs ~6 µs); otherwise they are validated, and raise what they always raised.
    The config that holds them is validated as ever (its own rules across the groups).
    """
    if len(order) > MAX_LAYERS or not all(
        type(name) is str and 0 < len(name) <= _MAX_NAME and name.isascii() for name in order
    ):
        return [CacheGroupSpec(kv_cache_spec=spec, layer_names=names) for spec, names in grouped]
    return [
        built(
            CacheGroupSpec,
            {"kv_cache_spec": spec, "layer_names": names, "kv_sharing": None},
            set(_GROUP_GIVEN),
        )
        for spec, names in grouped
    ]


def summary(spec: CacheSpec, *, page_size_bytes: int, **counts: int) -> GroupSummary:
    """A group's summary from its spec, its page bytes and the counts the planner computed
    (``layers``, ``group_page_bytes``, ``pages_per_request``, ``request_bytes``): strings of a
    validated spec and integers, built without validation (~1 µs where it costs ~5)."""
    values = {
        "kind": spec.kind,
        "type_id": spec._type_id_from(spec.__dict__, page_size_bytes),  # spec.type_id
        "layers": counts["layers"],
        "page_size_bytes": page_size_bytes,
        "group_page_bytes": counts["group_page_bytes"],
        "pages_per_request": counts["pages_per_request"],
        "request_bytes": counts["request_bytes"],
    }
    return built(GroupSummary, values, set(values))


def pages_per_request(spec: CacheSpec, max_model_len: int, tokens: int) -> int:
    """Page indices one request of ``max_model_len`` takes in a group of ``spec``.

    ``tokens`` is what a windowed layer keeps in flight beyond its window (the batched tokens).

    >>> from kvschema import FullAttentionSpec
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=64, dtype="fp16")
    >>> pages_per_request(spec, 100, 2048)
    7
    """
    if isinstance(spec, UniformTypeSpec):
        return spec.pages_per_request(max_model_len=max_model_len, max_num_batched_tokens=tokens)
    memory = spec.max_memory_usage_bytes(max_model_len=max_model_len, max_num_batched_tokens=tokens)
    return _cdiv(memory, spec.page_size_bytes)


def _too_large(value: Any, path: str) -> tuple[str, int] | None:
    """The first integer in ``value`` (plain data) past :data:`MAX_INT`, with its JSON path."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (path, value) if value > MAX_INT else None
    items: Any = value.items() if isinstance(value, dict) else ()
    if isinstance(value, list):
        items = ((f"[{i}]", item) for i, item in enumerate(value))
    for key, item in items:
        found = _too_large(item, f"{path}{key}" if key.startswith("[") else f"{path}.{key}")
        if found is not None:
            return found
    return None


def _over_max(plan: CachePlan) -> bool:
    """Whether ``plan`` holds an int past :data:`MAX_INT` outside its ``config``.

    The quick test of :func:`json_exact`: it reads the models' own values, with no dump and no
    paths (a plan of 2,000 groups in ~1 ms, where the walk with paths takes ~10 ms).  It sees
    every value ``model_dump`` writes: a model's fields are its ``__dict__``.
    """
    pending: list[Any] = [(v for k, v in plan.__dict__.items() if k != "config")]
    while pending:
        for item in pending.pop():
            kind = type(item)
            if kind is int:
                if item > MAX_INT:
                    return True
            elif kind is str or item is None:
                continue
            elif kind is list:
                pending.append(item)
            elif kind is dict:
                pending.append(item.values())
            elif isinstance(item, BaseModel):
                pending.append(item.__dict__.values())
    return False


def json_exact(plan: CachePlan) -> CachePlan:
    """``plan`` when every integer it writes stays within 2**53 - 1, else the error naming one.

    2**53 - 1 is the largest integer every JSON reader keeps exact: kvschema never writes a
    plan that a JavaScript or Go reader would read back rounded.  (The layout's own integers
    are bounded by its models; this checks what planning derives from them.)

    >>> from kvschema import MambaSpec, plan_cache
    >>> state = MambaSpec(page_size=1, shapes=[[4]], dtype="fp32")
    >>> plan_cache({"a": state}, available_bytes=2**40, max_model_len=4096,
    ...            max_num_batched_tokens=2**52)  # two batches of 2**52 tokens in flight
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: the plan's $.inputs.tokens_in_flight would be 9007199254740992, more than 2**53 - 1 = 9007199254740991, the largest integer every JSON reader keeps exact; plan fewer tokens (max_model_len, max_num_batched_tokens) or a smaller budget
    """
    if not _over_max(plan):
        return plan
    found = _too_large(plan.model_dump(exclude={"config"}), "$")
    if found is None:  # pragma: no cover - _over_max sees every integer model_dump writes
        return plan
    path, value = found
    raise InvalidArgumentError(
        f"the plan's {path} would be {shown_value(value)}, more than {MAX_INT_WHY}; plan "
        "fewer tokens (max_model_len, max_num_batched_tokens) or a smaller budget",
        path=path,
        value=value,
    )
