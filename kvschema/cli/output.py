"""The command line's streams and parser: exits with a clear message, never a traceback.

Text that shows input goes through :func:`~kvschema.reading.text.printable` (re-exported here),
so no input can forge or hide a line; this module adds the parser whose usage errors are
escaped, the streams that fail with a clear message (closed, unencodable, a full disk) and the
terminal colours.

>>> printable("layer.0\\nfile.yaml: ok")
'layer.0\\\\nfile.yaml: ok'
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import errno
import io
import os
import sys
from typing import IO, Any, NoReturn

from kvschema.reading.text import MESSAGE_LIMIT, NAME_LIMIT, printable

__all__ = [
    "EXIT_INTERNAL",
    "MESSAGE_LIMIT",
    "NAME_LIMIT",
    "SafeArgumentParser",
    "Style",
    "os_error_message",
    "prepare_streams",
    "printable",
]

#: The exit code of a failure inside kvschema itself (a bug): never "the document is wrong".
EXIT_INTERNAL = 3


class Style:
    """ANSI colour on a terminal, never with NO_COLOR or TERM=dumb.

    >>> Style(io.StringIO())("ok", "1")
    'ok'
    """

    def __init__(self, stream: IO[str] | None) -> None:
        try:
            tty = stream is not None and stream.isatty()
        except (OSError, ValueError):  # a closed or detached stream
            tty = False
        self.on = tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text


class SafeArgumentParser(argparse.ArgumentParser):
    """``argparse``'s parser whose usage errors show the arguments escaped (see :func:`printable`).

    >>> issubclass(SafeArgumentParser, argparse.ArgumentParser)
    True
    """

    def error(self, message: str) -> NoReturn:
        """Print the usage and the escaped message to standard error; exit 2."""
        lines = message.split("\n")  # argparse's own messages may hold line breaks
        super().error("\n".join(printable(line, MESSAGE_LIMIT) for line in lines))


class _Closed(io.TextIOBase):
    """A standard stream that was closed when the process started: writing to it fails."""

    def __init__(self, name: str) -> None:
        self._name = name

    def write(self, text: str) -> int:
        """Fail: there is nowhere to write."""
        if not text:
            return 0
        raise OSError(errno.EBADF, f"{self._name} is closed")

    def isatty(self) -> bool:
        """Never a terminal."""
        return False


class _Discard(io.TextIOBase):
    """Standard error closed: diagnostics go nowhere, the exit code still tells."""

    def write(self, text: str) -> int:
        """Drop the text."""
        return len(text)


def os_error_message(err: OSError) -> str:
    """What the console script says when the operating system refuses something mid-run.

    >>> os_error_message(OSError(errno.ENOSPC, "No space left on device"))
    'kvschema: cannot write the output: No space left on device'
    >>> os_error_message(OSError(errno.EMFILE, "Too many open files"))
    'kvschema: too many open files for the descriptor limit (ulimit -n): Too many open files'
    """
    said = err.strerror or str(err)
    if err.errno in (errno.EMFILE, errno.ENFILE):
        return f"kvschema: too many open files for the descriptor limit (ulimit -n): {said}"
    if err.errno in _OUTPUT_ERRNOS:
        return f"kvschema: cannot write the output: {said}"
    return f"kvschema: input/output error: {said}"


_OUTPUT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EBADF", "EIO", "EDQUOT", "EFBIG", "EPIPE", "EAGAIN")
    if hasattr(errno, name)
)


def _escape_unencodable(err: UnicodeError) -> tuple[str, int]:
    r"""An encoding error handler: ``\uXXXX`` escapes, valid in JSON strings and plain to read.

    >>> "caf\u00e9 \U0001f600".encode("ascii", "kvschema-escape")
    b'caf\\u00e9 \\ud83d\\ude00'
    """
    if not isinstance(err, UnicodeEncodeError):
        raise err
    pieces = []
    for char in err.object[err.start : err.end]:
        code = ord(char)
        if code > 0xFFFF:  # a surrogate pair, as JSON writes it
            code -= 0x10000
            pieces.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            pieces.append(f"\\u{code:04x}")
    return "".join(pieces), err.end


codecs.register_error("kvschema-escape", _escape_unencodable)


def prepare_streams() -> None:
    """Make the standard streams safe for a run of the console script.

    A stream closed before the run (``>&-``) is ``None`` in Python: standard output becomes a
    stream that fails on the first write (the run exits 2 with a message), standard error one
    that discards. Output that the stream's encoding cannot hold (an ASCII or Latin-1 locale) is
    written as ``\\uXXXX`` escapes instead of failing: still valid JSON for ``-o json``.
    """
    if sys.stdout is None:
        sys.stdout = _Closed("standard output")
    if sys.stderr is None:
        sys.stderr = _Discard()
    for stream in (sys.stdout, sys.stderr):
        reconfigure: Any = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(OSError, ValueError):  # a stream that cannot change
                reconfigure(errors="kvschema-escape")
