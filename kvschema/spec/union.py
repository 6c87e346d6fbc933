"""Per-layer cache specs: what one layer's paged KV cache holds, and how big a page is.

Each spec is a frozen Pydantic model with a literal ``kind``.  Its derived values —
``type_id`` (layers whose specs share it may share a page table) and ``page_size_bytes`` —
are computed from the fields with the reference formulas, written on output, and checked on
input when a document carries them.

>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> spec.type_id, spec.page_size_bytes
('full_attention_16_65536', 65536)
>>> spec.max_memory_usage_bytes(max_model_len=4096)
16777216
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, TypeAlias

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from kvschema._reading import colons_at_most, refuse_duplicate_keys
from kvschema.spec.attention import ChunkedLocalAttentionSpec, FullAttentionSpec, SlidingWindowSpec
from kvschema.spec.base import MAX_INT, LayerName, PositiveInt
from kvschema.spec.state import MambaSpec
from kvschema.spec.uniform import UniformTypeSpec

__all__ = [
    "MAX_INT",
    "SPEC_TYPES",
    "CacheSpec",
    "ChunkedLocalAttentionSpec",
    "FullAttentionSpec",
    "LayerName",
    "MambaSpec",
    "PositiveInt",
    "SlidingWindowSpec",
    "UniformTypeSpec",
    "parse_spec",
    "spec_adapter",
    "spec_keys_read",
]


#: Any spec, discriminated on ``kind``; usable as a field type.
CacheSpec: TypeAlias = Annotated[
    FullAttentionSpec | SlidingWindowSpec | ChunkedLocalAttentionSpec | MambaSpec | UniformTypeSpec,
    Field(discriminator="kind"),
]


@cache
def spec_adapter() -> TypeAdapter[Any]:
    """The validator of the ``CacheSpec`` union, built on first use and shared."""
    return TypeAdapter(CacheSpec, config=ConfigDict(title="CacheSpec"))


SPEC_TYPES = (
    FullAttentionSpec,
    SlidingWindowSpec,
    ChunkedLocalAttentionSpec,
    MambaSpec,
    UniformTypeSpec,
)


def parse_spec(data: Any) -> CacheSpec:
    """Validate one spec from a dict, a JSON ``str`` or ``bytes`` (or return a spec as is).

    >>> parse_spec('{"kind": "sliding_window", "page_size": 16, "num_kv_heads": 4, '
    ...            '"head_size": 64, "dtype": "fp16", "sliding_window": 1024}').type_id
    'sliding_window_1024_16_16384'
    """
    if isinstance(data, SPEC_TYPES):
        return data
    if isinstance(data, (str, bytes, bytearray)):
        # A key twice in one object is refused, as the command line does; that error comes
        # first.  The text is parsed once unless it holds more colons than the keys read.
        try:
            spec: CacheSpec = spec_adapter().validate_json(data)
        except ValidationError:
            refuse_duplicate_keys(data, "CacheSpec")
            raise
        if not colons_at_most(data, spec_keys_read(spec)):
            refuse_duplicate_keys(data, "CacheSpec")
        return spec
    return spec_adapter().validate_python(data)  # type: ignore[no-any-return]


def spec_keys_read(spec: Any) -> int:
    """How many keys the JSON objects of a validated spec held, each once: the fields it was
    given, and a uniform-type spec's members and theirs."""
    keys = len(spec.__pydantic_fields_set__)
    if type(spec) is UniformTypeSpec:
        members = spec.kv_cache_specs
        keys += len(members) + sum(len(m.__pydantic_fields_set__) for m in members.values())
    return keys
