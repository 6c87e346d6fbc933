"""What vLLM 0.33 decides for you before it plans a cache: async scheduling and the hybrid manager.

Two engine settings change a plan's numbers without being part of the model: how many batches
are in flight (sliding-window and chunked layers keep their tokens as well as their window), and
whether the hybrid KV cache manager is on (off, every layer is costed as full attention).  Both
default to ``None`` in vLLM 0.33, "let vLLM decide"; these functions decide as 0.33 does for a
GPU deployment with the uniprocess or multiprocess executor (the common case).

>>> resolve_async_scheduling(None), max_concurrent_batches(True, 1), max_concurrent_batches(True, 2)
(True, 2, 3)
>>> resolve_hybrid_kv_cache_manager(None, chunked_local=True)
False
"""

from __future__ import annotations

from typing import Any

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError

__all__ = [
    "max_concurrent_batches",
    "resolve_async_scheduling",
    "resolve_hybrid_kv_cache_manager",
]

#: vLLM 0.33's words when a user enables the manager where it must be off (config/vllm.py).
EXPLICIT_ENABLE_REFUSED = (
    "Hybrid KV cache manager was explicitly enabled but is not supported in this "
    "configuration. Consider omitting the --enable-hybrid-kv-cache-manager flag to let vLLM "
    "decide automatically."
)


def _optional_bool(name: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a bool or None, got {value!r}", **{name: value})
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a bool, got {value!r}", **{name: value})
    return value


def resolve_async_scheduling(async_scheduling: bool | None) -> bool:
    """``async_scheduling`` as vLLM 0.33 resolves it: ``None`` (unset) becomes True.

    vLLM 0.33 (``VllmConfig.__post_init__``, config/vllm.py) turns an unset value on unless the
    model is a pooling model, the executor cannot (uniprocess and multiprocess executors can),
    ROCm DeepEP high-throughput DBO is used, or the V1 model runner meets something it cannot
    overlap.  0.33 runs the V2 model runner by default, which overlaps with pipeline
    parallelism and EAGLE-style speculative decoding too, so for a GPU deployment unset means on.

    >>> resolve_async_scheduling(None), resolve_async_scheduling(False)
    (True, False)
    """
    value = _optional_bool("async_scheduling", async_scheduling)
    return True if value is None else value


def max_concurrent_batches(async_scheduling: bool, pipeline_parallel_size: int) -> int:
    """Batches in flight at once: ``pp + 1`` with async scheduling, else ``pp``.

    ``VllmConfig.max_concurrent_batches`` (config/vllm.py) with the V2 model runner, 0.33's
    default.  (The V1 runner, ``VLLM_USE_V2_MODEL_RUNNER=0``, gives 2 at pp = 1 — the same — and
    turns async scheduling off at pp > 1, which ``async_scheduling=False`` reproduces.)
    Sliding-window and chunked layers keep ``batches * max_num_batched_tokens`` tokens beyond
    their window (``VllmConfig.max_in_flight_tokens``).

    >>> max_concurrent_batches(False, 1), max_concurrent_batches(True, 1), max_concurrent_batches(True, 4)
    (1, 2, 5)
    """
    pp = positive_int_arg("pipeline_parallel_size", pipeline_parallel_size)
    return pp + 1 if async_scheduling else pp


def resolve_hybrid_kv_cache_manager(
    disable_hybrid_kv_cache_manager: bool | None,
    *,
    chunked_local: bool,
    allow_chunked_local_with_hybrid: bool = True,
    eagle: bool = False,
    kv_connector_supports_hybrid: bool | None = None,
) -> bool:
    """Whether vLLM 0.33 runs with the hybrid KV cache manager *disabled* (True) or on (False).

    The rule of ``VllmConfig.__post_init__`` (config/vllm.py, "Hybrid KV cache manager (HMA)
    runtime rules"), on a GPU platform:

    - a model with chunked local attention (``chunked_local``, Llama 4) needs it off when
      speculative decoding uses EAGLE (``eagle``), or when the environment variable
      ``VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE`` is 0
      (``allow_chunked_local_with_hybrid=False``; its default in 0.33's envs.py is "1");
    - left unset (``None``), a KV connector without HMA support
      (``kv_connector_supports_hybrid=False``) turns it off too;
    - set to True (disabled) it is always respected; set to False (enabled) where it must be
      off, vLLM refuses to start, and so does this function.

    >>> resolve_hybrid_kv_cache_manager(None, chunked_local=True, eagle=True)
    True
    >>> resolve_hybrid_kv_cache_manager(None, chunked_local=False, kv_connector_supports_hybrid=False)
    True
    >>> resolve_hybrid_kv_cache_manager(False, chunked_local=True, eagle=True)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: disable_hybrid_kv_cache_manager=False, but vLLM 0.33 must disable the hybrid KV cache manager here (chunked local attention with EAGLE speculative decoding): "Hybrid KV cache manager was explicitly enabled but is not supported in this configuration. Consider omitting the --enable-hybrid-kv-cache-manager flag to let vLLM decide automatically."
    """
    disable = _optional_bool("disable_hybrid_kv_cache_manager", disable_hybrid_kv_cache_manager)
    allow = _bool("allow_chunked_local_with_hybrid", allow_chunked_local_with_hybrid)
    eagle = _bool("eagle", eagle)
    connector = _optional_bool("kv_connector_supports_hybrid", kv_connector_supports_hybrid)
    reason = None
    if chunked_local and eagle:
        reason = "chunked local attention with EAGLE speculative decoding"
    elif chunked_local and not allow:
        reason = (
            "chunked local attention with VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=0 "
            "(allow_chunked_local_with_hybrid=False)"
        )
    if disable is None:
        return reason is not None or connector is False
    if disable is False and reason is not None:
        raise InvalidArgumentError(
            "disable_hybrid_kv_cache_manager=False, but vLLM 0.33 must disable the hybrid KV "
            f'cache manager here ({reason}): "{EXPLICIT_ENABLE_REFUSED}"',
            disable_hybrid_kv_cache_manager=False,
        )
    return disable
