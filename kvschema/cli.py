"""The ``kvschema`` command line: the only place that prints or exits.

Exit codes: 0 success, 1 a document is wrong (or schemas drifted), 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _version() -> str:
    from kvschema import __version__

    return __version__


def _cmd_schema(args: argparse.Namespace) -> int:
    from kvschema.schema import check_schemas, write_schemas

    out = Path(args.out)
    if args.check:
        stale = check_schemas(out)
        for path in stale:
            print(f"{path}: differs from the schema the code generates", file=sys.stderr)
        if stale:
            print(f"regenerate with: kvschema schema --out {out}", file=sys.stderr)
            return 1
        return 0
    try:
        written = write_schemas(out)
    except OSError as err:
        print(f"kvschema: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="kvschema",
        description="Check, plan and exchange the KV-cache layouts of LLM inference engines.",
    )
    parser.add_argument("--version", action="version", version=f"kvschema {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    schema = commands.add_parser(
        "schema", help="write the JSON Schemas, or check committed ones for drift"
    )
    schema.add_argument("--out", default="schemas", metavar="DIR", help="folder (default: schemas)")
    schema.add_argument(
        "--check", action="store_true", help="exit 1 naming each file that differs from the code"
    )
    schema.set_defaults(handler=_cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = args.handler(args)
    return code
