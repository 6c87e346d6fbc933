"""The lines vLLM prints about its KV cache, by version: what ``kvschema fit`` says it will print.

Each modelled version has a row of :data:`LOG_FORMATS` (only vLLM 0.33 for now; any other
version is refused by :func:`vllm_version`).  The texts are vLLM's own format strings, filled as
vLLM fills them: memory with ``format_gib`` (``vllm/utils/mem_utils.py``:
``f"{round(b / GiB_bytes, 2)}"``, so ``12.5``, not ``12.50``), token counts with ``{:,}`` and the
concurrency with ``%.2f``.  Log prefixes (time, process, file and line) are left out.

>>> format_gib(20 * 2**30), format_gib(13_421_772_800), format_gib(-2**29)
('20.0', '12.5', '-0.5')
>>> print(kv_capacity_lines("0.33", tokens=409_600, max_model_len=32_768, concurrency=12.5)[0].text)
GPU KV cache size: 409,600 tokens, Maximum concurrency for 32,768 tokens per request: 12.50x
"""

import re
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from kvschema.errors import InvalidArgumentError
from kvschema.models.interval import GIB

__all__ = [
    "DEFAULT_VLLM_VERSION",
    "LOG_FORMATS",
    "MODELLED_VERSIONS",
    "LogFormats",
    "LogLine",
    "UnsupportedVersionError",
    "autofit_lines",
    "available_memory_lines",
    "format_gib",
    "insufficient_memory_lines",
    "kv_capacity_lines",
    "no_memory_lines",
    "out_of_memory_lines",
    "pinned_memory_lines",
    "startup_refused_lines",
    "vllm_version",
]

#: The version ``kvschema fit`` answers for when none is named.
DEFAULT_VLLM_VERSION = "0.33"


class UnsupportedVersionError(InvalidArgumentError):
    """A vLLM version whose start-up kvschema does not model.

    >>> UnsupportedVersionError("vLLM 0.20 is not modelled").error_type
    'unsupported_version'
    """

    error_type = "unsupported_version"


class LogLine(BaseModel):
    """One line vLLM prints (without its prefix), where it comes from, and whether it is whole.

    ``complete=False`` marks a fragment: vLLM prints it inside a longer line whose other parts
    kvschema cannot know (the free memory at start, a CUDA allocator's message).

    >>> available_memory_lines("0.33", [21_474_836_480])[0].text
    'Available KV cache memory: 20.0 GiB'
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    level: Literal["INFO", "ERROR"]
    text: str
    source: str
    complete: bool = True


class LogFormats(NamedTuple):
    """One version's log lines: vLLM's format strings, ``{}`` filled by kvschema."""

    available: str
    available_source: str
    pinned: str
    pinned_source: str
    capacity: tuple[str, ...]
    capacity_source: str
    #: What the token figure counts (the line changed meaning between versions).
    capacity_tokens: str
    insufficient: str
    estimate: str
    no_memory: str
    check_source: str
    autofit_full: str
    autofit_reduced: str
    autofit_failed: str
    autofit_source: str
    startup: str
    startup_source: str


_CONSERVING = (
    "See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
)

#: Each modelled version's lines (vLLM 0.33.0 sources cited per entry).
LOG_FORMATS: dict[str, LogFormats] = {
    "0.33": LogFormats(
        available="Available KV cache memory: {} GiB",
        available_source="vllm/v1/worker/gpu_worker.py:Worker.determine_available_memory",
        pinned="reserved {} GiB memory for KV Cache as specified by kv_cache_memory_bytes "
        "config and skipped memory profiling.",
        pinned_source="vllm/v1/worker/gpu_worker.py:Worker.determine_available_memory",
        capacity=(
            "GPU KV cache size: {} tokens, Maximum concurrency for {} tokens per request: {}x",
        ),
        capacity_source="vllm/v1/core/kv_cache_utils.py:update_kv_cache_capacity",
        capacity_tokens="int(max_concurrency x max_model_len), one merged line",
        insufficient="To serve at least one request with the model's max seq len ({}), ({} GiB "
        "KV cache is needed, which is larger than the available KV cache memory ({} GiB). "
        "{}Try increasing `gpu_memory_utilization` (which also controls CPU memory on the CPU "
        "backend) or decreasing `max_model_len` when initializing the engine. " + _CONSERVING,
        estimate="Based on the available memory, the estimated maximum model length is {}. ",
        no_memory="No available memory for the cache blocks. Try increasing "
        "`gpu_memory_utilization` when initializing the engine (this flag also controls CPU "
        "memory reservation on the CPU backend, despite its name). " + _CONSERVING,
        check_source="vllm/v1/core/kv_cache_planning.py:_check_enough_kv_cache_memory",
        autofit_full="Auto-fit max_model_len: full model context length {} fits in available "
        "KV cache memory ({} GiB GPU)",
        autofit_reduced="Auto-fit max_model_len: reduced from {} to {} to fit in available KV "
        "cache memory ({} GiB GPU)",
        autofit_failed="Cannot auto-fit max_model_len: not enough GPU memory available to "
        "serve even a single token. Try increasing `gpu_memory_utilization`.",
        autofit_source="vllm/v1/core/kv_cache_planning.py:_auto_fit_max_model_len",
        startup="is less than desired GPU memory utilization ({}, {} GiB). Decrease GPU memory "
        "utilization or reduce GPU memory used by other processes.",
        startup_source="vllm/v1/worker/utils.py:request_memory",
    ),
}

#: The versions kvschema models, oldest first.
MODELLED_VERSIONS = tuple(LOG_FORMATS)

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+(?:\.?(?:post|rc|dev)\d*)?)?")


def vllm_version(version: str) -> str:
    """The modelled version ``version`` names (``"0.33"``, ``"0.33.1"``, ``"v0.33.0"``).

    >>> vllm_version("v0.33.1")
    '0.33'
    >>> vllm_version("0.27.0")
    Traceback (most recent call last):
    ...
    kvschema.planning.vllm_log.UnsupportedVersionError: vLLM 0.27 is not modelled: kvschema fit models vLLM 0.33 (its engine defaults, memory budget and log lines)
    """
    match = _VERSION.fullmatch(version.strip()) if isinstance(version, str) else None
    if match is None:
        raise UnsupportedVersionError(
            f"vllm_version must look like 0.33 or 0.33.1, got {version!r:.40}",
            vllm_version=version,
        )
    short = f"{int(match.group(1))}.{int(match.group(2))}"
    if short not in LOG_FORMATS:
        raise UnsupportedVersionError(
            f"vLLM {short} is not modelled: kvschema fit models vLLM "
            f"{', '.join(MODELLED_VERSIONS)} (its engine defaults, memory budget and log lines)",
            vllm_version=version,
        )
    return short


def format_gib(value: int) -> str:
    """Bytes in GiB as vLLM's ``format_gib`` prints them: rounded to 2 places, shortest form."""
    return f"{round(value / GIB, 2)}"


def available_memory_lines(version: str, per_stage: list[int]) -> list[LogLine]:
    """ "Available KV cache memory" as each pipeline stage's workers print it (the budget path)."""
    fmt = LOG_FORMATS[version]
    return [
        LogLine(level="INFO", text=fmt.available.format(format_gib(b)), source=fmt.available_source)
        for b in per_stage
    ]


def pinned_memory_lines(version: str, kv_cache_memory_bytes: int) -> list[LogLine]:
    """What ``--kv-cache-memory-bytes`` prints (part of a line that starts with the free memory).

    >>> pinned_memory_lines("0.33", 2**34)[0].text[:40]
    'reserved 16.0 GiB memory for KV Cache as'
    """
    fmt = LOG_FORMATS[version]
    text = fmt.pinned.format(format_gib(kv_cache_memory_bytes))
    return [LogLine(level="INFO", text=text, source=fmt.pinned_source, complete=False)]


def kv_capacity_lines(
    version: str, *, tokens: int, max_model_len: int, concurrency: float
) -> list[LogLine]:
    """The KV cache size and maximum concurrency (0.33: one merged line)."""
    fmt = LOG_FORMATS[version]
    text = fmt.capacity[0].format(f"{tokens:,}", f"{max_model_len:,}", f"{concurrency:.2f}")
    return [LogLine(level="INFO", text=text, source=fmt.capacity_source)]


def insufficient_memory_lines(
    version: str, *, max_model_len: int, needed_bytes: int, available_bytes: int, estimate: int
) -> list[LogLine]:
    """The ValueError of a request of ``max_model_len`` that does not fit.

    ``available_bytes`` is what vLLM compares against: the budget less the null block.

    >>> line = insufficient_memory_lines("0.33", max_model_len=131072, needed_bytes=16 * 2**30,
    ...                                  available_bytes=10 * 2**30, estimate=81920)[0]
    >>> line.text[:93]
    "ValueError: To serve at least one request with the model's max seq len (131072), (16.0 GiB KV"
    """
    fmt = LOG_FORMATS[version]
    hint = fmt.estimate.format(estimate) if estimate > 0 else ""
    text = fmt.insufficient.format(
        max_model_len, format_gib(needed_bytes), format_gib(available_bytes), hint
    )
    return [LogLine(level="ERROR", text=f"ValueError: {text}", source=fmt.check_source)]


def no_memory_lines(version: str) -> list[LogLine]:
    """The ValueError when the budget holds no block beyond the null block."""
    fmt = LOG_FORMATS[version]
    return [LogLine(level="ERROR", text=f"ValueError: {fmt.no_memory}", source=fmt.check_source)]


def autofit_lines(
    version: str, *, original: int, fitted: int, limiting_bytes: int
) -> list[LogLine]:
    """``--max-model-len auto``: kept, reduced, or (``fitted`` 0) refused.

    >>> autofit_lines("0.33", original=131072, fitted=50000, limiting_bytes=2**33)[0].text
    'Auto-fit max_model_len: reduced from 131072 to 50000 to fit in available KV cache memory (8.0 GiB GPU)'
    """
    fmt = LOG_FORMATS[version]
    level: Literal["INFO", "ERROR"] = "INFO"
    if fitted <= 0:
        text, level = f"ValueError: {fmt.autofit_failed}", "ERROR"
    elif fitted >= original:
        text = fmt.autofit_full.format(original, format_gib(limiting_bytes))
    else:
        text = fmt.autofit_reduced.format(original, fitted, format_gib(limiting_bytes))
    return [LogLine(level=level, text=text, source=fmt.autofit_source)]


def startup_refused_lines(version: str, *, utilization: float, requested: int) -> list[LogLine]:
    """The start-up refusal when the free memory is below ``total x utilization`` (a fragment:
    vLLM's line starts with the device and its free memory, which depend on the machine)."""
    fmt = LOG_FORMATS[version]
    text = fmt.startup.format(utilization, format_gib(requested))
    return [
        LogLine(
            level="ERROR", text=f"ValueError: {text}", source=fmt.startup_source, complete=False
        )
    ]


def out_of_memory_lines() -> list[LogLine]:
    """Weights that do not fit on the device: the CUDA allocator fails while loading them."""
    return [
        LogLine(
            level="ERROR",
            text="torch.OutOfMemoryError: CUDA out of memory.",
            source="torch (while vLLM loads the weights)",
            complete=False,
        )
    ]
