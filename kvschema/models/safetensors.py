"""Checkpoint sizes from safetensors headers and ``model.safetensors.index.json``, never the tensors.

A ``.safetensors`` file starts with an 8-byte little-endian header length ``N``, then ``N`` bytes
of JSON naming every tensor's dtype, shape and byte range in the data that follows.  Only those
``8 + N`` bytes are read; the header is checked as the format demands (a length within the file
and under a cap, a JSON object, well-typed entries, byte ranges that match dtype x shape and tile
the data without gaps or overlaps), and a file that breaks a rule is refused with
:class:`CheckpointError` naming the file and the rule.

>>> import json, struct, tempfile, pathlib
>>> header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}})
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "model.safetensors").write_bytes(
...     struct.pack("<Q", len(header)) + header.encode() + bytes(12))
>>> read_header(folder / "model.safetensors").tensors["w"].nbytes
12
"""

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from kvschema.errors import KVSchemaError

__all__ = [
    "MAX_HEADER_BYTES",
    "SAFETENSORS_DTYPE_BITS",
    "CheckpointError",
    "SafetensorsHeader",
    "TensorInfo",
    "index_total_size",
    "read_folder",
    "read_header",
]

#: The largest header kvschema reads (the Rust ``safetensors`` crate's own limit, 100 MB).
MAX_HEADER_BYTES = 100_000_000

#: Bits per element of each dtype the safetensors format names (sub-byte ones included).
SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


class CheckpointError(KVSchemaError):
    """A checkpoint file kvschema cannot size: missing, truncated, hostile or malformed.

    >>> CheckpointError("x.safetensors: header length 9 exceeds the file (8 bytes)").error_type
    'checkpoint'
    """

    error_type = "checkpoint"


class TensorInfo(BaseModel):
    """One tensor's entry in a safetensors header.

    >>> TensorInfo(dtype="F4", shape=(3,), nbytes=2).nbytes
    2
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    dtype: str
    shape: tuple[int, ...]
    nbytes: int


class SafetensorsHeader(BaseModel):
    """What one file's header says: its tensors (name → entry) and the free-form metadata.

    >>> t = TensorInfo(dtype="BF16", shape=(2, 3), nbytes=12)
    >>> SafetensorsHeader(path="m.safetensors", tensors={"w": t, "b": t}, metadata={}).nbytes
    24
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    path: str
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]

    @property
    def nbytes(self) -> int:
        """The bytes of every tensor in the file."""
        return sum(t.nbytes for t in self.tensors.values())


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise CheckpointError(f"duplicate key {key[:80]!r}")
        seen[key] = value
    return seen


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(where: str, name: str, raw: Any, data_size: int) -> tuple[TensorInfo, int, int]:
    shown = f"{where}: tensor {name[:80]!r}"
    if not isinstance(raw, dict) or set(raw) != {"dtype", "shape", "data_offsets"}:
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"{shown} must hold exactly dtype, shape, data_offsets; got {keys}")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPE_BITS:
        raise CheckpointError(
            f"{shown} has dtype {dtype!r:.40}, not one of {', '.join(SAFETENSORS_DTYPE_BITS)}"
        )
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise CheckpointError(f"{shown} has shape {shape!r:.80}, not a list of ints >= 0")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise CheckpointError(f"{shown} has data_offsets {offsets!r:.80}, not [begin <= end]")
    begin, end = offsets
    nbits = math.prod(shape) * SAFETENSORS_DTYPE_BITS[dtype]
    nbytes = -(-nbits // 8)
    if end - begin != nbytes:
        raise CheckpointError(
            f"{shown}: {dtype} {shape} is {nbytes} bytes but data_offsets span {end - begin}"
        )
    if end > data_size:
        raise CheckpointError(
            f"{shown} ends at byte {end} of the data, past its end ({data_size} bytes): "
            "the file is truncated"
        )
    return TensorInfo(dtype=dtype, shape=tuple(shape), nbytes=nbytes), begin, end


def read_header(path: str | Path, *, max_header_bytes: int = MAX_HEADER_BYTES) -> SafetensorsHeader:
    """The header of one ``.safetensors`` file, checked; the tensor data is never read.

    >>> read_header("/nonexistent.safetensors")
    Traceback (most recent call last):
    ...
    kvschema.models.safetensors.CheckpointError: /nonexistent.safetensors: no such file
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise CheckpointError(
                    f"{path}: {len(prefix)} bytes, shorter than the 8-byte header length",
                    path=str(path),
                )
            (length,) = struct.unpack("<Q", prefix)
            if length > max_header_bytes:
                raise CheckpointError(
                    f"{path}: header length {length} exceeds the {max_header_bytes}-byte cap",
                    path=str(path),
                )
            if 8 + length > size:
                raise CheckpointError(
                    f"{path}: header length {length} exceeds the file ({size} bytes)",
                    path=str(path),
                )
            raw = handle.read(length)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file", path=str(path)) from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: a folder, not a .safetensors file") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err}", path=str(path)) from None
    if len(raw) != length:
        raise CheckpointError(f"{path}: truncated header ({len(raw)} of {length} bytes)")
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: header has a {err.message}", path=str(path)) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise CheckpointError(f"{path}: header is not JSON: {err}", path=str(path)) from None
    if not isinstance(parsed, dict):
        raise CheckpointError(f"{path}: header is a JSON {type(parsed).__name__}, not an object")
    metadata = parsed.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: __metadata__ must map strings to strings")
    data_size = size - 8 - length
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for name, raw_entry in parsed.items():
        info, begin, end = _entry(str(path), name, raw_entry, data_size)
        tensors[name] = info
        spans.append((begin, end, name))
    covered = _check_tiling(str(path), spans)
    if covered != data_size:
        raise CheckpointError(
            f"{path}: the tensors cover {covered} of the {data_size} data bytes after the header",
            path=str(path),
        )
    return SafetensorsHeader(path=str(path), tensors=tensors, metadata=metadata)


def _check_tiling(where: str, spans: list[tuple[int, int, str]]) -> int:
    """The byte ranges follow one another from 0 with no gap and no overlap; where they end."""
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            what = "overlaps the previous one" if begin < position else "leaves a gap"
            raise CheckpointError(
                f"{where}: tensor {name[:80]!r} starts at byte {begin}: it {what} "
                f"(the previous tensor ends at {position})"
            )
        position = end
    return position


def read_folder(
    folder: str | Path, *, max_header_bytes: int = MAX_HEADER_BYTES
) -> list[SafetensorsHeader]:
    """The headers of every ``*.safetensors`` file in ``folder`` (the shards), in name order.

    A tensor named in two shards is refused (the checkpoint would be ambiguous).

    >>> import tempfile
    >>> read_folder(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    kvschema.models.safetensors.CheckpointError: /tmp/...: no .safetensors files
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder", path=str(folder))
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder}: no .safetensors files", path=str(folder))
    headers = [read_header(f, max_header_bytes=max_header_bytes) for f in files]
    owner: dict[str, str] = {}
    for header in headers:
        for name in header.tensors:
            if name in owner:
                raise CheckpointError(
                    f"tensor {name[:80]!r} is in both {owner[name]} and {header.path}"
                )
            owner[name] = header.path
    return headers


def index_total_size(path: str | Path | Mapping[str, Any]) -> int:
    """``metadata.total_size`` of a ``model.safetensors.index.json`` (a file or its folder, or
    its content already read: a web request carries the content, never a path).

    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.safetensors.index.json").write_text(
    ...     json.dumps({"metadata": {"total_size": 16060522496}, "weight_map": {}}))
    >>> index_total_size(folder), index_total_size({"metadata": {"total_size": 2**30}})
    (16060522496, 1073741824)
    """
    if isinstance(path, Mapping):
        return _total_size(path, "the safetensors index")
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors.index.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read: {err}", path=str(path)) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CheckpointError(f"{path}: not JSON: {err}", path=str(path)) from None
    return _total_size(data, str(path))


def _total_size(data: Any, where: str) -> int:
    metadata = data.get("metadata") if isinstance(data, Mapping) else None
    total = metadata.get("total_size") if isinstance(metadata, Mapping) else None
    if isinstance(total, float) and total.is_integer():
        total = int(total)  # some writers emit 1.6e10
    if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
        raise CheckpointError(
            f"{where}: metadata.total_size must be a positive integer, got {total!r:.40}",
            path=where,
        )
    return total
