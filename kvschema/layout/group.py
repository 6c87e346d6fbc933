"""A group of layers that share one page table, described by one spec.

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> CacheGroupSpec(kv_cache_spec=spec, layer_names=["layer.0", "layer.1"]).layer_names
['layer.0', 'layer.1']
"""

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema.spec.base import NEWER_FIELDS
from kvschema.spec.union import CacheSpec, LayerName, UniformTypeSpec

__all__ = ["MAX_LAYERS", "CacheGroupSpec", "LayerName"]

#: The most layer names one group (and one config) may list.
MAX_LAYERS = 100_000


def _error(
    kind: str, template: str, context: dict[str, Any], loc: tuple[Any, ...], value: Any
) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, template, context), "loc": loc, "input": value}


# The context key under which CacheGroupsConfig's validation shares one set of layer names.
_SEEN = object()


def _one_name_set(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Validation keywords that let the groups share one set of layer names.

    With no context of the caller's, the groups' validators add their names to one set in the
    validation context, and the config's check of every name once across the groups is a
    length comparison instead of a second pass over every name.  A caller's own context is
    left alone (their validators may use it), and the two-pass check runs.
    """
    if kwargs.get("context") is None:
        kwargs["context"] = {_SEEN: set()}
    return kwargs


def _short(names: list[str]) -> str:
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def _sharing_targets_here(sharing: dict[str, str], info: ValidationInfo) -> dict[str, str] | None:
    """Each sharing layer reads a layer of this group's that holds a cache; {} is None.

    It sits inside the field's ``| None``: a null value never calls it."""
    if not sharing:
        return None
    data = info.data
    if "layer_names" not in data:
        return sharing  # layer_names failed: that error says what is wrong
    names = data["layer_names"]
    if names is None:
        raise PydanticCustomError(
            "kv_sharing_without_layer_names",
            "kv_sharing needs the group's layer_names to name the targets "
            "(layer_names is null: every layer)",
        )
    listed = set(names)
    errors = [
        _error(kind, template, {"name": name, "target": target}, (name,), target)
        for name, target in sharing.items()
        for kind, template in _sharing_problems(name, target, listed, sharing)
    ]
    if errors:
        raise ValidationError.from_exception_data("CacheGroupSpec", errors)
    context = info.context
    if type(context) is dict:
        seen = context.get(_SEEN)
        if seen is not None:  # inside CacheGroupsConfig: the config checks them across groups
            seen.update(sharing)
        newer = context.get(NEWER_FIELDS)
        if newer is not None:  # a field of schema version 2 (see CacheGroupsConfig)
            newer.append("CacheGroupSpec")
    return sharing


class CacheGroupSpec(BaseModel):
    """Layers that share one page table, described by one spec.

    ``layer_names=None`` means every layer of the model (allowed only for a lone group).

    >>> from kvschema import SlidingWindowSpec
    >>> group = CacheGroupSpec(
    ...     kv_cache_spec=SlidingWindowSpec(page_size=16, num_kv_heads=8, head_size=128,
    ...                                     dtype="bf16", sliding_window=1024),
    ...     layer_names=["layer.0", "layer.2"])
    >>> group.kv_cache_spec.type_id
    'sliding_window_1024_16_65536'
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    kv_cache_spec: CacheSpec = Field(description="The spec every layer of the group shares.")
    layer_names: (
        Annotated[
            list[LayerName],
            Field(min_length=1, max_length=MAX_LAYERS, json_schema_extra={"uniqueItems": True}),
        ]
        | None
    ) = Field(
        default=None,
        description="The group's layers, each once; null means every layer (a lone group only).",
    )

    kv_sharing: (
        Annotated[
            dict[LayerName, LayerName],
            Field(max_length=MAX_LAYERS),
            AfterValidator(_sharing_targets_here),
        ]
        | None
    ) = Field(
        default=None,
        description="Layers that keep no cache of their own and attend over the cache of a "
        "layer in layer_names (vLLM's kv_sharing_target_layer_name): sharing layer -> its "
        "target. They take no memory; null or {} means none.",
    )

    @field_validator("layer_names")
    @classmethod
    def _unique_names(cls, names: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if names is None:
            return names
        context = info.context
        seen = context.get(_SEEN) if type(context) is dict else None
        if seen is None:
            unique = len(set(names)) == len(names)
        else:  # inside CacheGroupsConfig.model_validate*: one set for the whole config
            before = len(seen)
            seen.update(names)
            # a shortfall is a name twice here, or one an earlier group has (the config's)
            unique = len(seen) - before == len(names) or len(set(names)) == len(names)
        spec = info.data.get("kv_cache_spec")
        if isinstance(spec, UniformTypeSpec) and set(spec.kv_cache_specs) != set(names):
            members = list(spec.kv_cache_specs)  # a JSON object's key order means nothing
            raise PydanticCustomError(
                "uniform_type_layers",
                "a uniform-type group's layer_names must be its members ({members}), got {names}",
                {"members": _short(members), "names": _short(names)},
            )
        if unique:
            return names
        first_at: dict[str, int] = {}
        errors: list[InitErrorDetails] = []
        for position, name in enumerate(names):
            if name in first_at:
                errors.append(
                    _error(
                        "duplicate_layer",
                        "layer {name} is listed twice in this group (positions {first} and {again})",
                        {"name": name, "first": first_at[name], "again": position},
                        (position,),
                        name,
                    )
                )
            else:
                first_at[name] = position
        raise ValidationError.from_exception_data(cls.__name__, errors)


def _sharing_problems(
    name: str, target: str, listed: set[str], sharing: dict[str, str]
) -> list[tuple[str, str]]:
    """What is wrong with ``name`` reading ``target``'s cache: (error type, template) pairs.

    The rules of vLLM 0.33: a layer never shares its own cache
    (``validate_kv_sharing_target``, model_executor/layers/attention/attention.py); a sharing
    layer gets no spec (``GPUModelRunner.get_kv_cache_spec`` skips it), so it is in no
    group's layer_names; after planning it joins the group whose layer_names hold its target
    (v1/worker/utils.py ``add_kv_sharing_layers_to_kv_cache_groups``, which looks the target
    up among the groups' layers), so a target is a layer with a cache of its own: no chains.
    """
    if name == target:
        return [("kv_sharing_self", "layer {name} cannot share its own KV cache")]
    problems = []
    if name in listed:
        problems.append(
            (
                "kv_sharing_layer_listed",
                "layer {name} shares {target}'s KV cache, so it keeps none of its own and "
                "must not be in layer_names too",
            )
        )
    if target in sharing:
        problems.append(
            (
                "kv_sharing_chain",
                "layer {name} shares the KV cache of {target}, which itself shares another "
                "layer's; name the layer that holds the cache as the target",
            )
        )
    elif target not in listed:
        problems.append(
            (
                "kv_sharing_target_elsewhere",
                "layer {name} shares the KV cache of {target}, which is not in this group's "
                "layer_names; a sharing layer belongs to its target's group",
            )
        )
    return problems
