"""kvschema: the KV-cache layout of an LLM inference engine as a checked, serializable schema.

Public names load on first use, so ``import kvschema`` (and ``kvschema --version``) stays
instant; the first model you touch imports pydantic.

>>> import kvschema
>>> spec = kvschema.parse_spec({"kind": "full_attention", "page_size": 16,
...                             "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"})
>>> spec.type_id
'full_attention_16_65536'
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from kvschema._version import __version__

if TYPE_CHECKING:
    from kvschema.errors import (
        DTypeError,
        InvalidArgumentError,
        KVSchemaError,
        MaskDetailsError,
        SpecMergeError,
    )
    from kvschema.exchange.canonical import fingerprint, layout_fingerprint, to_canonical_json
    from kvschema.exchange.compat import CompatibilityReport, check_compatible
    from kvschema.exchange.schema import json_schemas
    from kvschema.layout.config import SCHEMA_VERSION, CacheGroupsConfig, CacheGroupSpec
    from kvschema.layout.layer_map import LayerMap
    from kvschema.layout.masks import (
        AttnMaskType,
        MaskDetail,
        create_kv_cache_specs_from_config,
        groups_from_mask_details,
    )
    from kvschema.layout.parallel import Parallelism
    from kvschema.planning.engine import vllm_layers_from_hf_config
    from kvschema.planning.fit import FitReport, fit
    from kvschema.planning.plan import CachePlan, InsufficientMemoryError
    from kvschema.planning.planner import plan_cache
    from kvschema.spec.dtypes import DTYPE_ALIASES, DTYPE_SIZES, canonical_dtype, dtype_size
    from kvschema.spec.merge import merge_specs
    from kvschema.spec.sharding import shard_spec
    from kvschema.spec.union import (
        CacheSpec,
        ChunkedLocalAttentionSpec,
        FullAttentionSpec,
        MambaSpec,
        SlidingWindowSpec,
        UniformTypeSpec,
        parse_spec,
    )

_WHERE: dict[str, str] = {
    "CompatibilityReport": "exchange.compat",
    "check_compatible": "exchange.compat",
    "fingerprint": "exchange.canonical",
    "layout_fingerprint": "exchange.canonical",
    "to_canonical_json": "exchange.canonical",
    "AttnMaskType": "layout.masks",
    "CacheGroupSpec": "layout.config",
    "LayerMap": "layout.layer_map",
    "Parallelism": "layout.parallel",
    "vllm_layers_from_hf_config": "planning.engine",
    "FitReport": "planning.fit",
    "fit": "planning.fit",
    "CacheGroupsConfig": "layout.config",
    "CachePlan": "planning.plan",
    "CacheSpec": "spec.union",
    "ChunkedLocalAttentionSpec": "spec.union",
    "DTYPE_ALIASES": "spec.dtypes",
    "DTYPE_SIZES": "spec.dtypes",
    "DTypeError": "errors",
    "FullAttentionSpec": "spec.union",
    "InsufficientMemoryError": "planning.plan",
    "InvalidArgumentError": "errors",
    "KVSchemaError": "errors",
    "MambaSpec": "spec.union",
    "MaskDetail": "layout.masks",
    "MaskDetailsError": "errors",
    "SCHEMA_VERSION": "layout.config",
    "SlidingWindowSpec": "spec.union",
    "SpecMergeError": "errors",
    "UniformTypeSpec": "spec.union",
    "canonical_dtype": "spec.dtypes",
    "create_kv_cache_specs_from_config": "layout.masks",
    "dtype_size": "spec.dtypes",
    "groups_from_mask_details": "layout.masks",
    "json_schemas": "exchange.schema",
    "merge_specs": "spec.merge",
    "parse_spec": "spec.union",
    "plan_cache": "planning.planner",
    "shard_spec": "spec.sharding",
}

__all__ = [
    "AttnMaskType",
    "CacheGroupSpec",
    "CacheGroupsConfig",
    "CachePlan",
    "CacheSpec",
    "ChunkedLocalAttentionSpec",
    "CompatibilityReport",
    "DTYPE_ALIASES",
    "DTYPE_SIZES",
    "DTypeError",
    "FitReport",
    "FullAttentionSpec",
    "InsufficientMemoryError",
    "InvalidArgumentError",
    "KVSchemaError",
    "LayerMap",
    "MambaSpec",
    "MaskDetail",
    "MaskDetailsError",
    "Parallelism",
    "SCHEMA_VERSION",
    "SlidingWindowSpec",
    "SpecMergeError",
    "UniformTypeSpec",
    "__version__",
    "canonical_dtype",
    "check_compatible",
    "create_kv_cache_specs_from_config",
    "dtype_size",
    "fingerprint",
    "fit",
    "groups_from_mask_details",
    "json_schemas",
    "layout_fingerprint",
    "merge_specs",
    "parse_spec",
    "plan_cache",
    "shard_spec",
    "to_canonical_json",
    "vllm_layers_from_hf_config",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kvschema' has no attribute {name!r}")
    value = getattr(import_module(f"kvschema.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
