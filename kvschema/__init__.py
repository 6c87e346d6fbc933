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
    from kvschema.compat import CompatibilityReport, check_compatible
    from kvschema.dtypes import DTYPE_ALIASES, DTYPE_SIZES, canonical_dtype, dtype_size
    from kvschema.errors import (
        DTypeError,
        InvalidArgumentError,
        KVSchemaError,
        MaskDetailsError,
        SpecMergeError,
    )
    from kvschema.exchange import fingerprint, layout_fingerprint, to_canonical_json
    from kvschema.groups import SCHEMA_VERSION, CacheGroupsConfig, CacheGroupSpec
    from kvschema.masks import (
        AttnMaskType,
        MaskDetail,
        create_kv_cache_specs_from_config,
        groups_from_mask_details,
    )
    from kvschema.merge import merge_specs
    from kvschema.planner import CachePlan, InsufficientMemoryError, plan_cache
    from kvschema.schema import json_schemas
    from kvschema.sharding import shard_spec
    from kvschema.specs import (
        CacheSpec,
        ChunkedLocalAttentionSpec,
        FullAttentionSpec,
        MambaSpec,
        SlidingWindowSpec,
        UniformTypeSpec,
        parse_spec,
    )

_WHERE: dict[str, str] = {
    "CompatibilityReport": "compat",
    "check_compatible": "compat",
    "fingerprint": "exchange",
    "layout_fingerprint": "exchange",
    "to_canonical_json": "exchange",
    "AttnMaskType": "masks",
    "CacheGroupSpec": "groups",
    "CacheGroupsConfig": "groups",
    "CachePlan": "planner",
    "CacheSpec": "specs",
    "ChunkedLocalAttentionSpec": "specs",
    "DTYPE_ALIASES": "dtypes",
    "DTYPE_SIZES": "dtypes",
    "DTypeError": "errors",
    "FullAttentionSpec": "specs",
    "InsufficientMemoryError": "planner",
    "InvalidArgumentError": "errors",
    "KVSchemaError": "errors",
    "MambaSpec": "specs",
    "MaskDetail": "masks",
    "MaskDetailsError": "errors",
    "SCHEMA_VERSION": "groups",
    "SlidingWindowSpec": "specs",
    "SpecMergeError": "errors",
    "UniformTypeSpec": "specs",
    "canonical_dtype": "dtypes",
    "create_kv_cache_specs_from_config": "masks",
    "dtype_size": "dtypes",
    "groups_from_mask_details": "masks",
    "json_schemas": "schema",
    "merge_specs": "merge",
    "parse_spec": "specs",
    "plan_cache": "planner",
    "shard_spec": "sharding",
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
    "FullAttentionSpec",
    "InsufficientMemoryError",
    "InvalidArgumentError",
    "KVSchemaError",
    "MambaSpec",
    "MaskDetail",
    "MaskDetailsError",
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
    "groups_from_mask_details",
    "json_schemas",
    "layout_fingerprint",
    "merge_specs",
    "parse_spec",
    "plan_cache",
    "shard_spec",
    "to_canonical_json",
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
