"""``kvschema fit``: its arguments (vLLM's names) and what it runs.

The parser lives in ``kvschema.cli.app`` and the command in ``kvschema.cli.commands``; both hand
over to this module, which keeps the fit's many options together.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_fit_arguments(parser)
>>> parser.parse_args(["--hf-config", "c.json", "--max-model-len", "32k"]).max_model_len
[32000]
>>> parser.parse_args(["--hf-config", "c.json", "--max-model-len", "4096,32K,auto"]).max_model_len
[4096, 32768, 'auto']
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from kvschema.cli.options import positive_count

__all__ = ["add_fit_arguments", "run_fit"]

#: The exit codes of ``kvschema.cli.commands`` (not imported: it imports this module).
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def _size_or_int(text: str) -> int:
    """Bytes as vLLM reads them (``20G`` = 20 GiB, ``20g`` = 20e9), as kvschema writes them
    (``20GiB``, ``80GB``), or as vLLM logs them (``27.52GiB``, rounded to the byte)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)([kKmMgGtT])\s*", text)
    if match:
        number, suffix = match.groups()
        if suffix.islower():
            return int(float(number) * int(1000 ** ("kmgt".index(suffix) + 1)))
        if "." in number:
            raise argparse.ArgumentTypeError(f"no decimals with binary suffixes: {text!r}")
        return int(number) * int(1024 ** ("KMGT".index(suffix) + 1))
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit and unit not in _UNITS):
        raise argparse.ArgumentTypeError(
            f"expected a size (bytes, 20GiB, 80GB, or vLLM's 20G / 20g), got {text!r}"
        )
    value = round(Decimal(match.group(1)) * _UNITS.get(unit, 1))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a size of at least one byte, got {text!r}")
    return int(value)


def _length(text: str) -> int | str:
    """``--max-model-len``: tokens as vLLM reads them (``32k``, ``32K``), or ``auto`` / ``-1``."""
    if text.strip() in ("auto", "-1"):
        return "auto"
    value = _size_or_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive length or auto, got {text!r}")
    return value


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """A value or a comma-separated list of them, each read by ``kind`` (``int``: positive)."""
    read = positive_count if kind is int else kind

    def parse(text: str) -> list[Any]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(
                f"expected a value or a comma-separated list, got {text!r}"
            )
        return [read(item) for item in items]

    return parse


def add_fit_arguments(fit: argparse.ArgumentParser) -> None:
    """The options of ``kvschema fit`` (vLLM's names where vLLM has the option)."""
    fit.add_argument(
        "--hf-config",
        required=True,
        metavar="PATH",
        help="config.json, or its folder (whose safetensors headers or "
        "model.safetensors.index.json give the weights)",
    )
    fit.add_argument(
        "--weights-bytes",
        type=_size_or_int,
        metavar="SIZE",
        help="the whole model's weight bytes (vLLM's 'Model loading took' at TP 1)",
    )
    fit.add_argument(
        "--gpu",
        type=_csv(str),
        metavar="NAME",
        help="a GPU of the catalogue (H100, A100-80GB, L40S, ...); a list with --sweep",
    )
    fit.add_argument(
        "--gpus", type=positive_count, metavar="N", help="GPUs: tp x pp (default: tp x pp)"
    )
    fit.add_argument(
        "--gpu-memory",
        type=_size_or_int,
        metavar="SIZE",
        help="a device's memory as CUDA reports it, for a GPU not in the catalogue",
    )
    fit.add_argument(
        "--tp",
        "--tensor-parallel-size",
        dest="tp",
        type=_csv(int),
        metavar="N",
        help="tensor-parallel size (default 1, or --gpus / pp); a list with --sweep",
    )
    fit.add_argument(
        "--pp",
        "--pipeline-parallel-size",
        dest="pp",
        type=_csv(int),
        metavar="N",
        help="pipeline-parallel size (default 1); a list with --sweep",
    )
    fit.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=0.9,
        metavar="F",
        help="fraction of the device vLLM may use (default 0.9)",
    )
    fit.add_argument(
        "--kv-cache-memory-bytes",
        "--kv-cache-memory",
        dest="kv_cache_memory",
        type=_size_or_int,
        metavar="SIZE",
        help="pin the KV cache per GPU, as vLLM's option (the plan is then exact)",
    )
    fit.add_argument(
        "--max-model-len",
        type=_csv(_length),
        metavar="N|auto",
        help="tokens per request (default: the model's own); auto: the largest "
        "that fits, as vLLM's auto-fit; a list with --sweep",
    )
    fit.add_argument(
        "--max-num-seqs",
        type=positive_count,
        metavar="N",
        help="default: vLLM's for the GPU (256, or 1024 on 70 GiB and up, not A100)",
    )
    fit.add_argument(
        "--max-num-batched-tokens",
        type=positive_count,
        metavar="N",
        help="default: vLLM's for the GPU (2048, 8192 or 16384)",
    )
    fit.add_argument(
        "--kv-cache-dtype",
        type=_csv(str),
        metavar="DTYPE",
        help="auto (the checkpoint's), bfloat16, float16, fp8, fp8_e4m3, fp8_e5m2; "
        "a list with --sweep",
    )
    fit.add_argument(
        "--block-size",
        type=positive_count,
        metavar="N",
        help="tokens per block (default: vLLM's, 16, grown for hybrid models)",
    )
    fit.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs")
    fit.add_argument(
        "--enable-expert-parallel",
        action="store_true",
        help="spread MoE experts whole over the ranks",
    )
    fit.add_argument(
        "--gdn-prefill-backend",
        choices=["flashinfer", "triton"],
        help="gated delta-net prefill kernel (default: vLLM's for the GPU)",
    )
    fit.add_argument(
        "--vllm-version",
        default="0.33",
        metavar="V",
        help="the vLLM version to answer for (modelled: 0.33)",
    )
    solve = fit.add_mutually_exclusive_group()
    solve.add_argument(
        "--solve",
        choices=["max-num-seqs", "gpu-memory-utilization", "gpus"],
        help="search a setting: the largest max_num_seqs for the length, or the "
        "smallest utilization or GPU count for --concurrency requests",
    )
    solve.add_argument(
        "--sweep",
        action="store_true",
        help="fit every --gpu x --tp x --pp x --kv-cache-dtype x --max-model-len "
        "(defaults: the catalogue, 1,2,4,8, 1, auto, the model's own); one row each, "
        "most concurrency per GPU first",
    )
    fit.add_argument(
        "--concurrency",
        type=positive_count,
        metavar="N",
        help="requests of max_model_len tokens at once (for --solve)",
    )
    fit.add_argument("-o", "--output", choices=["text", "json"], default="text")


def _one(values: list[Any] | None, name: str) -> Any:
    """A single value of an option that takes a list only with --sweep."""
    if values is None:
        return None
    if len(values) > 1:
        raise ValueError(f"{name} takes one value (a list only with --sweep)")
    return values[0]


def run_fit(args: argparse.Namespace) -> int:
    """``kvschema fit``: one fit, a search (--solve) or a sweep; returns the exit code."""
    from kvschema.errors import KVSchemaError
    from kvschema.planning.fitmodel import FitModel

    try:
        settings: dict[str, Any] = {
            "gpu_memory_utilization": args.gpu_memory_utilization,
            "kv_cache_memory_bytes": args.kv_cache_memory,
            "max_num_seqs": args.max_num_seqs,
            "max_num_batched_tokens": args.max_num_batched_tokens,
            "block_size": args.block_size,
            "enforce_eager": args.enforce_eager,
            "vllm_version": args.vllm_version,
            "gdn_prefill_backend": args.gdn_prefill_backend,
        }
        if args.sweep:
            return _fit_sweep(args, settings)
        settings.update(
            max_model_len=_one(args.max_model_len, "--max-model-len"),
            gpu=_one(args.gpu, "--gpu"),
            gpus=args.gpus,
            gpu_memory=args.gpu_memory,
            tensor_parallel_size=_one(args.tp, "--tp"),
            pipeline_parallel_size=_one(args.pp, "--pp") or 1,
            kv_cache_dtype=_one(args.kv_cache_dtype, "--kv-cache-dtype") or "auto",
        )
        model = FitModel(
            args.hf_config,
            weights_bytes=args.weights_bytes,
            expert_parallel=args.enable_expert_parallel,
        )
        if args.solve is not None:
            return _fit_solve(args, model, settings)
        from kvschema.cli.fit_tables import fit_table
        from kvschema.planning.fit import fit

        report = fit(model, **settings)
    except (KVSchemaError, ValueError) as err:
        message = err.message if isinstance(err, KVSchemaError) else str(err)
        kind = err.error_type if isinstance(err, KVSchemaError) else "invalid_argument"
        print(f"kvschema fit: {message} [{kind}]", file=sys.stderr)
        return EXIT_USAGE
    print(report.model_dump_json(indent=2) if args.output == "json" else fit_table(report))
    return EXIT_OK if report.verdict == "fits" else EXIT_INVALID


def _fit_solve(args: argparse.Namespace, model: Any, settings: dict[str, Any]) -> int:
    from kvschema.cli.fit_tables import solution_text
    from kvschema.planning import solvers

    if args.solve != "max-num-seqs" and args.concurrency is None:
        raise ValueError(f"--solve {args.solve} needs --concurrency N")
    if args.solve == "max-num-seqs":
        if args.concurrency is not None:
            raise ValueError("--solve max-num-seqs finds the concurrency: drop --concurrency")
        settings.pop("max_num_seqs")
        solution = solvers.largest_max_num_seqs(model, **settings)
    elif args.solve == "gpu-memory-utilization":
        settings.pop("gpu_memory_utilization")
        solution = solvers.smallest_utilization(model, concurrency=args.concurrency, **settings)
    else:
        for name in ("gpus", "tensor_parallel_size", "pipeline_parallel_size"):
            settings.pop(name)
        solution = solvers.smallest_gpu_count(model, concurrency=args.concurrency, **settings)
    print(solution.model_dump_json(indent=2) if args.output == "json" else solution_text(solution))
    return EXIT_OK if solution.low is not None else EXIT_INVALID


def _fit_sweep(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    from kvschema.cli.fit_tables import sweep_table
    from kvschema.planning.fitmodel import FitModel
    from kvschema.planning.solvers import sweep

    if args.gpu_memory is not None or args.gpus is not None or args.solve is not None:
        raise ValueError(
            "--sweep takes --gpu, --tp, --pp, --kv-cache-dtype and --max-model-len lists, "
            "not --gpus or --gpu-memory"
        )
    model = FitModel(
        args.hf_config,
        weights_bytes=args.weights_bytes,
        expert_parallel=args.enable_expert_parallel,
    )
    result = sweep(
        model,
        gpus=args.gpu,
        tensor_parallel_sizes=args.tp or (1, 2, 4, 8),
        pipeline_parallel_sizes=args.pp or (1,),
        kv_cache_dtypes=args.kv_cache_dtype or ("auto",),
        max_model_lens=args.max_model_len or (None,),
        **settings,
    )
    print(result.model_dump_json(indent=2) if args.output == "json" else sweep_table(result))
    return EXIT_OK if any(row.verdict == "fits" for row in result.rows) else EXIT_INVALID
