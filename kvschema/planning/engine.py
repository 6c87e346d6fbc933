"""vLLM 0.33's engine-side defaults: the block size and state pages it picks for a model.

A hybrid model's attention block is not the 16 tokens an attention-only model gets: vLLM grows it
until one attention page holds one recurrent-state page, then pads the state page to the
attention page (``vllm/platforms/interface.py::Platform._align_hybrid_block_size``, run by
``update_block_size_for_backend`` once the layers are built).  With prefix caching — on by
default for hybrid generative models (``ModelConfig.is_prefix_caching_supported``) —
``mamba_cache_mode`` is ``"align"`` and each request holds two state pages
(``MambaModelConfig.verify_and_update_config``, ``MambaSpec.max_memory_usage_bytes``).

The defaults are those of a current NVIDIA GPU (Hopper): FlashAttention (and FlashAttention-MLA)
take kernel blocks of any multiple of 16 tokens and prefer 16; the gated delta-net prefill runs
FlashInfer's kernel, which checkpoints the state every 64 tokens, so Qwen3-Next / Qwen3.5 blocks
are multiples of 64 and hold one more state page per request.

>>> align_hybrid_block_size(attention_bytes_per_token=2048, mamba_page_bytes=1_097_728)
HybridBlockSize(block_size=544, mamba_page_size_padded=1114112)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import lcm
from pathlib import Path
from typing import Any, Literal

from kvschema._args import optional_bool_arg, positive_int_arg
from kvschema.errors import InvalidArgumentError
from kvschema.models.hf import HFLayers, layers_from_hf_config
from kvschema.spec.attention import ATTENTION_SPECS
from kvschema.spec.base import _cdiv
from kvschema.spec.state import MambaCacheMode
from kvschema.spec.union import CacheSpec, MambaSpec

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "FLASHINFER_GDN_CHECKPOINT_ALIGNMENT",
    "FLASH_ATTN_KERNEL_BLOCK_SIZE",
    "MLA_HYBRID_BLOCK_FLOOR",
    "GdnPrefillBackend",
    "HybridBlockSize",
    "align_hybrid_block_size",
    "vllm_layers",
    "vllm_layers_from_hf_config",
]

#: ``CacheConfig.DEFAULT_BLOCK_SIZE`` (``vllm/config/cache.py``): the block size before alignment.
DEFAULT_BLOCK_SIZE = 16

#: The smallest kernel block of FlashAttention (``FlashAttentionBackend``:
#: ``[MultipleOf(16)]``) and of FlashAttention-MLA (``FlashAttnMLABackend``), vLLM's defaults on
#: Hopper (``vllm/platforms/cuda.py::_get_backend_priorities``).
FLASH_ATTN_KERNEL_BLOCK_SIZE = 16

#: A hybrid MLA model's block is a multiple of 128 (the TRTLLM / FlashInfer MLA decode kernels'
#: alignment; ``_align_hybrid_block_size``).
MLA_HYBRID_BLOCK_FLOOR = 128

#: Tokens between the states FlashInfer's gated delta-net prefill checkpoints
#: (``vllm/v1/attention/backends/gdn_attn.py``).
FLASHINFER_GDN_CHECKPOINT_ALIGNMENT = 64

#: The gated delta-net prefill kernel: ``"flashinfer"`` is vLLM's choice on Hopper (and on
#: Blackwell with CUDA 13 when the key heads are 128 wide), ``"triton"`` elsewhere
#: (``qwen_gdn_linear_attn.py::_resolve_gdn_prefill_backend``).
GdnPrefillBackend = Literal["flashinfer", "triton"]


@dataclass(frozen=True)
class HybridBlockSize:
    """What ``_align_hybrid_block_size`` settles: the attention block, and the padded state page.

    ``mamba_page_size_padded`` is None when the attention page already equals the state page.

    >>> HybridBlockSize(block_size=80, mamba_page_size_padded=327680).block_size
    80
    """

    block_size: int
    mamba_page_size_padded: int | None


def align_hybrid_block_size(
    *,
    attention_bytes_per_token: int,
    mamba_page_bytes: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    kernel_block_size: int = FLASH_ATTN_KERNEL_BLOCK_SIZE,
    use_mla: bool = False,
    mamba_cache_mode: MambaCacheMode = "align",
    prefill_checkpoint_alignment: int | None = None,
) -> HybridBlockSize:
    """vLLM 0.33's hybrid block size (``Platform._align_hybrid_block_size``), as a pure function.

    ``attention_bytes_per_token`` is one attention layer's page bytes per token on one rank (KV
    heads per rank); ``mamba_page_bytes`` the largest raw state page; ``block_size`` the block
    before alignment (16, or ``--block-size``); ``kernel_block_size`` the backend's smallest
    kernel block.  The alignment grain is ``max(kernel_block_size, block_size)`` — 128 at least
    for MLA — and, in ``"align"`` mode, a multiple of ``prefill_checkpoint_alignment``; the block
    is the fewest grains whose attention page holds the state page, and only ever grows.  The
    state page is then padded to the attention page.

    >>> align_hybrid_block_size(attention_bytes_per_token=4096, mamba_page_bytes=311296)
    HybridBlockSize(block_size=80, mamba_page_size_padded=327680)
    >>> align_hybrid_block_size(attention_bytes_per_token=2048, mamba_page_bytes=1_085_440,
    ...                         prefill_checkpoint_alignment=64).block_size
    576
    """
    per_token = positive_int_arg("attention_bytes_per_token", attention_bytes_per_token)
    state = mamba_page_bytes
    if isinstance(state, bool) or not isinstance(state, int) or state < 0:
        raise InvalidArgumentError(
            f"mamba_page_bytes must be an int >= 0, got {state!r}", mamba_page_bytes=state
        )
    block = positive_int_arg("block_size", block_size)
    kernel = positive_int_arg("kernel_block_size", kernel_block_size)
    if mamba_cache_mode not in ("none", "align"):
        raise InvalidArgumentError(
            f"mamba_cache_mode must be 'none' or 'align' (vLLM 0.33 has no other), "
            f"got {mamba_cache_mode!r}",
            mamba_cache_mode=mamba_cache_mode,
        )
    if state == 0:  # nothing to hold: vLLM returns before touching the block size
        return HybridBlockSize(block_size=block, mamba_page_size_padded=None)
    grain = max(kernel, block)
    if use_mla:
        grain = max(grain, MLA_HYBRID_BLOCK_FLOOR)
    if mamba_cache_mode == "align" and prefill_checkpoint_alignment is not None:
        grain = lcm(
            grain, positive_int_arg("prefill_checkpoint_alignment", prefill_checkpoint_alignment)
        )
    needed = grain * _cdiv(state, grain * per_token)
    needed = kernel * _cdiv(needed, kernel)  # a multiple of every backend's kernel block
    block = max(block, needed)
    page = block * per_token
    return HybridBlockSize(block_size=block, mamba_page_size_padded=None if page == state else page)


def _attention_bytes_per_token(specs: Mapping[str, CacheSpec]) -> tuple[int, bool]:
    """One attention layer's bytes per token, and whether it is MLA; refused when they differ."""
    seen: dict[tuple[int, bool], str] = {}
    for name, spec in specs.items():
        raw = spec.raw_page_size_bytes  # type: ignore[union-attr]
        if raw % spec.page_size:
            raise InvalidArgumentError(
                f"layer {name}: a page of {raw} bytes is not a whole number of bytes per token",
                layer=name,
            )
        seen.setdefault((raw // spec.page_size, bool(spec.use_mla)), name)  # type: ignore[union-attr]
    if len(seen) > 1:
        listed = ", ".join(f"{per} B/token ({name})" for (per, _), name in seen.items())
        raise InvalidArgumentError(
            "vLLM sizes a hybrid model's attention block from one attention geometry, but the "
            f"attention layers differ: {listed}; give the page sizes your engine uses instead",
        )
    ((per_token, mla),) = seen
    return per_token, mla


def vllm_layers(
    layers: Mapping[str, CacheSpec],
    *,
    block_size: int | None = None,
    kernel_block_size: int = FLASH_ATTN_KERNEL_BLOCK_SIZE,
    enable_prefix_caching: bool | None = None,
    max_model_len: int | None = None,
    prefill_checkpoint_alignment: int | None = None,
    num_prefill_checkpoint_blocks: int = 0,
    num_speculative_blocks: int = 0,
) -> dict[str, CacheSpec]:
    """A model's per-rank layer specs, paged as vLLM 0.33 pages them.

    Attention layers get the block size (``block_size``, vLLM's ``--block-size``, or 16), grown
    for a hybrid model by :func:`align_hybrid_block_size`.  State layers get the mode prefix
    caching implies — on by default when the model has attention layers, off for an
    attention-free one — their page padded to the attention page, and ``page_size`` the block
    size (``"align"``) or ``max_model_len`` (``"none"``, where it is required).

    >>> from kvschema import FullAttentionSpec, MambaSpec
    >>> attn = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    >>> state = MambaSpec(page_size=16, shapes=((3, 8192), (8192, 16)), dtype="bf16")
    >>> paged = vllm_layers({"a": attn, "m": state})
    >>> paged["a"].page_size, paged["m"].page_size_bytes, paged["m"].pages_per_request
    (80, 327680, 2)
    """
    specs = dict(layers)
    attention = {n: s for n, s in specs.items() if isinstance(s, ATTENTION_SPECS)}
    states = {n: s for n, s in specs.items() if isinstance(s, MambaSpec)}
    other = sorted(set(specs) - set(attention) - set(states))
    if other:
        raise InvalidArgumentError(
            f"layer {other[0]} is a {type(specs[other[0]]).__name__}: give per-layer specs"
        )
    start = DEFAULT_BLOCK_SIZE if block_size is None else positive_int_arg("block_size", block_size)
    asked = optional_bool_arg("enable_prefix_caching", enable_prefix_caching)
    caching = bool(attention) if asked is None else asked
    mode: MambaCacheMode = "align" if caching else "none"
    block, padded = start, None
    if attention and states:
        per_token, mla = _attention_bytes_per_token(attention)
        aligned = align_hybrid_block_size(
            attention_bytes_per_token=per_token,
            mamba_page_bytes=max(s.raw_page_size_bytes for s in states.values()),
            block_size=start,
            kernel_block_size=kernel_block_size,
            use_mla=mla,
            mamba_cache_mode=mode,
            prefill_checkpoint_alignment=prefill_checkpoint_alignment,
        )
        block, padded = aligned.block_size, aligned.mamba_page_size_padded
    if mode == "none" and states:
        if max_model_len is None:
            raise InvalidArgumentError(
                "with prefix caching off, vLLM gives a state layer one block of max_model_len "
                "tokens: pass max_model_len"
            )
        state_block = positive_int_arg("max_model_len", max_model_len)
    else:
        state_block = block
    out: dict[str, CacheSpec] = {}
    # equal specs page alike: each distinct spec is paged once, and its layers share the result
    # (a plan then buckets them by object, without hashing each layer's spec)
    paged: dict[CacheSpec, CacheSpec] = {}
    for name, spec in specs.items():
        done = paged.get(spec)
        if done is not None:
            out[name] = done
        elif isinstance(spec, MambaSpec):
            out[name] = paged[spec] = spec.model_validate(
                {
                    **spec.model_dump(exclude={"page_size_padded", "type_id", "page_size_bytes"}),
                    "page_size": state_block,
                    "page_size_padded": padded,
                    "mamba_cache_mode": mode,
                    "num_speculative_blocks": num_speculative_blocks,
                    "num_prefill_checkpoint_blocks": num_prefill_checkpoint_blocks
                    if mode == "align"
                    else 0,
                }
            )
        else:
            out[name] = paged[spec] = spec.model_copy(
                update={"page_size": block, "page_size_padded": None}
            )
    return out


def vllm_layers_from_hf_config(
    config: Mapping[str, Any] | str | Path,
    *,
    block_size: int | None = None,
    kv_cache_dtype: Any = "auto",
    tensor_parallel_size: int = 1,
    enable_prefix_caching: bool | None = None,
    max_model_len: int | None = None,
    gdn_prefill_backend: GdnPrefillBackend = "flashinfer",
    mamba_cache_dtype: str = "auto",
    mamba_ssm_cache_dtype: str = "auto",
) -> HFLayers:
    """:func:`~kvschema.models.hf.layers_from_hf_config`, paged as vLLM 0.33 pages the model.

    What ``kvschema plan --hf-config`` plans: the per-rank specs of :func:`vllm_layers`, with
    the gated delta-net prefill checkpoints (``gdn_prefill_backend="flashinfer"``: blocks a
    multiple of 64 tokens, one more state page per request) when every state layer is a gated
    delta-net and prefix caching is on.

    >>> layers = vllm_layers_from_hf_config("tests/fixtures/hf/qwen3-next-80b.json")
    >>> layers["layer.3"].page_size, layers["layer.0"].pages_per_request
    (576, 3)
    """
    if gdn_prefill_backend not in ("flashinfer", "triton"):
        raise InvalidArgumentError(
            f"gdn_prefill_backend must be 'flashinfer' or 'triton', got {gdn_prefill_backend!r}",
            gdn_prefill_backend=gdn_prefill_backend,
        )
    layers = layers_from_hf_config(
        config,
        page_size=DEFAULT_BLOCK_SIZE if block_size is None else block_size,
        kv_cache_dtype=kv_cache_dtype,
        tensor_parallel_size=tensor_parallel_size,
        mamba_cache_dtype=mamba_cache_dtype,
        mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
    )
    checkpoints = gdn_prefill_backend == "flashinfer" and layers.mixers == ("gated_delta_net",)
    if max_model_len is None and layers.model_length is not None:
        max_model_len = layers.model_length.default  # what the plan defaults to
    specs = vllm_layers(
        layers,
        block_size=block_size,
        enable_prefix_caching=enable_prefix_caching,
        max_model_len=max_model_len,
        prefill_checkpoint_alignment=FLASHINFER_GDN_CHECKPOINT_ALIGNMENT if checkpoints else None,
        num_prefill_checkpoint_blocks=1 if checkpoints else 0,
    )
    return layers.with_specs(specs)
