"""A layer map document: layer name → spec in model order, and the parallel scope it is one rank of.

Two forms are read.  The flat form maps names to specs and describes the whole model; the
wrapped form puts the map under ``layers`` beside a ``parallelism`` record (and what
``kvschema layers -o json`` writes about the model).  A document is the wrapped form when its
``layers`` value is a mapping without a ``kind`` — a spec always has one.

>>> spec = {"kind": "full_attention", "page_size": 16, "num_kv_heads": 2, "head_size": 64,
...         "dtype": "bf16"}
>>> LayerMap.model_validate({"layer.0": spec, "layer.1": spec}).parallelism is None
True
>>> doc = LayerMap.model_validate({"parallelism": {"tensor_parallel_size": 4},
...                                "layers": {"layer.0": spec}})
>>> doc.parallelism.tensor_parallel_size, list(doc.layers)
(4, ['layer.0'])
"""

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema.layout.group import MAX_LAYERS
from kvschema.layout.parallel import Parallelism
from kvschema.spec.union import CacheSpec, LayerName, PositiveInt

__all__ = ["LayerMap", "is_wrapped_layer_map"]

# The keys of the wrapped form: the map, its scope, and what `kvschema layers -o json` adds.
_WRAPPED_KEYS = frozenset(
    {
        "layers",
        "parallelism",
        "model_type",
        "dtype",
        "tensor_parallel_size",
        "kv_bytes_per_token",
        "state_bytes_per_request",
        "no_cache",
        "kv_sharing",
    }
)


def is_wrapped_layer_map(data: Any) -> bool:
    """Whether ``data`` is the wrapped form (``layers`` holds the map), not a flat map.

    >>> is_wrapped_layer_map({"layers": {"layer.0": {}}}), is_wrapped_layer_map({"layers": {"kind": "mamba"}})
    (True, False)
    """
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("layers"), Mapping)
        and "kind" not in data["layers"]
        and data.keys() <= _WRAPPED_KEYS
    )


class LayerMap(BaseModel):
    """Layer name → spec in model order, with the parallel scope the specs are one rank of.

    >>> spec = {"kind": "mamba", "page_size": 16, "shapes": [[4]], "dtype": "fp32"}
    >>> LayerMap.model_validate({"layers": {"a": spec}, "tensor_parallel_size": 2}).parallelism
    Parallelism(tensor_parallel_size=2, pipeline_parallel_size=1, pipeline_stage=None)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    layers: Annotated[dict[LayerName, CacheSpec], Field(max_length=MAX_LAYERS)]
    parallelism: Parallelism | None = Field(
        default=None,
        description="The parallel layout whose one rank the specs describe; absent: the whole model.",
    )
    # What `kvschema layers -o json` writes beside the map (read, so its output feeds `plan`).
    model_type: StrictStr | None = None
    dtype: StrictStr | None = None
    tensor_parallel_size: PositiveInt | None = Field(
        default=None, exclude=True, description="Read as parallelism.tensor_parallel_size."
    )
    kv_bytes_per_token: StrictInt | None = None
    state_bytes_per_request: StrictInt | None = None
    # a lambda, not `list`: pydantic reads a builtin's signature from its text with
    # tokenize's large regex, compiled once per process (~3 ms of a command's start-up)
    no_cache: list[LayerName] = Field(default_factory=lambda: [])
    kv_sharing: Annotated[dict[LayerName, LayerName], Field(max_length=MAX_LAYERS)] | None = Field(
        default=None,
        description="Layers that keep no cache of their own and read a listed layer's "
        "(vLLM's kv_sharing_target_layer_name): sharing layer -> its target in layers.",
    )

    @field_validator("kv_sharing")
    @classmethod
    def _sharing_targets_listed(
        cls, sharing: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        layers = info.data.get("layers")
        if not sharing or layers is None:  # no layers: their own error says why
            return sharing
        errors: list[InitErrorDetails] = []
        for name, target in sharing.items():
            if name in layers:
                template = "layer {name} is in layers, so it cannot share another's cache"
                kind = "kv_sharing_layer_listed"
            elif target not in layers:
                template = "layer {name} shares {target}, which is not one of layers"
                kind = "kv_sharing_target_elsewhere"
            else:
                continue
            error = PydanticCustomError(kind, template, {"name": name, "target": target})
            errors.append({"type": error, "loc": (name,), "input": target})
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return sharing

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not is_wrapped_layer_map(data):
            return {"layers": data}
        tp = data.get("tensor_parallel_size") if isinstance(data, Mapping) else None
        if type(tp) is int and tp >= 1 and data.get("parallelism") is None:
            # what `kvschema layers -o json` writes: its specs are one rank of that TP
            return {**data, "parallelism": {"tensor_parallel_size": tp}}
        return data

    @model_validator(mode="after")
    def _one_scope(self) -> "LayerMap":
        tp, scope = self.tensor_parallel_size, self.parallelism
        if tp is not None and scope is not None and scope.tensor_parallel_size != tp:
            raise PydanticCustomError(
                "scope_mismatch",
                "tensor_parallel_size is {tp} but parallelism says {scoped}; one document "
                "describes one scope",
                {"tp": tp, "scoped": scope.tensor_parallel_size},
            )
        return self
