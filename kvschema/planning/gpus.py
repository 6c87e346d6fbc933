"""A catalogue of GPUs: memory as the CUDA runtime reports it, and vLLM's batch-size defaults.

Each entry of ``data/gpus.json`` gives the device total as ``torch.cuda.mem_get_info()`` reports
it (what vLLM multiplies by ``gpu_memory_utilization``) as an interval over published
observations, NVML's total (what vLLM's ``get_batch_defaults`` reads), the compute capability,
and the source of every figure.  :func:`gpu` looks a GPU up by name or alias, forgiving case,
spaces and dashes, and suggests the nearest names on a typo.

>>> h100 = gpu("h100 sxm")
>>> h100.name, h100.device_name, round(h100.cuda_total.point / 2**30, 2)
('H100-SXM', 'NVIDIA H100 80GB HBM3', 79.19)
>>> h100.batch_defaults()  # vllm serve on an H100
BatchDefaults(max_num_batched_tokens=8192, max_num_seqs=1024, tier='>=70GiB')
>>> gpu("A100-80GB").batch_defaults()  # vLLM's A100 rule: the small defaults despite 80 GB
BatchDefaults(max_num_batched_tokens=2048, max_num_seqs=256, tier='default')
"""

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from kvschema.errors import InvalidArgumentError
from kvschema.models.interval import GIB, Interval

__all__ = [
    "GPU",
    "BatchDefaults",
    "GPUSource",
    "UnknownGPUError",
    "batch_defaults",
    "gpu",
    "gpus",
]

MIB = 1 << 20
Usage = Literal["server", "llm"]


class UnknownGPUError(InvalidArgumentError):
    """A GPU name the catalogue does not hold.

    >>> UnknownGPUError("no GPU named 'X'").error_type
    'unknown_gpu'
    """

    error_type = "unknown_gpu"


class GPUSource(BaseModel):
    """Where one figure of a catalogue entry comes from.

    >>> gpu("L4").sources[0].value
    '22.05 GiB'
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    figure: str
    value: str
    source: str


class BatchDefaults(NamedTuple):
    """vLLM's default ``max_num_batched_tokens`` and ``max_num_seqs``, and the tier chosen.

    >>> gpu("B200").batch_defaults().max_num_seqs
    1024
    """

    max_num_batched_tokens: int
    max_num_seqs: int
    tier: str


# vllm 0.33 vllm/engine/arg_utils.py EngineArgs.get_batch_defaults: (llm, server) pairs.
_TIERS: dict[str, dict[Usage, tuple[int, int]]] = {
    ">=160GiB": {"llm": (16384, 1024), "server": (16384, 1024)},
    ">=70GiB": {"llm": (16384, 1024), "server": (8192, 1024)},
    "default": {"llm": (8192, 256), "server": (2048, 256)},
}


def _tier(device_memory: int, device_name: str, compute_capability: str | None) -> str:
    if device_memory >= 160 * GIB:
        return ">=160GiB"
    if (
        device_memory >= 70 * GIB
        and "a100" not in device_name.lower()
        and (
            compute_capability != "12.1"  # GB10 (DGX Spark) stays on the small tier
        )
    ):
        return ">=70GiB"
    return "default"


def batch_defaults(
    device_memory: int,
    device_name: str,
    *,
    usage: Usage = "server",
    compute_capability: str | None = None,
    throughput: bool = False,
) -> BatchDefaults:
    """vLLM 0.33's defaults for a device of ``device_memory`` bytes (NVML's total) and name.

    ``usage="server"`` is ``vllm serve`` (the OpenAI server), ``"llm"`` the ``LLM`` class;
    ``throughput=True`` is ``--performance-mode throughput``, which doubles both.

    >>> batch_defaults(80 * 2**30, "NVIDIA A100-SXM4-80GB")
    BatchDefaults(max_num_batched_tokens=2048, max_num_seqs=256, tier='default')
    >>> batch_defaults(180 * 2**30, "NVIDIA B200", usage="llm", throughput=True)
    BatchDefaults(max_num_batched_tokens=32768, max_num_seqs=2048, tier='>=160GiB')
    """
    if usage not in ("server", "llm"):
        raise InvalidArgumentError(f"usage must be 'server' or 'llm', got {usage!r}")
    tier = _tier(device_memory, device_name, compute_capability)
    tokens, seqs = _TIERS[tier][usage]
    factor = 2 if throughput else 1
    return BatchDefaults(tokens * factor, seqs * factor, tier)


class GPU(BaseModel):
    """One catalogue entry; ``cuda_total`` in bytes, an interval over observations.

    >>> mi300x = gpu("MI300X")
    >>> mi300x.vendor, mi300x.nvml_total, round(mi300x.cuda_total.low / 2**30, 2)
    ('amd', None, 191.45)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str
    vendor: Literal["nvidia", "amd"]
    #: The name the driver reports (``torch.cuda.get_device_name()``, NVML's name).
    device_name: str
    compute_capability: str
    #: The capacity the vendor advertises, in GB.
    memory_gb: int
    # a lambda, not `list`: pydantic reads a builtin's signature from its text with
    # tokenize's large regex, compiled once per process (~3 ms of a command's start-up)
    aliases: list[str] = Field(default_factory=lambda: [])
    #: The device total as ``torch.cuda.mem_get_info()`` reports it, in bytes.
    cuda_total: Interval
    #: NVML's total in bytes (None: no published figure).
    nvml_total: int | None = None
    notes: str | None = None
    sources: list[GPUSource]

    @property
    def a100_rule(self) -> bool:
        """Whether vLLM's A100 rule holds it on the small batch defaults ("a100" in its name).

        >>> gpu("A100-40GB").a100_rule, gpu("H200").a100_rule
        (True, False)
        """
        return "a100" in self.device_name.lower()

    def batch_defaults(self, usage: Usage = "server", *, throughput: bool = False) -> BatchDefaults:
        """vLLM's defaults on this GPU (refused if its memory straddles a tier's threshold).

        Without a published NVML total the bounds are the CUDA total and that plus 1 GiB (NVML
        counts what the driver reserves, a few hundred MiB on the GPUs here).
        """
        if self.nvml_total is not None:
            low = high = self.nvml_total
        else:
            low, high = self.cuda_total.low, self.cuda_total.high + GIB
        found = {
            batch_defaults(
                m,
                self.device_name,
                usage=usage,
                compute_capability=self.compute_capability,
                throughput=throughput,
            )
            for m in (low, high)
        }
        if len(found) > 1:
            raise InvalidArgumentError(
                f"{self.name}: its memory ({low / GIB:.2f}-{high / GIB:.2f} GiB) straddles a "
                "threshold of vLLM's batch defaults; pass max_num_batched_tokens and "
                "max_num_seqs"
            )
        return found.pop()


def _key(name: str) -> str:
    text = name.lower()
    for word in ("nvidia", "geforce", "amd", "instinct"):
        text = text.replace(word, "")
    return re.sub(r"[^a-z0-9]", "", text)


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    """A GPU's fields from its entry of ``data/gpus.json`` (MiB made bytes), for :class:`GPU`.

    >>> GPU.model_validate(_fields(_data()["gpus"][0])).name
    'A10G'
    """
    mib = item["cuda_total_mib"]
    nvml = item.get("nvml_total_mib")
    return {
        "name": item["name"],
        "vendor": item["vendor"],
        "device_name": item["device_name"],
        "compute_capability": item["compute_capability"],
        "memory_gb": item["memory_gb"],
        "aliases": item.get("aliases", []),
        "cuda_total": {
            "low": mib["low"] * MIB,
            "point": mib["point"] * MIB,
            "high": mib["high"] * MIB,
        },
        "nvml_total": None if nvml is None else nvml * MIB,
        "notes": item.get("notes"),
        "sources": item["sources"],
    }


def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        Path(__file__).with_name("data").joinpath("gpus.json").read_text("utf-8")
    )
    return data


def _trusted(fields: dict[str, Any]) -> GPU:
    """The entry as :class:`GPU` without validating it: the shipped file is valid (a test
    validates every entry and compares), and a fit would otherwise build GPU's validator."""
    return GPU.model_construct(
        **{
            **fields,
            "cuda_total": Interval.model_construct(**fields["cuda_total"]),
            "sources": [GPUSource.model_construct(**source) for source in fields["sources"]],
        }
    )


@cache
def _catalogue() -> tuple[tuple[GPU, ...], dict[str, GPU]]:
    entries = [_trusted(_fields(item)) for item in _data()["gpus"]]
    index: dict[str, GPU] = {}
    for entry in entries:
        for label in (entry.name, entry.device_name, *entry.aliases):
            index.setdefault(_key(label), entry)
    return tuple(entries), index


def gpus() -> list[GPU]:
    """Every catalogue entry, in the file's order.

    >>> [g.name for g in gpus()][:3]
    ['A10G', 'L4', 'L40S']
    """
    return list(_catalogue()[0])


def gpu(name: str) -> GPU:
    """The catalogue entry named ``name`` (a name, an alias, or the driver's device name).

    >>> gpu("H10O")
    Traceback (most recent call last):
    ...
    kvschema.planning.gpus.UnknownGPUError: no GPU named 'H10O' in the catalogue; did you mean H100-SXM, H20, H200? (pass the memory instead for any other GPU)
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownGPUError(f"a GPU name must be a non-empty string, got {name!r:.40}")
    entries, index = _catalogue()
    key = _key(name)
    if key in index:
        return index[key]
    import difflib  # an unknown name only

    near = difflib.get_close_matches(key, list(index), n=8, cutoff=0.5)
    names: list[str] = []
    for k in near:
        if index[k].name not in names:
            names.append(index[k].name)
    hint = (
        f"did you mean {', '.join(names[:3])}?"
        if names
        else (f"known: {', '.join(e.name for e in entries)}")
    )
    raise UnknownGPUError(
        f"no GPU named {name!r:.60} in the catalogue; {hint} (pass the memory instead for any "
        "other GPU)",
        gpu=name,
    )
