"""The scope of what is planned: which layers, one rank of which parallel layout, how long a request.

A document's ``parallelism`` record (or the caller's) says its specs are one rank of that
layout; without one they are the whole model's, sharded once here.  The length defaults to the
model's own when the layers know it (see :mod:`kvschema.models.context`).

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> rank_specs({"a": spec}, 4, None)["a"].num_kv_heads
2
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError
from kvschema.layout.config import CacheGroupsConfig, CacheGroupSpec
from kvschema.layout.group import MAX_LAYERS
from kvschema.layout.parallel import Parallelism
from kvschema.models.context import ModelLength
from kvschema.spec.sharding import shard_spec
from kvschema.spec.union import CacheSpec

__all__ = ["is_layer_map", "max_model_len_to_plan", "parallel_sizes", "rank_specs", "scoped"]


def is_layer_map(layers: Any) -> bool:
    """Whether ``layers`` is a :class:`~kvschema.layout.layer_map.LayerMap`, without building
    that model for a plan that never reads one: none exists before its module is imported."""
    module = sys.modules.get("kvschema.layout.layer_map")
    return module is not None and isinstance(layers, module.LayerMap)


def scoped(
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
    elif is_layer_map(layers):
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


def parallel_sizes(
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
    pp = positive_int_arg(  # a stage holds one layer or more, and a config at most MAX_LAYERS
        "pipeline_parallel_size",
        pp_asked,
        MAX_LAYERS,
        f"a stage holds one layer or more, and a model has at most {MAX_LAYERS} layers",
    )
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


def max_model_len_to_plan(layers: Any, asked: Any, allow_long: Any) -> int:
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


def rank_specs(
    specs: dict[str, CacheSpec], tp: int, scope: Parallelism | None
) -> dict[str, CacheSpec]:
    """One rank's specs: the whole model's sharded once for ``tp``; one rank's as they are."""
    if tp == 1 or (scope is not None and scope.tensor_parallel_size == tp):
        return specs
    sharded: dict[int, CacheSpec] = {}
    for spec in specs.values():
        if id(spec) not in sharded:
            sharded[id(spec)] = shard_spec(spec, tp)
    return {name: sharded[id(spec)] for name, spec in specs.items()}
