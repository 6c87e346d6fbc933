"""The ``kvschema fit`` command line that gives the same answer as a web request.

Only settings that differ from the command's defaults are written, each quoted for a POSIX shell.

>>> from kvschema.serve.schemas import FitRequest
>>> fit_command(FitRequest(model="llama3-8b", gpu="H100", gpus=2, max_model_len="auto"))
'kvschema fit --hf-config llama3-8b.json --gpu H100 --gpus 2 --max-model-len auto'
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from kvschema.serve.schemas import FitRequest, SweepRequest

__all__ = ["config_argument", "fit_command", "sweep_command"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def config_argument(request: FitRequest) -> tuple[str, str | None]:
    """What ``--hf-config`` names, and a note on where that file comes from.

    >>> config_argument(FitRequest(hf_config={}, config_name="../../etc/my config.json"))
    ('my_config.json', None)
    """
    if request.model is not None:
        note = (
            f"{request.model}.json is the bundled example config: GET /api/models/"
            f"{request.model} (the page's download link) gives it"
        )
        return f"{request.model}.json", note
    if request.safetensors_index is not None:
        note = (
            "MODEL_DIR is a folder holding the config.json and model.safetensors.index.json "
            "that were sent"
        )
        return "MODEL_DIR", note
    base = request.config_name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _SAFE_NAME.sub("_", base).strip("._") or "config.json"
    return name, None


def _common(request: FitRequest, lengths: Sequence[object] | None = None) -> list[str]:
    """The options a single fit and a sweep share (vLLM's settings and the weights); a
    sweep's ``lengths`` replace the request's ``max_model_len``."""
    args: list[str] = []
    if request.weights_bytes is not None:
        args += ["--weights-bytes", str(request.weights_bytes)]
    if request.gpu_memory_utilization != 0.9:
        args += ["--gpu-memory-utilization", repr(request.gpu_memory_utilization)]
    if request.kv_cache_memory_bytes is not None:
        args += ["--kv-cache-memory-bytes", str(request.kv_cache_memory_bytes)]
    if lengths is not None:
        args += ["--max-model-len", ",".join(map(str, lengths))]
    elif request.max_model_len is not None:
        args += ["--max-model-len", str(request.max_model_len)]
    if request.max_num_seqs is not None:
        args += ["--max-num-seqs", str(request.max_num_seqs)]
    if request.max_num_batched_tokens is not None:
        args += ["--max-num-batched-tokens", str(request.max_num_batched_tokens)]
    if request.block_size is not None:
        args += ["--block-size", str(request.block_size)]
    if request.enforce_eager:
        args.append("--enforce-eager")
    if request.expert_parallel:
        args.append("--enable-expert-parallel")
    if request.gdn_prefill_backend is not None:
        args += ["--gdn-prefill-backend", request.gdn_prefill_backend]
    if request.vllm_version != "0.33":
        args += ["--vllm-version", request.vllm_version]
    return args


def _line(args: list[str]) -> str:
    return " ".join(shlex.quote(arg) for arg in ["kvschema", "fit", *args])


def fit_command(request: FitRequest) -> str:
    """``kvschema fit`` with the request's settings (and ``--solve`` when it searches)."""
    config, _ = config_argument(request)
    args = ["--hf-config", config]
    if request.gpu is not None:
        args += ["--gpu", request.gpu]
    if request.gpus is not None:
        args += ["--gpus", str(request.gpus)]
    if request.gpu_memory is not None:
        args += ["--gpu-memory", str(request.gpu_memory)]
    if request.tensor_parallel_size is not None:
        args += ["--tp", str(request.tensor_parallel_size)]
    if request.pipeline_parallel_size != 1:
        args += ["--pp", str(request.pipeline_parallel_size)]
    if request.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", request.kv_cache_dtype]
    args += _common(request)
    if request.solve is not None:
        args += ["--solve", request.solve]
        if request.concurrency is not None:
            args += ["--concurrency", str(request.concurrency)]
    return _line(args)


def sweep_command(request: FitRequest, sweep: SweepRequest) -> str:
    """``kvschema fit --sweep`` over the request's choices.

    >>> from kvschema.serve.schemas import SweepRequest
    >>> sweep_command(FitRequest(model="qwen3-8b"), SweepRequest(gpus=["H100", "L40S"]))
    'kvschema fit --hf-config qwen3-8b.json --sweep --gpu H100,L40S --tp 1,2,4,8'
    >>> sweep_command(FitRequest(model="qwen3-8b"), SweepRequest(max_model_lens=[8192, "auto"]))
    'kvschema fit --hf-config qwen3-8b.json --sweep --tp 1,2,4,8 --max-model-len 8192,auto'
    """
    config, _ = config_argument(request)
    args = ["--hf-config", config, "--sweep"]
    if sweep.gpus is not None:
        args += ["--gpu", ",".join(sweep.gpus)]
    args += ["--tp", ",".join(map(str, sweep.tensor_parallel_sizes))]
    if sweep.pipeline_parallel_sizes != [1]:
        args += ["--pp", ",".join(map(str, sweep.pipeline_parallel_sizes))]
    if sweep.kv_cache_dtypes != ["auto"]:
        args += ["--kv-cache-dtype", ",".join(sweep.kv_cache_dtypes)]
    args += _common(request, sweep.max_model_lens)
    return _line(args)
