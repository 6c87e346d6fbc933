"""Planning layers that share another layer's KV cache (vLLM's ``kv_sharing_target_layer_name``).

vLLM 0.33 gives such a layer no spec (``GPUModelRunner.get_kv_cache_spec``,
v1/worker/gpu_model_runner.py, skips it), so grouping, page bytes and the page count never see
it; after planning, ``add_kv_sharing_layers_to_kv_cache_groups`` (v1/worker/utils.py) puts it in
its target's group, where it reads the target's pages.  The planner does the same in two steps:
:func:`drop_sharing_layers` before grouping, :func:`attach_sharing_layers` after.

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=64, dtype="fp16")
>>> sharing = sharing_map({"a": spec, "b": spec}, {"b": "a"})
>>> list(drop_sharing_layers({"a": spec, "b": spec}, sharing, pipeline_parallel_size=1))
['a']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kvschema.errors import InvalidArgumentError
from kvschema.layout.config import CacheGroupsConfig, CacheGroupSpec
from kvschema.planning.plan import CachePlan
from kvschema.spec.attention import ATTENTION_SPECS
from kvschema.spec.union import CacheSpec

__all__ = ["attach_sharing_layers", "drop_sharing_layers", "sharing_map"]


def sharing_map(layers: Any, kv_sharing: Mapping[str, str] | None) -> dict[str, str]:
    """Sharing layer → target: ``kv_sharing``, the ``kv_sharing`` of groups given as layers, and
    that of a layer map that carries one (what ``layers_from_hf_config`` returns for Gemma 3n).

    >>> sharing_map({}, {"layer.2": "layer.0"})
    {'layer.2': 'layer.0'}
    """
    found: dict[str, str] = {}
    if isinstance(layers, Sequence) and not isinstance(layers, (str, bytes)):
        for group in layers:
            found.update(getattr(group, "kv_sharing", None) or {})
    else:  # a layer mapping or a LayerMap that carries one
        found.update(getattr(layers, "kv_sharing", None) or {})
    if kv_sharing is None:
        return found
    if not isinstance(kv_sharing, Mapping):
        raise InvalidArgumentError(
            f"kv_sharing must map a sharing layer to its target layer, got "
            f"{type(kv_sharing).__name__}"
        )
    for name, target in kv_sharing.items():
        if not isinstance(name, str) or not isinstance(target, str):
            raise InvalidArgumentError(
                f"kv_sharing maps layer names to layer names, got {name!r}: {target!r}"
            )
        if found.get(name, target) != target:
            raise InvalidArgumentError(
                f"layer {name} shares {found[name]}'s KV cache in the groups given and "
                f"{target}'s in kv_sharing",
                layer=name,
            )
        found[name] = target
    return found


def drop_sharing_layers(
    specs: dict[str, CacheSpec], sharing: Mapping[str, str], *, pipeline_parallel_size: int
) -> dict[str, CacheSpec]:
    """The layers that hold a cache: ``specs`` less the sharing layers (listed or not).

    A target must be an attention layer of ``specs`` with a cache of its own (vLLM binds a
    sharing layer to a layer it finds among the planned groups: no chains, no self-sharing).

    >>> from kvschema import FullAttentionSpec
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=64, dtype="fp16")
    >>> drop_sharing_layers({"a": spec}, {"b": "c"}, pipeline_parallel_size=1)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: kv_sharing: layer b shares c, which is not a layer to plan
    """
    if not sharing:
        return specs
    if pipeline_parallel_size > 1:
        raise InvalidArgumentError(
            "kvschema does not plan KV sharing over pipeline stages (a sharing layer and its "
            f"target must sit on one stage); got pipeline_parallel_size={pipeline_parallel_size}"
        )
    for name, target in sharing.items():
        problem = None
        if name == target:
            problem = "cannot share its own KV cache"
        elif target in sharing:
            problem = (
                f"shares {target}, which itself shares {sharing[target]}'s: name {sharing[target]}"
            )
        elif target not in specs:
            problem = f"shares {target}, which is not a layer to plan"
        elif not isinstance(specs[target], ATTENTION_SPECS):
            problem = f"shares {target}, a {specs[target].kind} layer: only attention KV is shared"
        elif name in specs and not isinstance(specs[name], ATTENTION_SPECS):
            problem = f"is a {specs[name].kind} layer: only attention layers share KV"
        if problem is not None:
            raise InvalidArgumentError(f"kv_sharing: layer {name} {problem}", layer=name)
    return {name: spec for name, spec in specs.items() if name not in sharing}


def attach_sharing_layers(plan: CachePlan, sharing: Mapping[str, str]) -> CachePlan:
    """The plan with each sharing layer in its target's group (``kv_sharing``), zero bytes its own.

    Only ``config`` changes: page counts, costs and summaries are those of the layers that
    hold a cache, as vLLM reports them.

    >>> from kvschema import FullAttentionSpec, plan_cache
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=64, dtype="fp16")
    >>> plan = plan_cache({"a": spec}, available_bytes=2**24, max_model_len=256,
    ...                   max_num_batched_tokens=64)
    >>> attach_sharing_layers(plan, {"b": "a"}).config.kv_cache_groups[0].kv_sharing
    {'b': 'a'}
    """
    config = plan.config
    if not sharing or config is None:
        return plan
    owner = {
        name: index
        for index, group in enumerate(config.kv_cache_groups)
        for name in group.layer_names or ()
    }
    per_group: list[dict[str, str]] = [{} for _ in config.kv_cache_groups]
    for name, target in sharing.items():
        per_group[owner[target]][name] = target
    groups = [
        CacheGroupSpec(
            kv_cache_spec=group.kv_cache_spec,
            layer_names=group.layer_names,
            kv_sharing={**(group.kv_sharing or {}), **shared} or None,
        )
        for group, shared in zip(config.kv_cache_groups, per_group, strict=True)
    ]
    return plan.model_copy(
        update={
            "config": CacheGroupsConfig(
                num_pages=config.num_pages,
                kv_cache_groups=groups,
                parallelism=config.parallelism,
            )
        }
    )
