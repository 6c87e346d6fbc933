"""The ``kvschema`` command line: argument parsing; the commands live in ``kvschema.cli.commands``.

Exit codes: 0 success, 1 a document is wrong (or schemas drifted, a plan does not fit, layouts
are incompatible), 2 usage or I/O error, 3 an internal error (a bug in kvschema).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from kvschema._version import __version__
from kvschema.cli.arguments import COMMANDS
from kvschema.cli.commands import EXIT_USAGE
from kvschema.cli.helptext import add_examples
from kvschema.cli.output import (
    EXIT_INTERNAL,
    SafeArgumentParser,
    os_error_message,
    prepare_streams,
)
from kvschema.cli.plugins import skip_plugin_discovery

__all__ = ["build_parser", "main", "run"]


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The subcommands; with ``pending``, a command's options are added when it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Command -> what adds its options, for the commands not yet given them.
        self.pending: dict[str, Callable[[argparse.ArgumentParser], None]] = {}

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """Give the chosen command its options, then let it parse the rest as argparse does."""
        if values and values[0] in self.pending:
            self.pending.pop(values[0])(self.choices[values[0]])
        super().__call__(parser, namespace, values, option_string)


def build_parser(*, deferred: bool = False) -> argparse.ArgumentParser:
    """The argument parser of every subcommand.

    With ``deferred`` (what :func:`main` asks for), a command's options are added only when
    that command is chosen: ``kvschema --help`` lists every command as before, and a run builds
    the options of its own command alone.
    """
    parser = SafeArgumentParser(
        prog="kvschema",
        description="Check, plan and exchange the KV-cache layouts of LLM inference engines.",
    )
    parser.add_argument("--version", action="version", version=f"kvschema {__version__}")
    commands = cast(
        _Commands, parser.add_subparsers(dest="command", metavar="COMMAND", action=_Commands)
    )
    for name, (summary, description, add_options) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=description)
        if deferred:
            commands.pending[name] = add_options
        else:
            add_options(command)
    add_examples(commands)  # each --help ends with two or three examples
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser(deferred=True)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    code: int = args.handler(args)
    return code


#: The exit code of a run whose output pipe closed early (as a shell reports SIGPIPE).
EXIT_BROKEN_PIPE = 141


def run() -> None:
    """The console script: :func:`main` in a process of its own, then exit with its code.

    pydantic's plugin discovery is skipped (see :mod:`kvschema.cli.plugins`).  A run is short
    and builds no reference cycles, so the cyclic garbage collector is switched off for it (a
    twentieth of a 200-file run's wall time otherwise), and the process ends without tearing
    the interpreter down (an eighth): output is flushed and ``atexit`` handlers run first, so
    nothing a normal exit would do is lost but the freeing of memory the operating system
    takes back anyway.  A reader that closes the pipe early (``| head``)
    ends the run quietly with exit code 141.
    """
    import atexit
    import gc

    gc.disable()
    prepare_streams()
    skip_plugin_discovery()  # unless PYDANTIC_DISABLE_PLUGINS is set (see kvschema.cli.plugins)
    try:
        try:
            code = main()
        except SystemExit as stop:  # argparse's --help, --version and usage errors
            if stop.code is not None and not isinstance(stop.code, int):
                print(stop.code, file=sys.stderr)
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = EXIT_BROKEN_PIPE
    except OSError as err:  # the output cannot be written (a full disk), too many open files
        code = EXIT_USAGE
        _last_word(os_error_message(err))
    except KeyboardInterrupt:
        code = 130
        _last_word("kvschema: interrupted")
    except Exception as err:  # a bug in kvschema: never a traceback, never "document wrong"
        code = EXIT_INTERNAL
        if os.environ.get("KVSCHEMA_TRACEBACK"):
            import traceback

            traceback.print_exc()
        _last_word(f"kvschema: internal error ({type(err).__name__}); please report it")
    atexit._run_exitfuncs()
    os._exit(code)


def _last_word(message: str) -> None:
    """A line on standard error, written straight to its descriptor, if it is still open."""
    from kvschema.cli.output import MESSAGE_LIMIT, printable

    with contextlib.suppress(OSError):
        os.write(2, (printable(message, MESSAGE_LIMIT) + "\n").encode("utf-8", "backslashreplace"))
