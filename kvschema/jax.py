"""Allocate a planned cache with JAX — sharded over a device mesh — and check it against its schema.

Needs the ``jax`` extra (``pip install 'kvschema[jax]'``); ``import kvschema`` never imports jax.

Layouts (one rank's view; a config holds per-rank specs, as the planner publishes them):

- attention: ``[num_pages, page_size, 2 * num_kv_heads, head_size]``, keys and values
  interleaved per head (index ``2h`` is head ``h``'s key, ``2h + 1`` its value), so a split of
  that axis keeps each head's key and value together; MLA: ``[num_pages, page_size,
  num_kv_heads, head_size]``, one latent per head (one head, as MLA models have); V heads of
  their own size (``head_size_v``): ``k`` and ``v`` arrays, ``[num_pages, page_size,
  num_kv_heads, head_size]`` and ``[..., head_size_v]``; an MLA record format
  (``cache_dtype_str``): ``uint8[num_pages, page_size, num_kv_heads, record_bytes]``;
- a layer that shares another's KV cache (``kv_sharing``): the target's arrays, the same objects;
- recurrent state: one array ``[num_pages, *shape]`` per state, in its own dtype;
- a padded page (``page_size_padded``): the page as raw bytes, ``uint8[num_pages, page_bytes]``
  for attention, and an extra ``uint8[num_pages, pad_bytes]`` array after Mamba states.

With a mesh of ``tp`` devices on ``kv_head_axis``, attention arrays hold ``tp`` times the per-rank
heads, split over the axis, so each device holds exactly its rank's heads (replicated heads are
copies, one per rank, as the planner's tensor-parallel rule says); MLA latents are replicated on
every device; state arrays gain a leading rank axis of size ``tp``, split the same way.

>>> from kvschema import CacheGroupsConfig, CacheGroupSpec, FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=64, dtype="bf16")
>>> config = CacheGroupsConfig(num_pages=8, kv_cache_groups=[
...     CacheGroupSpec(kv_cache_spec=spec, layer_names=["layer.0", "layer.1"])])
>>> cache = allocate(config, abstract=True)
>>> cache["layer.0"]["kv"].shape, cache.nbytes == 2 * 8 * spec.page_size_bytes
((8, 16, 4, 64), True)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

try:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
except ImportError as exc:  # pragma: no cover - exercised only without jax
    raise ImportError(
        "kvschema.jax needs jax; install it with: pip install 'kvschema[jax]'"
    ) from exc

from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.layout.config import CacheGroupsConfig
from kvschema.spec.attention import ATTENTION_SPECS, MLA_CACHE_FORMATS
from kvschema.spec.dtypes import canonical_dtype, dtype_size
from kvschema.spec.union import (
    CacheSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    MambaSpec,
    SlidingWindowSpec,
    UniformTypeSpec,
)

__all__ = ["CacheMismatchError", "KVCacheArrays", "allocate", "spec_from_array", "verify"]


class CacheMismatchError(KVSchemaError):
    """An array that does not match its layer's spec (shape, dtype or bytes)."""

    error_type = "cache_mismatch"


@dataclass
class KVCacheArrays(Mapping[str, dict[str, Any]]):
    """Layer name → its arrays by role (``kv``; ``state.0``, ``state.1``, ``pad``)."""

    layers: dict[str, dict[str, Any]]
    num_pages: int
    mesh: Any = None
    tp: int = 1
    specs: dict[str, CacheSpec] = field(default_factory=dict)

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self.layers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def _unique(self) -> list[Any]:
        seen: dict[int, Any] = {}
        for arrays in self.layers.values():
            for array in arrays.values():
                seen.setdefault(id(array), array)
        return list(seen.values())

    @property
    def nbytes(self) -> int:
        """Bytes of one rank's cache (a pool shared by several layers counted once)."""
        return sum(_per_device_bytes(array) for array in self._unique())

    def layer_nbytes(self, name: str) -> int:
        """One rank's bytes of layer ``name``."""
        return sum(_per_device_bytes(array) for array in self.layers[name].values())

    def device_bytes(self) -> dict[Any, int]:
        """Device → bytes it holds across every layer."""
        held: dict[Any, int] = {}
        for array in self._unique():
            for device, size in _bytes_by_device(array).items():
                held[device] = held.get(device, 0) + size
        return held


def _shard_shape(array: Any) -> tuple[int, ...]:
    sharding = getattr(array, "sharding", None)
    if sharding is None:
        return tuple(array.shape)
    return tuple(sharding.shard_shape(tuple(array.shape)))


def _per_device_bytes(array: Any) -> int:
    itemsize: int = np.dtype(array.dtype).itemsize
    return int(np.prod(_shard_shape(array), dtype=np.int64)) * itemsize


def _bytes_by_device(array: Any) -> dict[Any, int]:
    sharding = getattr(array, "sharding", None)
    devices = sharding.device_set if sharding is not None else {None}
    size = _per_device_bytes(array)
    return dict.fromkeys(devices, size)


def _layer_specs(config: Any) -> tuple[dict[str, CacheSpec], int]:
    config = getattr(config, "config", config)  # a CachePlan
    if not isinstance(config, CacheGroupsConfig):
        raise InvalidArgumentError(
            f"allocate takes a CacheGroupsConfig or a CachePlan, got {type(config).__name__}"
        )
    specs: dict[str, CacheSpec] = {}
    for group in config.kv_cache_groups:
        spec = group.kv_cache_spec
        if group.layer_names is None:
            raise InvalidArgumentError(
                "allocation needs each group's layer_names (null says no count)"
            )
        for name in group.layer_names:
            specs[name] = spec.kv_cache_specs[name] if isinstance(spec, UniformTypeSpec) else spec
    return specs, config.num_pages


def _layouts(spec: CacheSpec, pages: int) -> dict[str, tuple[tuple[int, ...], str, int | None]]:
    """Role → (one rank's shape, dtype, index of the axis split over tp, or None)."""
    if isinstance(spec, MambaSpec):
        dtypes = spec.dtypes or (spec.dtype,) * len(spec.shapes)
        roles: dict[str, tuple[tuple[int, ...], str, int | None]] = {
            f"state.{i}": ((pages, *shape), str(dtype), 0)
            for i, (shape, dtype) in enumerate(zip(spec.shapes, dtypes, strict=True))
        }
        pad = spec.page_size_bytes - spec.raw_page_size_bytes
        if pad:
            roles["pad"] = ((pages, pad), "uint8", 0)
        return roles
    if not isinstance(spec, ATTENTION_SPECS):
        raise InvalidArgumentError(f"cannot allocate a {type(spec).__name__}")
    if spec.page_size_bytes != spec.raw_page_size_bytes:
        return {"kv": ((pages, spec.page_size_bytes), "uint8", None)}
    if spec.cache_dtype_str is not None:  # one opaque record per token, as vLLM allocates it
        record = MLA_CACHE_FORMATS[spec.cache_dtype_str]
        return {"kv": ((pages, spec.page_size, spec.num_kv_heads, record), "uint8", None)}
    if spec.head_size_v is not None:
        rows = (pages, spec.page_size, spec.num_kv_heads)
        return {
            "k": ((*rows, spec.head_size), spec.dtype, 2),
            "v": ((*rows, spec.head_size_v), spec.dtype, 2),
        }
    heads = spec.num_kv_heads if spec.use_mla else 2 * spec.num_kv_heads
    axis = None if spec.use_mla else 2
    return {"kv": ((pages, spec.page_size, heads, spec.head_size), spec.dtype, axis)}


def allocate(
    config: Any,
    *,
    mesh: Mesh | None = None,
    kv_head_axis: str = "tp",
    abstract: bool = False,
    layout: str | None = None,
) -> KVCacheArrays:
    """Create the paged arrays of a ``CacheGroupsConfig`` (or ``CachePlan``) with ``jnp.zeros``.

    ``layout="per_layer"`` gives every layer tensors of its own (EasyDeL's pool);
    ``layout="shared"`` lays a hybrid plan out as vLLM does: one pool per position in a group,
    shared by that position's layer of every group (a pool whose layers differ in shape is raw
    pages, ``uint8[num_pages, page_bytes]``).  The default is ``shared`` for a hybrid
    ``CachePlan`` and ``per_layer`` otherwise.  ``abstract=True`` returns
    ``jax.ShapeDtypeStruct``s and allocates nothing.  With ``mesh``, arrays are laid out over
    ``kv_head_axis`` as the module docstring says.
    """
    specs, pages = _layer_specs(config)
    if layout is None:
        layout = "shared" if getattr(config, "strategy", None) == "hybrid" else "per_layer"
    if layout not in ("per_layer", "shared"):
        raise InvalidArgumentError(f"layout must be 'per_layer' or 'shared', got {layout!r}")
    tp = 1
    if mesh is not None:
        if kv_head_axis not in mesh.shape:
            raise InvalidArgumentError(
                f"mesh has no axis {kv_head_axis!r}; its axes are {', '.join(mesh.axis_names)}"
            )
        tp = int(mesh.shape[kv_head_axis])
    makers: dict[tuple[Any, ...], Any] = {}

    def make(role: str, shape: tuple[int, ...], dtype: str, axis: int | None) -> Any:
        global_shape, sharding = _global(shape, axis, mesh, kv_head_axis, tp, role)
        if abstract:
            return jax.ShapeDtypeStruct(global_shape, jnp.dtype(dtype), sharding=sharding)
        key = (global_shape, dtype, sharding)
        if key not in makers:
            makers[key] = _zeros(global_shape, dtype, sharding)
        return makers[key]()

    layers: dict[str, dict[str, Any]] = {}
    if layout == "per_layer":
        for name, spec in specs.items():
            layers[name] = {role: make(role, *plan) for role, plan in _layouts(spec, pages).items()}
    else:
        for members in _pools(getattr(config, "config", config)):
            shapes = [_layouts(specs[name], pages) for name in members]
            if all(layout == shapes[0] for layout in shapes) and len(shapes[0]) == 1:
                ((role, plan),) = shapes[0].items()
                pool = {role: make(role, *plan)}
            else:
                sizes = {specs[name].page_size_bytes for name in members}
                if len(sizes) > 1:
                    raise InvalidArgumentError(
                        f"layers {', '.join(members)} share a pool but not a page size "
                        f"({sorted(sizes)} bytes): allocate with layout='per_layer'"
                    )
                pool = {"page": make("page", (pages, sizes.pop()), "uint8", None)}
            for name in members:
                layers[name] = pool
    for name, target in getattr(config, "config", config).kv_sharing.items():
        layers[name] = layers[target]  # no cache of its own: the target's arrays
    return KVCacheArrays(layers, pages, mesh, tp, specs)


def _pools(config: CacheGroupsConfig) -> list[list[str]]:
    """vLLM's pools: position ``i`` of every group shares one (a uniform-type group: one each)."""
    groups = [group.layer_names or [] for group in config.kv_cache_groups]
    if len(groups) == 1:
        return [[name] for name in groups[0]]
    width = max(len(names) for names in groups)
    return [[names[i] for names in groups if i < len(names)] for i in range(width)]


def _global(
    shape: tuple[int, ...], axis: int | None, mesh: Mesh | None, name: str, tp: int, role: str
) -> tuple[tuple[int, ...], Any]:
    if mesh is None:
        return shape, None
    if role.startswith("state") or role in ("pad", "page"):  # a leading rank axis
        spec = PartitionSpec(name, *([None] * len(shape)))
        return (tp, *shape), NamedSharding(mesh, spec)
    if axis is None:  # an MLA latent or a raw padded page: every device holds it whole
        return shape, NamedSharding(mesh, PartitionSpec())
    parts: list[str | None] = [None] * len(shape)
    parts[axis] = name
    wide = list(shape)
    wide[axis] *= tp
    return tuple(wide), NamedSharding(mesh, PartitionSpec(*parts))


def _zeros(shape: tuple[int, ...], dtype: str, sharding: Any) -> Any:
    """A function that makes a fresh zero array, laid out on the devices (compiled once)."""
    if sharding is None:
        return lambda: jnp.zeros(shape, jnp.dtype(dtype))
    return jax.jit(lambda: jnp.zeros(shape, jnp.dtype(dtype)), out_shardings=sharding)


def verify(config: Any, arrays: KVCacheArrays | Mapping[str, Mapping[str, Any]]) -> None:
    """Check every layer's arrays against the schema; raise :class:`CacheMismatchError` naming
    the layer when a shape, a dtype or a byte count disagrees (one rank's view)."""
    specs, pages = _layer_specs(config)
    layers = arrays.layers if isinstance(arrays, KVCacheArrays) else arrays
    missing = [name for name in specs if name not in layers]
    if missing:
        raise CacheMismatchError(f"no arrays for layer(s) {', '.join(missing[:8])}", layers=missing)
    for name, spec in specs.items():
        expected = _layouts(spec, pages)
        held = layers[name]
        if set(held) == {"page"}:  # a raw page pool shared with other layers
            expected = {"page": ((pages, spec.page_size_bytes), "uint8", None)}
        if set(held) != set(expected):
            raise CacheMismatchError(
                f"{name}: arrays {sorted(held)}, the schema says {sorted(expected)}", layer=name
            )
        total = 0
        for role, (shape, dtype, _) in expected.items():
            array = held[role]
            local = _shard_shape(array)
            if len(local) == len(shape) + 1 and local[0] == 1:
                local = local[1:]  # the rank axis of a state array
            if canonical_dtype(array.dtype) != canonical_dtype(dtype):
                raise CacheMismatchError(
                    f"{name}.{role}: dtype {canonical_dtype(array.dtype)}, the schema says {dtype}",
                    layer=name,
                )
            if tuple(local) != shape:
                raise CacheMismatchError(
                    f"{name}.{role}: one rank holds shape {tuple(local)}, the schema says {shape}",
                    layer=name,
                )
            total += int(np.prod(local, dtype=np.int64)) * dtype_size(dtype)
        if total != pages * spec.page_size_bytes:
            raise CacheMismatchError(
                f"{name}: {total} bytes per rank, the schema says {pages} pages x "
                f"{spec.page_size_bytes} = {pages * spec.page_size_bytes}",
                layer=name,
            )


def spec_from_array(
    array: Any,
    *,
    use_mla: bool = False,
    sliding_window: int | None = None,
    attention_chunk_size: int | None = None,
) -> tuple[CacheSpec, int]:
    """Read an attention layer's spec and page count back from one of its arrays (one rank's
    shard when it is sharded), so a live cache can be checked against a deploy config.

    >>> import jax.numpy as jnp
    >>> spec, pages = spec_from_array(jnp.zeros((4, 16, 8, 64), jnp.bfloat16))
    >>> spec.type_id, pages
    ('full_attention_16_16384', 4)
    """
    shape = _shard_shape(array)
    if len(shape) != 4:
        raise InvalidArgumentError(
            f"an attention array has 4 axes [pages, page_size, heads, head_size], got {shape}"
        )
    pages, page_size, heads, head_size = shape
    if not use_mla and heads % 2:
        raise InvalidArgumentError(f"{heads} interleaved K/V rows is odd: is this an MLA latent?")
    geometry = {
        "page_size": page_size,
        "num_kv_heads": heads if use_mla else heads // 2,
        "head_size": head_size,
        "dtype": canonical_dtype(array.dtype),
        "use_mla": use_mla,
    }
    spec: CacheSpec
    if sliding_window is not None:
        spec = SlidingWindowSpec(**geometry, sliding_window=sliding_window)
    elif attention_chunk_size is not None:
        spec = ChunkedLocalAttentionSpec(**geometry, attention_chunk_size=attention_chunk_size)
    else:
        spec = FullAttentionSpec(**geometry)
    return spec, pages
