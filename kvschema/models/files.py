"""Reading a ``config.json`` safely: a dict as it is, a file stat'ed first and capped in size.

A weights shard passed by mistake (gigabytes) is refused after one ``stat``, never read; a FIFO
or a device is refused before it is opened (opening a FIFO would block).

>>> read_config({"model_type": "llama"})
{'model_type': 'llama'}
>>> read_config("/dev/null")
Traceback (most recent call last):
...
kvschema.models.fields.HFConfigError: /dev/null: not a regular file (a FIFO, device or socket is not read)
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvschema._reading import FileReadError, read_capped
from kvschema.models.fields import HFConfigError

__all__ = ["MAX_CONFIG_BYTES", "read_config"]

#: The largest ``config.json`` kvschema reads (a weights shard passed by mistake is refused
#: after one ``stat``, never read whole).
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def _read_file(path: Path) -> dict[str, Any]:
    """A config file, stat'ed first: a regular file of at most :data:`MAX_CONFIG_BYTES`."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise HFConfigError(f"{path}: no such file", path=str(path)) from None
    except OSError as err:
        raise HFConfigError(f"{path}: cannot read: {err.strerror or err}", path=str(path)) from None
    except ValueError as err:  # a path the system cannot take (an embedded null byte)
        raise HFConfigError(f"{str(path)!r}: cannot read: {err}", path=str(path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise HFConfigError(
            f"{path}: not a regular file (a FIFO, device or socket is not read)", path=str(path)
        )
    too_big = (
        f"{path}: {{}} bytes, more than a config.json holds ({MAX_CONFIG_BYTES:,}); a weights file?"
    )
    if info.st_size > MAX_CONFIG_BYTES:
        raise HFConfigError(too_big.format(f"{info.st_size:,}"), path=str(path))
    try:  # the capped reader every file input shares (kvschema._reading)
        text = read_capped(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileReadError as err:
        if err.fields.get("reason") == "too_large":  # grew since the stat
            raise HFConfigError(
                too_big.format(f"over {MAX_CONFIG_BYTES:,}"), path=str(path)
            ) from None
        raise HFConfigError(f"{path}: {err.message}", path=str(path)) from None
    except UnicodeDecodeError as err:
        raise HFConfigError(f"{path}: cannot read: {err}", path=str(path)) from None
    try:  # real files hold Infinity / NaN, which Python's reader takes
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise HFConfigError(f"{path}: not JSON: {err}", path=str(path)) from None
    if not isinstance(data, dict):
        raise HFConfigError(f"{path}: a config.json holds an object, got {type(data).__name__}")
    return data


def read_config(config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """``config`` as a dict: a mapping (copied), or the JSON of a path / a folder's config.json."""
    if isinstance(config, Mapping):
        return dict(config)
    if not isinstance(config, (str, Path)):
        raise HFConfigError(
            f"config must be a dict, a path to config.json or a folder holding one, "
            f"got {type(config).__name__}"
        )
    path = Path(config)
    if path.is_dir():
        path = path / "config.json"
    return _read_file(path)
