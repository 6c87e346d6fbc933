"""The planner under its first name; it lives in :mod:`kvschema.planning.planner`.

>>> from kvschema.planner import plan_cache
>>> plan_cache is __import__("kvschema.planning.planner").planning.planner.plan_cache
True
"""

from kvschema.planning.planner import (
    CachePlan,
    GroupSummary,
    InsufficientMemoryError,
    PlanInputs,
    StagePlan,
    Strategy,
    plan_cache,
    shard_spec,
    stage_sizes,
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
