"""kvschema: the KV-cache layout of an LLM inference engine as a checked, serializable schema.

>>> import kvschema
>>> spec = kvschema.parse_spec({"kind": "full_attention", "page_size": 16,
...                             "num_kv_heads": 8, "head_size": 128, "dtype": "bf16"})
>>> spec.type_id
'full_attention_16_65536'
"""

from kvschema.dtypes import DTYPE_ALIASES, DTYPE_SIZES, canonical_dtype, dtype_size
from kvschema.errors import (
    DTypeError,
    InvalidArgumentError,
    KVSchemaError,
    MaskDetailsError,
    SpecMergeError,
)
from kvschema.groups import SCHEMA_VERSION, CacheGroupsConfig, CacheGroupSpec
from kvschema.masks import (
    AttnMaskType,
    MaskDetail,
    create_kv_cache_specs_from_config,
    groups_from_mask_details,
)
from kvschema.schema import json_schemas
from kvschema.specs import (
    CacheSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    MambaSpec,
    SlidingWindowSpec,
    merge_specs,
    parse_spec,
)

__version__ = "0.1.0"

__all__ = [
    "AttnMaskType",
    "CacheGroupSpec",
    "CacheGroupsConfig",
    "CacheSpec",
    "ChunkedLocalAttentionSpec",
    "DTYPE_ALIASES",
    "DTYPE_SIZES",
    "DTypeError",
    "FullAttentionSpec",
    "InvalidArgumentError",
    "KVSchemaError",
    "MambaSpec",
    "MaskDetail",
    "MaskDetailsError",
    "SCHEMA_VERSION",
    "SlidingWindowSpec",
    "SpecMergeError",
    "__version__",
    "canonical_dtype",
    "create_kv_cache_specs_from_config",
    "dtype_size",
    "groups_from_mask_details",
    "json_schemas",
    "merge_specs",
    "parse_spec",
]
