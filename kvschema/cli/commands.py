"""What each ``kvschema`` subcommand does: load, check, plan, print, and return an exit code.

The command line (``kvschema.cli``) parses the arguments and calls these; together they are the
only code that prints.  Heavy imports (pydantic, yaml) happen inside the commands, so
``kvschema --version`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvschema.cli.output import EXIT_INTERNAL, MESSAGE_LIMIT, NAME_LIMIT, Style, printable

__all__ = [
    "EXIT_INTERNAL",
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
_Style = Style  # the name the commands use


def _error_line(name: str, error: dict[str, Any], style: Style) -> str:
    r"""``FILE:LINE:COL: [document N:] $.path: message [type]``, input escaped and cut.

    >>> _error_line("a\nb.yaml", {"line": 2, "column": 1, "path": "$.x", "type": "t",
    ...                           "message": "bad \x1b[2J" + "x" * 2000}, Style(None))[:40]
    'a\\nb.yaml:2:1: $.x: bad \\x1b[2Jxxxxxxxxx'
    """
    from kvschema.reading.report import error_line

    return error_line(name, error, style)


def _shown(text: Any) -> str:
    """Input shown in a line of text: escaped, cut (see :func:`kvschema.cli.output.printable`)."""
    return printable(str(text), MESSAGE_LIMIT)


def _issue_dict(issue: Any, documents: int) -> dict[str, Any]:
    from kvschema.reading.report import issue_dict

    return issue_dict(issue, documents)


def _load_error(err: Any) -> dict[str, Any]:
    """A reader's error as a report entry (see :func:`kvschema.reading.report.load_error_dict`)."""
    from kvschema.reading.report import load_error_dict

    entry = load_error_dict(err)
    del entry["document"]
    return entry


def _json_failure(args: argparse.Namespace, name: str | None, errors: list[dict[str, Any]]) -> None:
    """With ``-o json``, the answer of a command that failed: ``{"ok": false, "errors": [...]}``.

    Each error has the keys of ``validate -o json``'s (``path`` null when the file could not be
    read) and ``file``: the file at fault, or null for an argument or the plan itself.
    """
    if getattr(args, "output", None) == "json":
        keys = ("path", "message", "type", "line", "column")
        listed = [{"file": name, **{key: error.get(key) for key in keys}} for error in errors]
        print(json.dumps({"ok": False, "errors": listed}, indent=2))


def _refuse(args: argparse.Namespace, command: str, message: str, kind: str, code: int) -> int:
    """Print a command's refusal (escaped) and, with ``-o json``, its JSON answer; return ``code``."""
    prefix = f"kvschema {command}" if command else "kvschema"
    print(f"{prefix}: {_shown(message)} [{kind}]", file=sys.stderr)
    _json_failure(args, None, [{"message": message, "type": kind}])
    return code


def _bad_pointer(args: argparse.Namespace) -> str:
    """Why ``--path`` is no JSON pointer (a usage error, exit 2), or "" when it is one."""
    pointer = getattr(args, "path", None)
    if pointer is None or pointer == "" or pointer.startswith("/"):
        return ""
    return f"--path {pointer[:NAME_LIMIT]!r} is not a JSON pointer: one starts with '/'"


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

    if _bad_pointer(args):
        return _refuse(args, "validate", _bad_pointer(args), "usage", EXIT_USAGE)
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
            print(f"{_shown(name)}: ok ({taken})")
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
            print(f"{_shown(path)}: differs from the schema the code generates", file=sys.stderr)
        if stale:
            print(f"regenerate with: kvschema schema --out {_shown(out)}", file=sys.stderr)
            return EXIT_INVALID
        return EXIT_OK
    try:
        written = write_schemas(out)
    except OSError as err:
        print(f"kvschema: cannot write {_shown(out)}: {err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(_shown(path))
    return EXIT_OK


def _plan_layout(data: Any) -> str | None:
    """The pointer to a plan's layout when ``data`` is what ``plan -o json`` writes."""
    is_plan = isinstance(data, dict) and {"config", "inputs", "strategy"} <= data.keys()
    return "/config" if is_plan else None


def _read_one(
    name: str,
    kind: str | None,
    args: argparse.Namespace,
    section: Callable[[Any], str | None] | None = None,
) -> tuple[int, Any]:
    """Load and validate the one document of ``name`` as ``kind`` (None: as recognised).

    Errors are printed on failure.

    ``--path`` selects a section; without it, ``section`` may pick one from the data.
    """
    from kvschema.reading.checking import read_document
    from kvschema.reading.loaders import LoadError, load_file

    if _bad_pointer(args):
        return _refuse(args, args.command, _bad_pointer(args), "usage", EXIT_USAGE), None
    style = _Style(sys.stderr)
    try:
        documents = load_file(name, getattr(args, "format", None))
    except LoadError as err:
        error = _load_error(err)
        print(_error_line(name, error, style), file=sys.stderr)
        _json_failure(args, name, [error])
        return EXIT_USAGE, None
    if len(documents) != 1:
        message = "empty file: no document" if not documents else "expected one document"
        error = {"type": "document_count", "message": message, "path": "$"}
        print(_error_line(name, error, style), file=sys.stderr)
        _json_failure(args, name, [error])
        return EXIT_INVALID, None
    pointer = getattr(args, "path", None)
    if pointer is None and section is not None:
        pointer = section(documents[0].data)
    _, value, issues = read_document(documents[0], kind, pointer)
    errors = [_issue_dict(issue, 1) for issue in issues]
    for error in errors:
        print(_error_line(name, error, style), file=sys.stderr)
    if errors:
        _json_failure(args, name, errors)
    return (EXIT_INVALID, None) if issues else (EXIT_OK, value)


def _hf_layers(args: argparse.Namespace) -> tuple[int, Any]:
    """The per-rank layers of ``--hf-config``: paged as vLLM pages them, unless planned for
    EasyDeL's per-layer pool (``--strategy per_layer``), which keeps the plain pages."""
    from kvschema.cli.options import apply_hf_defaults
    from kvschema.errors import KVSchemaError, KVSchemaWarning
    from kvschema.models.hf import layers_from_hf_config
    from kvschema.planning.engine import DEFAULT_BLOCK_SIZE, vllm_layers_from_hf_config

    apply_hf_defaults(args)  # the parser leaves them None, so plan can refuse them given
    common = {
        "kv_cache_dtype": args.kv_cache_dtype,
        "tensor_parallel_size": args.tp or 1,
        "mamba_cache_dtype": args.mamba_cache_dtype,
        "mamba_ssm_cache_dtype": args.mamba_ssm_cache_dtype,
    }
    with warnings.catch_warnings(record=True) as caught:  # shown as kvschema's own lines
        warnings.simplefilter("always", KVSchemaWarning)
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
            return _refuse(args, "", err.message, err.error_type, EXIT_USAGE), None
        finally:
            for warning in caught:
                print(f"kvschema: warning: {_shown(warning.message)}", file=sys.stderr)


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
        if layers.kv_sharing:  # layers that read another's KV cache (Gemma 3n / 4)
            document["kv_sharing"] = layers.kv_sharing
        print(json.dumps(document, indent=2))
    else:
        print(layers_table(layers, args.tp))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from kvschema.models.catalog import families_markdown, models_listing

    print(families_markdown() if args.output == "markdown" else models_listing())
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from kvschema.cli.options import plan_options_refused
    from kvschema.cli.tables import plan_table
    from kvschema.errors import KVSchemaError
    from kvschema.planning.planner import plan_cache

    if plan_options_refused(args):  # an option that would be ignored is refused instead
        return _refuse(args, "plan", plan_options_refused(args), "usage", EXIT_USAGE)
    if args.hf_config is None and args.max_model_len is None:
        message = (
            "--max-model-len is required with --layers and --groups "
            "(with --hf-config it defaults to the model's own)"
        )
        return _refuse(args, "plan", message, "usage", EXIT_USAGE)
    if args.hf_config is not None and args.path is not None:
        message = "--path selects a section of --layers or --groups"
        return _refuse(args, "plan", message, "usage", EXIT_USAGE)
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
        return _refuse(args, "plan", err.message, err.error_type, EXIT_INVALID)
    if args.chart is not None:
        from kvschema.render.chart import plan_chart

        source = args.hf_config or args.layers or args.groups
        try:
            Path(args.chart).write_text(plan_chart(plan, title=Path(source).stem), encoding="utf-8")
        except OSError as err:
            message = f"cannot write {args.chart}: {err.strerror or err}"
            return _refuse(args, "plan", message, "io", EXIT_USAGE)
    if args.output == "json":
        print(plan.model_dump_json(indent=2))
    else:
        print(plan_table(plan))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from kvschema.cli.options import diff_tensor_parallel
    from kvschema.errors import KVSchemaError
    from kvschema.exchange.compat import check_compatible

    configs = []
    for name in (args.a, args.b):  # a layout, what plan -o json writes, or --path's section
        code, config = _read_one(name, "config", args, section=_plan_layout)
        if code != EXIT_OK:
            return EXIT_USAGE
        configs.append(config)
    refused, tp_a, tp_b = diff_tensor_parallel(args, configs)
    if refused:
        return _refuse(args, "diff", refused, "usage", EXIT_USAGE)
    try:
        report = check_compatible(configs[0], configs[1], tp_a=tp_a, tp_b=tp_b)
    except KVSchemaError as err:
        return _refuse(args, "diff", err.message, err.error_type, EXIT_USAGE)
    if args.output == "json":
        print(report.model_dump_json(indent=2))
    else:
        shown: dict[tuple[str, str, str, str], list[Any]] = {}
        for item in report.differences:  # one line per place and values, naming its layers
            shown.setdefault((item.path, item.rule, repr(item.a), repr(item.b)), []).append(item)
        for (path, rule, _, _), items in shown.items():
            more = ""
            if len(items) > 1:
                others = [printable(str(i.layer), NAME_LIMIT) for i in items[1:]]
                listed = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                more = f" (also {listed}: {len(items)} layers)"
            print(f"{_shown(path)}: {_shown(items[0].reason)}{more} [{rule}]")
        for item in report.info:
            print(
                f"{_shown(item.path)}: {_shown(item.reason)} "
                f"(a: {_shown(item.a)}, b: {_shown(item.b)}) [info]"
            )
        verdict = "compatible" if report.compatible else "not compatible"
        print(
            f"{_shown(args.a)} -> {_shown(args.b)}: {verdict} (tp {report.tp_a} -> "
            f"{report.tp_b}, {len(report.differences)} difference(s))"
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
            'pip install ".[serve]"',
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
