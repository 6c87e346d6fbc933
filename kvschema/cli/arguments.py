"""Each command's options, added when its parser is first used.

``kvschema.cli.app`` makes every command's parser (the names and one-line helps ``kvschema
--help`` lists) and adds a command's options when it runs (parsing, its usage and its help all
need them): a run builds the options of its own command only.  ``COMMANDS`` holds, in the order
``kvschema --help`` lists them, each command's ``add_parser`` keywords and what adds its options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import kvschema.cli.commands as run_command
from kvschema.cli.options import positive_count
from kvschema.cli.pipeline import cmd_fingerprint

__all__ = ["COMMANDS"]


def _sizes(text: str) -> list[int]:
    from kvschema.errors import KVSchemaError
    from kvschema.render.units import parse_sizes

    try:
        return parse_sizes(text)
    except KVSchemaError as err:
        raise argparse.ArgumentTypeError(err.message) from None


def _hf_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--page-size",
        type=positive_count,
        default=None,
        metavar="N",
        help="tokens per page, as vLLM's --block-size (with --hf-config; default: vLLM's, 16, "
        "grown for a hybrid model until one attention page holds one state page)",
    )
    parser.add_argument(
        "--kv-cache-dtype",
        default=None,
        metavar="DTYPE",
        help="cache dtype (with --hf-config; default auto: the checkpoint's dtype)",
    )
    parser.add_argument(
        "--mamba-cache-dtype",
        default=None,
        metavar="DTYPE",
        help="recurrent-state dtype (with --hf-config; default auto: the model's dtype)",
    )
    parser.add_argument(
        "--mamba-ssm-cache-dtype",
        default=None,
        metavar="DTYPE",
        help="SSM-state dtype (with --hf-config; default auto: the family's setting)",
    )
    parser.add_argument(
        "--gdn-prefill-backend",
        choices=["flashinfer", "triton"],
        default=None,
        help="gated delta-net prefill kernel (Qwen3-Next, Qwen3.5; default flashinfer, vLLM's "
        "choice on Hopper: 64-token checkpoints and one more state page per request)",
    )


def _validate(validate: argparse.ArgumentParser) -> None:
    validate.add_argument("files", nargs="+", metavar="FILE", help="files to check; - reads stdin")
    validate.add_argument(
        "--path",
        metavar="POINTER",
        help="JSON pointer to the section to check, e.g. /serving/kv_cache",
    )
    validate.add_argument(
        "--kind",
        choices=["spec", "group", "config", "layers", "groups"],
        help="the document type (default: recognised; a layer map (layers) or a list of groups "
        "(groups) is never recognised, only named)",
    )
    validate.add_argument(
        "--format",
        choices=["yaml", "json", "toml"],
        help="parse every file as this (default: by extension; stdin: JSON if it starts with { or [)",
    )
    validate.add_argument("-o", "--output", choices=["text", "json"], default="text")
    loud = validate.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    loud.add_argument("-v", "--verbose", action="store_true", help="also a line per valid file")
    validate.add_argument(
        "--max-bytes",
        type=positive_count,
        default=16 * 1024 * 1024,
        metavar="N",
        help="largest file read (default: 16 MiB)",
    )
    validate.add_argument(
        "--max-depth",
        type=positive_count,
        default=64,
        metavar="N",
        help="deepest nesting (default: 64)",
    )
    validate.add_argument(
        "--max-values",
        type=positive_count,
        default=1_000_000,
        metavar="N",
        help="most values, YAML aliases counted as expanded (default: 1000000)",
    )
    validate.add_argument(
        "-j",
        "--jobs",
        type=positive_count,
        default=0,
        metavar="N",
        help="worker processes (default: one per core, each with 32 or more files)",
    )
    validate.set_defaults(handler=run_command.cmd_validate)


def _plan(plan: argparse.ArgumentParser) -> None:
    source = plan.add_mutually_exclusive_group(required=True)
    source.add_argument("--layers", metavar="FILE", help="a layer map: layer name -> spec")
    source.add_argument(
        "--hf-config", metavar="PATH", help="a Hugging Face config.json (or its folder)"
    )
    source.add_argument(
        "--groups",
        metavar="FILE",
        help="a CacheGroupsConfig, or what plan -o json writes (num_pages is ignored)",
    )
    plan.add_argument(
        "--groups-list",
        action="store_true",
        help="--groups FILE holds a list of groups, not a config",
    )
    plan.add_argument(
        "--memory",
        type=_sizes,
        required=True,
        metavar="SIZE",
        help="KV-cache memory per rank, one per stage with commas: bytes, or 80GB (10^9 bytes "
        "each), 80GiB or 80Gi (2^30); one letter as vLLM reads it: 80G (2^30), 80g (10^9)",
    )
    plan.add_argument(
        "--path",
        metavar="POINTER",
        help="plan the section of --layers/--groups FILE at this JSON pointer (e.g. /kv_cache)",
    )
    plan.add_argument(
        "--max-model-len",
        type=positive_count,
        metavar="N",
        help="tokens per request (default with --hf-config: the model's own, as vLLM derives it)",
    )
    plan.add_argument(
        "--allow-long-max-model-len",
        action="store_true",
        help="allow more than the model's own length (vLLM's VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)",
    )
    plan.add_argument(
        "--max-num-batched-tokens",
        type=positive_count,
        default=8192,
        metavar="N",
        help="tokens scheduled per step (default: 8192)",
    )
    plan.add_argument(
        "--tp",
        type=positive_count,
        metavar="N",
        help="tensor-parallel size (default: the document's parallelism, else 1)",
    )
    plan.add_argument(
        "--pp",
        type=positive_count,
        metavar="N",
        help="pipeline-parallel size (default: the document's parallelism, else 1)",
    )
    plan.add_argument(
        "--no-enable-prefix-caching",
        dest="enable_prefix_caching",
        action="store_false",
        default=None,
        help="as vLLM's flag (with --hf-config): one state page per request instead of two",
    )
    plan.add_argument(
        "--async-scheduling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pp + 1 batches in flight, or pp with --no-async-scheduling (default: on, as vLLM "
        "0.33 decides; off for --strategy per_layer)",
    )
    plan.add_argument(
        "--disable-hybrid-kv-cache-manager",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="allocate every layer as full attention in one group, or refuse to with --no-... "
        "(default: as vLLM 0.33 decides)",
    )
    plan.add_argument(
        "--eagle",
        action="store_true",
        help="EAGLE-style speculative decoding (chunked local attention then disables the "
        "hybrid KV cache manager)",
    )
    plan.add_argument(
        "--allow-chunked-local-with-hybrid",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE (default: on, as in vLLM 0.33)",
    )
    plan.add_argument(
        "--kv-connector-supports-hma",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a KV connector with or without hybrid-manager support (default: no connector)",
    )
    plan.add_argument("--strategy", choices=["hybrid", "per_layer"], default="hybrid")
    _hf_options(plan)
    plan.add_argument(
        "--format", choices=["yaml", "json", "toml"], help="input format (default: by extension)"
    )
    plan.add_argument("-o", "--output", choices=["text", "json"], default="text")
    plan.add_argument(
        "--chart",
        metavar="FILE.svg",
        help="also draw the plan: memory and pages per request, capacity curve",
    )
    plan.set_defaults(handler=run_command.cmd_plan)


def _layers(layers: argparse.ArgumentParser) -> None:
    layers.add_argument(
        "--hf-config", required=True, metavar="PATH", help="config.json or its folder"
    )
    layers.add_argument(
        "--tp", type=positive_count, default=1, metavar="N", help="tensor-parallel size"
    )
    layers.add_argument("-o", "--output", choices=["text", "json"], default="text")
    _hf_options(layers)
    layers.set_defaults(handler=run_command.cmd_layers)


def _fit(fit: argparse.ArgumentParser) -> None:
    from kvschema.cli.fit_cli import add_fit_arguments

    add_fit_arguments(fit)
    fit.set_defaults(handler=run_command.cmd_fit)


def _models(models: argparse.ArgumentParser) -> None:
    models.add_argument("-o", "--output", choices=["text", "markdown"], default="text")
    models.set_defaults(handler=run_command.cmd_models)


def _diff(diff: argparse.ArgumentParser) -> None:
    diff.add_argument(
        "a", metavar="A", help="the sending peer's CacheGroupsConfig, or a plan (plan -o json)"
    )
    diff.add_argument(
        "b", metavar="B", help="the receiving peer's CacheGroupsConfig, or a plan (plan -o json)"
    )
    diff.add_argument(
        "--tp-a",
        type=positive_count,
        metavar="N",
        help="A's tensor-parallel size (default: as A records it, else 1)",
    )
    diff.add_argument(
        "--tp-b",
        type=positive_count,
        metavar="N",
        help="B's tensor-parallel size (default: as B records it, else 1)",
    )
    diff.add_argument(
        "--path",
        metavar="POINTER",
        help="compare the sections of A and B at this JSON pointer (e.g. /serving/kv_cache)",
    )
    diff.add_argument("--format", choices=["yaml", "json", "toml"], help="input format")
    diff.add_argument("-o", "--output", choices=["text", "json"], default="text")
    diff.set_defaults(handler=run_command.cmd_diff)


def _fingerprint(prints: argparse.ArgumentParser) -> None:
    prints.add_argument("file", metavar="FILE", help="the document; - reads stdin")
    prints.add_argument(
        "--path", metavar="POINTER", help="fingerprint the section at this JSON pointer"
    )
    prints.add_argument("--format", choices=["yaml", "json", "toml"], help="input format")
    prints.add_argument("-o", "--output", choices=["text", "json"], default="text")
    prints.set_defaults(handler=cmd_fingerprint)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 1..65535, got {text!r}")
    return value


def _serve(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this computer)"
    )
    serve.add_argument("--port", type=_port, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding an address other computers reach (nothing authenticates them)",
    )
    serve.set_defaults(handler=run_command.cmd_serve)


def _schema(schema: argparse.ArgumentParser) -> None:
    schema.add_argument("--out", default="schemas", metavar="DIR", help="folder (default: schemas)")
    schema.add_argument(
        "--check", action="store_true", help="exit 1 naming each file that differs from the code"
    )
    schema.set_defaults(handler=run_command.cmd_schema)


#: Each command, in the order ``kvschema --help`` lists them: its one-line help, its description
#: and what adds its options.
COMMANDS: dict[str, tuple[str, str | None, Callable[[argparse.ArgumentParser], None]]] = {
    "validate": (
        "check deploy files that hold a KV-cache layout",
        "Check YAML, JSON or TOML files holding a cache spec, a group or a CacheGroupsConfig. "
        "Exit 0 when all are valid, 1 when a document is wrong, 2 for usage errors and files "
        "that cannot be read, parsed or kept within the limits.",
        _validate,
    ),
    "plan": (
        "plan the page count of a model's cache for a memory budget",
        "Group the layers as vLLM's hybrid allocator does (or as EasyDeL's per-layer pool), "
        "size one page index, and count the pages a per-rank memory budget holds. Exit 1 when "
        "one request of --max-model-len does not fit, 2 for usage errors.",
        _plan,
    ),
    "layers": (
        "list the per-layer specs of a Hugging Face config.json",
        "Read a model's config.json (no transformers, no network) and print every layer's "
        "per-rank spec and the KV bytes per token. Exit 2 when it cannot be read.",
        _layers,
    ),
    "fit": (
        "will a model fit on these GPUs, and what will vLLM print",
        "Compute vLLM 0.33's KV-cache budget per rank (GPU memory x utilization - weights - "
        "activation peak - non-torch - CUDA graphs, each an interval), plan the cache exactly, "
        "and print the verdict and the lines vLLM prints. With --kv-cache-memory-bytes the "
        "budget is exact. Exit 0 when it fits (at the low end of the budget), 1 when it does "
        "not or only might, 2 for usage errors.",
        _fit,
    ),
    "models": (
        "list the model families --hf-config reads, and how",
        "Every model family kvschema sizes from a config.json: its model types, the vLLM 0.33 "
        "architectures it serves, and the rule each layer is read by.",
        _models,
    ),
    "diff": (
        "check that one layout's pages can move to another's",
        "A sends pages, B receives them (a prefill and a decode node). Exit 0 when compatible, "
        "1 when not, 2 for usage errors and files that cannot be read or are invalid.",
        _diff,
    ),
    "fingerprint": (
        "print a layout's fingerprint and layout fingerprint",
        "Print the fingerprints of docs/exchange.md: fingerprint (the whole canonical document) "
        "and, for a CacheGroupsConfig, layout_fingerprint (its groups only, what peers must "
        "share). FILE holds a config, a group, a spec, or a plan as plan -o json writes it (its "
        "layout is read). Exit 1 when the document is invalid, 2 for usage errors and files "
        "that cannot be read.",
        _fingerprint,
    ),
    "serve": (
        "a capacity planner in the browser and a JSON API (the serve extra)",
        "Serve the page and the JSON API (validate, plan, fit, compat, fingerprint, the GPU "
        "catalogue, example models, the schemas) on 127.0.0.1. Needs the extra: "
        'pip install ".[serve]". Exit 2 without it or for usage errors.',
        _serve,
    ),
    "schema": ("write the JSON Schemas, or check committed ones for drift", None, _schema),
}
