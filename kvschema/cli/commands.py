"""What each ``kvschema`` subcommand does: load, check, plan, print, and return an exit code.

The command line (``kvschema.cli``) parses the arguments and calls these; together they are the
only code that prints.  Heavy imports (pydantic, yaml) happen inside the commands, so
``kvschema --version`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "cmd_diff",
    "cmd_fit",
    "cmd_layers",
    "cmd_plan",
    "cmd_schema",
    "cmd_serve",
    "cmd_validate",
]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _Style:
    """ANSI colour on a terminal, never with NO_COLOR or TERM=dumb."""

    def __init__(self, stream: IO[str]) -> None:
        self.on = (
            stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        )

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text


def _error_line(name: str, error: dict[str, Any], style: _Style) -> str:
    """``FILE:LINE:COL: [document N:] $.path: message [type]``."""
    from kvschema.reading.report import error_line

    return error_line(name, error, style)


def _issue_dict(issue: Any, documents: int) -> dict[str, Any]:
    from kvschema.reading.report import issue_dict

    return issue_dict(issue, documents)


def _check_file(name: str, args: argparse.Namespace, limits: Any) -> dict[str, Any]:
    """The report entry of one file: whether it is ok, its kinds and its errors (plain data)."""
    from kvschema.reading.loaders import LoadError, load_file
    from kvschema.reading.report import check_documents, load_error_dict

    try:
        documents = load_file(name, args.format, limits)
    except LoadError as err:
        return {
            "file": name,
            "ok": False,
            "documents": 0,
            "errors": [load_error_dict(err)],
            "load_error": err.message,
        }
    return {"file": name, **check_documents(documents, args.kind, args.path)}


def cmd_validate(args: argparse.Namespace) -> int:
    import kvschema.reading.report  # noqa: F401  (built here, before any fork, so workers share it)
    from kvschema.cli.fanout import fan_out
    from kvschema.reading.loaders import Limits, preload

    limits = Limits(max_bytes=args.max_bytes, max_depth=args.max_depth, max_values=args.max_values)
    style = _Style(sys.stdout)
    files: list[str] = args.files
    jobs = 1 if "-" in files else args.jobs
    if jobs != 1:
        preload(files, args.format)
    report = fan_out(lambda name: _check_file(name, args, limits), files, jobs)
    worst = EXIT_OK
    for entry in report:
        if "load_error" in entry:
            worst = EXIT_USAGE
        elif not entry["ok"]:
            worst = max(worst, EXIT_INVALID)

    if args.output == "json":
        print(json.dumps({"ok": worst == EXIT_OK, "files": report}, indent=2))
        return worst
    invalid = 0
    for entry in report:
        name = entry["file"]
        for error in entry["errors"]:
            print(_error_line(name, error, style))
        if entry["errors"]:
            invalid += 1
        elif args.verbose:
            taken = ", ".join(k or "?" for k in entry["kinds"])
            print(f"{name}: ok ({taken})")
    if not args.quiet:
        total = len(report)
        if invalid:
            print(f"{invalid} of {total} file(s) failed", file=sys.stderr)
        else:
            print(f"ok: {total} file(s) valid", file=sys.stderr)
    return worst


def cmd_schema(args: argparse.Namespace) -> int:
    from kvschema.exchange.schema import check_schemas, write_schemas

    out = Path(args.out)
    if args.check:
        stale = check_schemas(out)
        for path in stale:
            print(f"{path}: differs from the schema the code generates", file=sys.stderr)
        if stale:
            print(f"regenerate with: kvschema schema --out {out}", file=sys.stderr)
            return EXIT_INVALID
        return EXIT_OK
    try:
        written = write_schemas(out)
    except OSError as err:
        print(f"kvschema: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(path)
    return EXIT_OK


def _plan_layout(data: Any) -> str | None:
    """The pointer to a plan's layout when ``data`` is what ``plan -o json`` writes."""
    is_plan = isinstance(data, dict) and {"config", "inputs", "strategy"} <= data.keys()
    return "/config" if is_plan else None


def _read_one(
    name: str,
    kind: str,
    args: argparse.Namespace,
    section: Callable[[Any], str | None] | None = None,
) -> tuple[int, Any]:
    """Load and validate the one document of ``name`` as ``kind``; print errors on failure.

    ``--path`` selects a section; without it, ``section`` may pick one from the data.
    """
    from kvschema.reading.checking import read_document
    from kvschema.reading.loaders import LoadError, load_file

    style = _Style(sys.stderr)
    try:
        documents = load_file(name, getattr(args, "format", None))
    except LoadError as err:
        print(_error_line(name, {"type": "load", "message": err.message}, style), file=sys.stderr)
        return EXIT_USAGE, None
    if len(documents) != 1:
        message = "empty file: no document" if not documents else "expected one document"
        error = {"type": "document_count", "message": message, "path": "$"}
        print(_error_line(name, error, style), file=sys.stderr)
        return EXIT_INVALID, None
    pointer = getattr(args, "path", None)
    if pointer is None and section is not None:
        pointer = section(documents[0].data)
    _, value, issues = read_document(documents[0], kind, pointer)
    for issue in issues:
        print(_error_line(name, _issue_dict(issue, 1), style), file=sys.stderr)
    return (EXIT_INVALID, None) if issues else (EXIT_OK, value)


def _hf_layers(args: argparse.Namespace) -> tuple[int, Any]:
    """The per-rank layers of ``--hf-config``: paged as vLLM pages them, unless planned for
    EasyDeL's per-layer pool (``--strategy per_layer``), which keeps the plain pages."""
    from kvschema.errors import KVSchemaError
    from kvschema.models.hf import layers_from_hf_config
    from kvschema.planning.engine import DEFAULT_BLOCK_SIZE, vllm_layers_from_hf_config

    common = {
        "kv_cache_dtype": args.kv_cache_dtype,
        "tensor_parallel_size": args.tp or 1,
        "mamba_cache_dtype": args.mamba_cache_dtype,
        "mamba_ssm_cache_dtype": args.mamba_ssm_cache_dtype,
    }
    try:
        if getattr(args, "strategy", "hybrid") == "per_layer":
            page = DEFAULT_BLOCK_SIZE if args.page_size is None else args.page_size
            return EXIT_OK, layers_from_hf_config(args.hf_config, page_size=page, **common)
        return EXIT_OK, vllm_layers_from_hf_config(
            args.hf_config,
            block_size=args.page_size,
            enable_prefix_caching=getattr(args, "enable_prefix_caching", None),
            max_model_len=getattr(args, "max_model_len", None),
            gdn_prefill_backend=args.gdn_prefill_backend,
            **common,
        )
    except KVSchemaError as err:
        print(f"kvschema: {err.message} [{err.error_type}]", file=sys.stderr)
        return EXIT_USAGE, None


def cmd_layers(args: argparse.Namespace) -> int:
    from kvschema.cli.tables import layers_table

    code, layers = _hf_layers(args)
    if code != EXIT_OK:
        return code
    if args.output == "json":
        document = {
            "model_type": layers.model_type,
            "dtype": layers.dtype,
            "tensor_parallel_size": args.tp or 1,
            "kv_bytes_per_token": layers.kv_bytes_per_token(),
            "state_bytes_per_request": layers.state_bytes_per_request(),
            "no_cache": list(layers.no_cache),
            "layers": {name: spec.model_dump(mode="json") for name, spec in layers.items()},
        }
        print(json.dumps(document, indent=2))
    else:
        print(layers_table(layers, args.tp))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from kvschema.cli.tables import plan_table
    from kvschema.errors import KVSchemaError
    from kvschema.planning.planner import plan_cache

    if args.hf_config is None and args.max_model_len is None:
        print(
            "kvschema plan: --max-model-len is required with --layers and --groups "
            "(with --hf-config it defaults to the model's own)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.hf_config is not None and args.path is not None:
        print("kvschema plan: --path selects a section of --layers or --groups", file=sys.stderr)
        return EXIT_USAGE
    if args.hf_config is not None:
        code, layers = _hf_layers(args)
    elif args.layers is not None:
        code, layers = _read_one(args.layers, "layers", args)
    else:
        # a plan's JSON (plan -o json) is read for its layout: the config and its scope
        kind = "groups" if args.groups_list else "config"
        code, layers = _read_one(args.groups, kind, args, section=_plan_layout)
    if code != EXIT_OK:
        return code
    try:
        plan = plan_cache(
            layers,
            available_bytes=args.memory if len(args.memory) > 1 else args.memory[0],
            max_model_len=args.max_model_len,
            max_num_batched_tokens=args.max_num_batched_tokens,
            strategy=args.strategy,
            tensor_parallel_size=args.tp,
            pipeline_parallel_size=args.pp,
            async_scheduling=args.async_scheduling,
            allow_long_max_model_len=args.allow_long_max_model_len,
            disable_hybrid_kv_cache_manager=args.disable_hybrid_kv_cache_manager,
            allow_chunked_local_with_hybrid=args.allow_chunked_local_with_hybrid,
            eagle=args.eagle,
            kv_connector_supports_hybrid=args.kv_connector_supports_hma,
        )
    except KVSchemaError as err:
        print(f"kvschema plan: {err.message} [{err.error_type}]", file=sys.stderr)
        return EXIT_INVALID
    if args.chart is not None:
        from kvschema.render.chart import plan_chart

        source = args.hf_config or args.layers or args.groups
        try:
            Path(args.chart).write_text(plan_chart(plan, title=Path(source).stem), encoding="utf-8")
        except OSError as err:
            print(
                f"kvschema plan: cannot write {args.chart}: {err.strerror or err}", file=sys.stderr
            )
            return EXIT_USAGE
    if args.output == "json":
        print(plan.model_dump_json(indent=2))
    else:
        print(plan_table(plan))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from kvschema.errors import KVSchemaError
    from kvschema.exchange.compat import check_compatible

    configs = []
    for name in (args.a, args.b):
        code, config = _read_one(name, "config", args)
        if code != EXIT_OK:
            return EXIT_USAGE
        configs.append(config)
    try:
        report = check_compatible(configs[0], configs[1], tp_a=args.tp_a, tp_b=args.tp_b)
    except KVSchemaError as err:
        print(f"kvschema diff: {err.message} [{err.error_type}]", file=sys.stderr)
        return EXIT_USAGE
    if args.output == "json":
        print(report.model_dump_json(indent=2))
    else:
        shown: dict[tuple[str, str, str, str], list[Any]] = {}
        for item in report.differences:  # one line per place and values, naming its layers
            shown.setdefault((item.path, item.rule, repr(item.a), repr(item.b)), []).append(item)
        for (path, rule, _, _), items in shown.items():
            more = ""
            if len(items) > 1:
                others = [str(i.layer) for i in items[1:]]
                listed = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                more = f" (also {listed}: {len(items)} layers)"
            print(f"{path}: {items[0].reason}{more} [{rule}]")
        for item in report.info:
            print(f"{item.path}: {item.reason} (a: {item.a}, b: {item.b}) [info]")
        verdict = "compatible" if report.compatible else "not compatible"
        print(
            f"{args.a} -> {args.b}: {verdict} (tp {report.tp_a} -> {report.tp_b}, "
            f"{len(report.differences)} difference(s))"
        )
    return EXIT_OK if report.compatible else EXIT_INVALID


def cmd_fit(args: argparse.Namespace) -> int:
    from kvschema.cli.fit_cli import run_fit

    return run_fit(args)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        print(
            f"kvschema serve needs the serve extra ({err.name or 'fastapi'} is not installed): "
            'pip install "kvschema[serve]"',
            file=sys.stderr,
        )
        return EXIT_USAGE
    from kvschema.errors import KVSchemaError
    from kvschema.serve.runner import is_loopback, serve

    if not is_loopback(args.host) and not args.allow_remote:
        print(
            f"kvschema serve: --host {args.host} is not a loopback address: other computers "
            "could use the server, and nothing authenticates them; pass --allow-remote to "
            "bind it anyway",
            file=sys.stderr,
        )
        return EXIT_USAGE
    import gc

    gc.enable()  # a long-lived server frees its cycles (the one-shot CLI switches them off)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"kvschema serve: http://{host}:{args.port}/ (Ctrl-C stops it)", file=sys.stderr)
    try:
        serve(args.host, args.port, allow_remote=args.allow_remote)
    except KVSchemaError as err:
        print(f"kvschema serve: {err.message}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
