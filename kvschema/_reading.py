"""What every reader of kvschema shares: a size cap, no hang, and no key twice in a JSON object.

Every reader of a path in kvschema (deploy files, ``config.json``, committed schemas) goes
through :func:`read_capped`: it reads regular files and pipes, refuses directories, devices
and sockets by their type (``/dev/zero`` and ``/dev/tty`` are never read), and stops at
``limit`` bytes however much the source would give.  A named pipe is opened without waiting
for a writer; one that nobody writes to reads as empty.

pydantic's JSON parser keeps the last of two equal keys, silently; the command line refuses
them. :func:`refuse_duplicate_keys` gives the library's JSON readers
(``CacheGroupsConfig.model_validate_json``, ``parse_spec`` of JSON text, ``read_config``)
the command line's rule, as a pydantic ``ValidationError`` of type ``duplicate_key``.

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = os.path.join(folder, "a.yaml")
...     with open(path, "w") as handle:
...         _ = handle.write("a: 1\\n")
...     read_capped(path, 100)
b'a: 1\\n'
>>> read_capped("/dev/zero", 100)
Traceback (most recent call last):
...
kvschema._reading.FileReadError: not a regular file or a pipe: a character device
>>> duplicate_keys('{"a": 1, "b": {"c": 2, "c": 3}}')
['c']
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, BinaryIO, ClassVar

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from kvschema.errors import KVSchemaError

__all__ = [
    "MAX_BYTES",
    "FileReadError",
    "colons_at_most",
    "duplicate_keys",
    "load_json",
    "read_capped",
    "read_stream_capped",
    "refuse_duplicate_keys",
]

#: The size cap of a reader without a limit of its own (``config.json``, committed schemas).
MAX_BYTES = 16 * 1024 * 1024


class FileReadError(KVSchemaError):
    """A path that cannot be read; ``fields["reason"]`` says why, for callers' own wording.

    Reasons: ``missing``, ``directory``, ``not_a_file``, ``permission``, ``too_large`` (with
    ``limit``), ``os`` (any other error of the operating system).

    >>> FileReadError("no such file", reason="missing").fields["reason"]
    'missing'
    """

    error_type: ClassVar[str] = "load"


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _too_large(limit: int, size: int | None = None) -> FileReadError:
    said = (
        f"{size} bytes, larger than {limit}" if size is not None else f"larger than {limit} bytes"
    )
    return FileReadError(said, reason="too_large", limit=limit, size=size)


def read_stream_capped(stream: BinaryIO, limit: int, expected: int = 0) -> bytes:
    """At most ``limit`` bytes of ``stream``, read in pieces; more is a ``too_large`` error.

    ``expected`` (the size ``stat`` gave) lets a small file be read in one piece; a stale
    value only changes how reads are cut.

    >>> import io
    >>> read_stream_capped(io.BytesIO(b"abc"), 3)
    b'abc'
    """
    pieces: list[bytes] = []
    total = 0
    piece = max(expected + 1, 1 << 16)  # no limit-sized buffer for a small file
    while True:
        raw = stream.read(min(piece, limit + 1 - total))
        if not raw:
            return b"".join(pieces)
        pieces.append(raw)
        total += len(raw)
        if total > limit:
            raise _too_large(limit)


def _check_kind(mode: int) -> str:
    kind = _kind(mode)
    if kind == "directory":
        raise FileReadError("is a directory", reason="directory")
    if kind not in ("file", "pipe"):
        raise FileReadError(f"not a regular file or a pipe: a {kind}", reason="not_a_file")
    return kind


def read_capped(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the file at ``path``, at most ``limit`` of them (see the module's rules)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        _check_kind(os.stat(path).st_mode)  # a device is never opened: opening may act
        fd = os.open(path, flags)
        try:
            status = os.fstat(fd)  # what was opened, should the path have changed since
            kind = _check_kind(status.st_mode)
            if kind == "file" and status.st_size > limit:
                raise _too_large(limit, status.st_size)
            if kind == "pipe" and hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)  # opened without waiting for a writer; now wait on data
            handle = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with handle:
            return read_stream_capped(handle, limit, status.st_size if kind == "file" else 0)
    except FileReadError:
        raise
    except FileNotFoundError:
        raise FileReadError("no such file", reason="missing") from None
    except IsADirectoryError:
        raise FileReadError("is a directory", reason="directory") from None
    except PermissionError:
        raise FileReadError("permission denied", reason="permission") from None
    except OSError as err:
        raise FileReadError(f"cannot read: {err.strerror or err}", reason="os") from None
    except ValueError:  # a NUL character in the path
        raise FileReadError("cannot read: the path holds a NUL character", reason="os") from None


def load_json(text: str | bytes | bytearray) -> tuple[Any, list[str]]:
    """``json.loads(text)`` and the keys found twice in one object (its errors pass through).

    >>> load_json('[{"a": 1, "a": 2}]')
    ([{'a': 2}], ['a'])
    """
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                found.append(key)
            out[key] = value
        return out

    return json.loads(text, object_pairs_hook=pairs), found


def duplicate_keys(text: str | bytes | bytearray) -> list[str] | None:
    """The keys found twice in one object of ``text``, or None when it does not parse."""
    try:
        return load_json(text)[1]
    except (ValueError, RecursionError):  # the validator that follows reports its own way
        return None


def colons_at_most(text: str | bytes | bytearray, limit: int) -> bool:
    """Whether ``text`` holds at most ``limit`` colons.

    Every key of a JSON object is followed by one ``:``, so a text with no more than the keys
    a validator read holds no key twice (pydantic keeps the last of two equal keys, and reads
    one).  A short text is counted in one pass; a long one (a document listing many layers,
    whose keys are few) jumps from colon to colon, ``find`` scanning at memory speed.

    >>> colons_at_most('{"a": 1, "b": "x:y"}', 2), colons_at_most(b'{"a": 1}', 1)
    (False, True)
    """
    colon: Any = ":" if isinstance(text, str) else b":"
    if len(text) < 256 * (limit + 1):
        return text.count(colon) <= limit
    find = text.find
    at = -1
    for _ in range(limit + 1):
        at = find(colon, at + 1)
        if at < 0:
            return True
    return False


def refuse_duplicate_keys(text: Any, title: str) -> None:
    """Raise a ``ValidationError`` naming each key ``text`` holds twice in one object.

    >>> refuse_duplicate_keys('{"a": 1, "a": 2}', "CacheGroupsConfig")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for CacheGroupsConfig
      duplicate key 'a' in one JSON object; the later value would silently win [type=duplicate_key, input_value='a', input_type=str]
    """
    if not isinstance(text, (str, bytes, bytearray)):
        return  # pydantic reports the wrong type
    found = duplicate_keys(text)
    if not found:
        return
    errors: list[InitErrorDetails] = [
        {
            "type": PydanticCustomError(
                "duplicate_key",
                "duplicate key {key} in one JSON object; the later value would silently win",
                {"key": repr(key[:60])},
            ),
            "loc": (),  # the parser's hook sees the key, not where its object stands
            "input": key[:60],
        }
        for key in dict.fromkeys(found)
    ]
    raise ValidationError.from_exception_data(title, errors)
