"""Tensor parallelism: the spec one rank allocates.

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=2, head_size=128, dtype="bf16")
>>> shard_spec(spec, 2).num_kv_heads, shard_spec(spec, 8).num_kv_heads
(1, 1)
"""

from __future__ import annotations

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError
from kvschema.spec.attention import ATTENTION_SPECS
from kvschema.spec.union import (
    CacheSpec,
    MambaSpec,
    UniformTypeSpec,
)

__all__ = ["kv_heads_per_rank", "shard_spec"]


def kv_heads_per_rank(heads: int, tensor_parallel_size: int) -> int:
    """KV heads one rank holds: ``heads / tp`` when tp divides them, 1 when tp is a multiple.

    >>> kv_heads_per_rank(8, 4), kv_heads_per_rank(8, 16)
    (2, 1)
    """
    tp = positive_int_arg("tensor_parallel_size", tensor_parallel_size)
    if heads % tp == 0:
        return heads // tp
    if heads < tp and tp % heads == 0:
        return 1
    raise InvalidArgumentError(
        f"{heads} KV heads cannot be split over tensor_parallel_size={tp}: tp must divide "
        "the heads, or be a multiple of them (heads are then replicated)",
        num_kv_heads=heads,
        tensor_parallel_size=tp,
    )


def shard_spec(spec: CacheSpec, tensor_parallel_size: int) -> CacheSpec:
    """The spec one tensor-parallel rank allocates.

    KV heads are divided by ``tp`` when it divides them, and replicated to one per rank when
    there are fewer heads than ranks and ``tp`` is a multiple of them; anything else is an
    error.  MLA latents are never sharded.  A whole-model ``MambaSpec`` cannot be sharded: how
    vLLM splits a state depends on its mixer (``MambaStateShapeCalculator``: Mamba-2 pads its
    groups, linear attention floors its heads, ...), which the spec does not record; give the
    per-rank specs, or read the model's ``config.json`` (``layers_from_hf_config``).

    >>> from kvschema import FullAttentionSpec, MambaSpec
    >>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> shard_spec(spec, 4).num_kv_heads, shard_spec(spec, 16).num_kv_heads
    (2, 1)
    >>> shard_spec(MambaSpec(page_size=16, shapes=[[3, 64]], dtype="bf16"), 2)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: a MambaSpec (state shapes ((3, 64),)) cannot be split over tensor_parallel_size=2: how a state splits depends on its mixer, which the spec does not record; give the specs one rank holds (plan them with specs_per_rank=True, or at tp 1), or plan from the model's config.json (--hf-config / layers_from_hf_config)
    """
    tp = positive_int_arg("tensor_parallel_size", tensor_parallel_size)
    if tp == 1:
        return spec
    if isinstance(spec, MambaSpec):
        raise InvalidArgumentError(
            f"a MambaSpec (state shapes {spec.shapes}) cannot be split over "
            f"tensor_parallel_size={tp}: how a state splits depends on its mixer, which the spec "
            "does not record; give the specs one rank holds (plan them with specs_per_rank=True, "
            "or at tp 1), or plan from the model's config.json (--hf-config / "
            "layers_from_hf_config)",
            tensor_parallel_size=tp,
        )
    if isinstance(spec, UniformTypeSpec):
        members = {name: shard_spec(member, tp) for name, member in spec.kv_cache_specs.items()}
        return spec.model_copy(update={"kv_cache_specs": members})
    if not isinstance(spec, ATTENTION_SPECS):
        raise InvalidArgumentError(f"cannot shard a {type(spec).__name__}")
    if spec.use_mla:
        return spec
    per_rank = kv_heads_per_rank(spec.num_kv_heads, tp)
    return spec.model_copy(update={"num_kv_heads": per_rank, "page_size_padded": None})
