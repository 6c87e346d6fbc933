"""A checkpoint's ``quantization_config`` → the bytes each linear layer's weight takes in vLLM.

Supported methods: AWQ, GPTQ (``bits``, ``group_size``, packed zero points, fp16 scales and
``g_idx``), FP8 (per tensor, and block-wise with ``weight_block_size``), FBGEMM FP8 (per
channel), compressed-tensors (int and float schemes: tensor, channel, group, block, NVFP4's
tensor_group), ModelOpt (FP8, NVFP4) and MXFP4 (gpt-oss: experts only).  Modules named in
``modules_to_not_convert`` / ``ignore`` / ``ignored_layers`` / ``exclude_modules`` stay in the
model dtype, as do embeddings, norms and routers; ``lm_head`` is quantized only where the config
says so.  Any other method is refused with :class:`QuantizationError`.

>>> scheme = parse_quantization({"quant_method": "awq", "bits": 4, "group_size": 128,
...                              "zero_point": True}, model_dtype_bytes=2)
>>> fmt = scheme.format_for("model.layers.0.mlp.down_proj")
>>> fmt.name, linear_bytes(fmt, 14336, 4096)
('awq-int4-g128', (29360128, 1146880))
"""

import fnmatch
import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from kvschema.errors import KVSchemaError

__all__ = [
    "LinearFormat",
    "QuantScheme",
    "QuantizationError",
    "dense_format",
    "linear_bytes",
    "parse_quantization",
]


class QuantizationError(KVSchemaError):
    """A ``quantization_config`` kvschema cannot size (unknown method, malformed field).

    >>> QuantizationError("quantization method 'gguf' is not modelled").error_type
    'quantization'
    """

    error_type = "quantization"


class LinearFormat(BaseModel):
    """How one linear layer's weight is stored: bits per weight and its scales / zero points.

    >>> fp8 = LinearFormat(name="fp8-block128x128", weight_bits=8.0, block=(128, 128),
    ...                    scale_bytes=4)
    >>> fp8.quantized, linear_bytes(fp8, 256, 256)
    (True, (65536, 16))
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str
    #: Bits per weight element (4.0 for int4, 16.0 for bf16).
    weight_bits: float
    #: Input elements sharing one scale (None: one scale per output row or per tensor).
    group_size: int | None = None
    #: One scale per output row (per channel) when no group size is set.
    per_channel: bool = False
    #: One scale per (block_n, block_k) tile, FP8 block quantization.
    block: tuple[int, int] | None = None
    scale_bytes: int = 0
    #: Bits per stored zero point (0: symmetric, none stored).
    zero_bits: int = 0
    #: An int32 group index per input element (GPTQ).
    g_idx: bool = False
    #: Whether kernels may repack or pad the weight in memory (the size is then approximate).
    repacked: bool = False

    @property
    def quantized(self) -> bool:
        """Whether the weight is stored below 16 bits or with scales."""
        return self.scale_bytes > 0


def dense_format(dtype_bytes: int) -> LinearFormat:
    """An unquantized weight of ``dtype_bytes`` bytes per element.

    >>> dense_format(2).name
    'dense-16bit'
    """
    return LinearFormat(name=f"dense-{8 * dtype_bytes}bit", weight_bits=8.0 * dtype_bytes)


def linear_bytes(fmt: LinearFormat, in_features: int, out_features: int) -> tuple[int, int]:
    """``(weight bytes, metadata bytes)`` of an ``in_features`` → ``out_features`` linear.

    Metadata is the scales, zero points and group indices (what a TP split may replicate).

    >>> linear_bytes(dense_format(2), 4096, 1024)
    (8388608, 0)
    """
    weight = math.ceil(in_features * out_features * fmt.weight_bits / 8)
    if not fmt.quantized:
        return weight, 0
    if fmt.block is not None:
        tiles = math.ceil(out_features / fmt.block[0]) * math.ceil(in_features / fmt.block[1])
        meta = tiles * fmt.scale_bytes
    elif fmt.group_size is not None:
        scales = math.ceil(in_features / fmt.group_size) * out_features
        meta = scales * fmt.scale_bytes + math.ceil(scales * fmt.zero_bits / 8)
    elif fmt.per_channel:
        meta = out_features * fmt.scale_bytes + math.ceil(out_features * fmt.zero_bits / 8)
    else:
        meta = fmt.scale_bytes  # one scale for the tensor
    if fmt.g_idx:
        meta += 4 * in_features
    return weight, meta


class QuantScheme(BaseModel):
    """The parsed config: the format of quantized linears and which modules keep the dtype.

    >>> mx = parse_quantization({"quant_method": "mxfp4"}, model_dtype_bytes=2)
    >>> mx.format_for("model.layers.0.mlp.experts", expert=True).weight_bits
    4.0
    >>> mx.format_for("model.layers.0.self_attn.q_proj").weight_bits  # experts only
    16.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    method: str
    quantized: LinearFormat
    dense: LinearFormat
    #: Only the MoE experts are quantized (MXFP4).
    experts_only: bool = False
    lm_head_quantized: bool = False
    #: Module-name patterns left unquantized (``re:`` regexes, ``*`` globs, or substrings).
    excluded: tuple[str, ...] = ()

    def is_excluded(self, module: str) -> bool:
        """Whether ``module`` is named by an exclusion pattern.

        >>> QuantScheme(method="fp8", quantized=dense_format(1), dense=dense_format(2),
        ...             excluded=("re:.*mlp.gate$",)).is_excluded("model.layers.3.mlp.gate")
        True
        """
        return any(_matches(pattern, module) for pattern in self.excluded)

    def format_for(self, module: str, *, expert: bool = False) -> LinearFormat:
        """The storage of the linear layer ``module`` (an HF module name).

        >>> none = parse_quantization(None, model_dtype_bytes=2)
        >>> none.format_for("lm_head").weight_bits
        16.0
        """
        if self.method == "none" or self.is_excluded(module):
            return self.dense
        if self.experts_only and not expert:
            return self.dense
        if module.split(".")[-1] == "lm_head" and not self.lm_head_quantized:
            return self.dense
        return self.quantized


def _matches(pattern: str, module: str) -> bool:
    if pattern.startswith("re:"):
        try:
            return re.match(pattern[3:], module) is not None
        except re.error:
            return False
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(module, pattern) or fnmatch.fnmatchcase(module, pattern + ".*")
    return pattern in module


def _int(qc: dict[str, Any], *names: str, default: int | None = None) -> int:
    for name in names:
        value = qc.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise QuantizationError(
                    f"quantization_config.{name} must be an integer, got {value!r:.40}"
                )
            return value
    if default is None:
        raise QuantizationError(f"quantization_config needs {' or '.join(names)}")
    return default


def _patterns(qc: dict[str, Any], *names: str) -> tuple[str, ...]:
    found: list[str] = []
    for name in names:
        value = qc.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise QuantizationError(
                f"quantization_config.{name} must be a list of module names, got {value!r:.60}"
            )
        found.extend(value)
    return tuple(found)


def _int_format(method: str, bits: int, group: int, *, zeros: bool, g_idx: bool) -> LinearFormat:
    if bits not in (2, 3, 4, 8):
        raise QuantizationError(f"{method}: bits must be 2, 3, 4 or 8, got {bits}")
    per_channel = group in (-1, 0)
    return LinearFormat(
        name=f"{method}-int{bits}-" + ("channel" if per_channel else f"g{group}"),
        weight_bits=float(bits),
        group_size=None if per_channel else group,
        per_channel=per_channel,
        scale_bytes=2,
        zero_bits=bits if zeros else 0,
        g_idx=g_idx,
        repacked=True,
    )


def _compressed_tensors(qc: dict[str, Any]) -> tuple[LinearFormat, bool]:
    groups = qc.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise QuantizationError("compressed-tensors: config_groups must be a non-empty object")
    formats: list[LinearFormat] = []
    lm_head = False
    for key, group in groups.items():
        weights = group.get("weights") if isinstance(group, dict) else None
        if not isinstance(weights, dict):
            raise QuantizationError(f"compressed-tensors: config_groups.{key} has no weights")
        targets = group.get("targets") or []
        lm_head = lm_head or "lm_head" in targets
        bits = _int(weights, "num_bits")
        kind = weights.get("type", "int")
        strategy = weights.get("strategy", "tensor")
        group_size = weights.get("group_size")
        block = weights.get("block_structure")
        zeros = bits if not weights.get("symmetric", True) else 0
        name = f"compressed-tensors-{kind}{bits}-{strategy}"
        if kind == "float" and bits == 4:  # NVFP4: fp8 scale per 16, fp32 global scale
            fmt = LinearFormat(
                name=name,
                weight_bits=4.0,
                group_size=group_size or 16,
                scale_bytes=1,
                repacked=True,
            )
        elif strategy == "block" and isinstance(block, list) and len(block) == 2:
            fmt = LinearFormat(
                name=name,
                weight_bits=float(bits),
                block=(int(block[0]), int(block[1])),
                scale_bytes=4,
            )
        elif strategy in ("group", "tensor_group") and isinstance(group_size, int):
            fmt = LinearFormat(
                name=name,
                weight_bits=float(bits),
                group_size=group_size,
                scale_bytes=2,
                zero_bits=zeros,
                repacked=bits < 8,
            )
        elif strategy == "channel":
            fmt = LinearFormat(
                name=name,
                weight_bits=float(bits),
                per_channel=True,
                scale_bytes=4,
                zero_bits=zeros,
                repacked=bits < 8,
            )
        elif strategy == "tensor":
            fmt = LinearFormat(name=name, weight_bits=float(bits), scale_bytes=4)
        else:
            raise QuantizationError(
                f"compressed-tensors: weight strategy {strategy!r} with group_size "
                f"{group_size!r} is not modelled"
            )
        formats.append(fmt)
    if len({(f.weight_bits, f.group_size, f.block) for f in formats}) > 1:
        raise QuantizationError(
            "compressed-tensors: config_groups with different weight schemes are not modelled "
            "(read the safetensors headers instead)"
        )
    return formats[0], lm_head


def parse_quantization(qc: Any, *, model_dtype_bytes: int) -> QuantScheme:
    """The scheme of a ``quantization_config`` (None: unquantized, in the model dtype).

    >>> s = parse_quantization({"quant_method": "fp8", "weight_block_size": [128, 128]},
    ...                        model_dtype_bytes=2)
    >>> s.quantized.name, linear_bytes(s.quantized, 7168, 2048)
    ('fp8-block128x128', (14680064, 3584))
    >>> parse_quantization({"quant_method": "bitsandbytes"}, model_dtype_bytes=2)
    Traceback (most recent call last):
    ...
    kvschema.models.quant.QuantizationError: quantization method 'bitsandbytes' is not modelled (modelled: awq, compressed-tensors, fbgemm_fp8, fp8, gptq, modelopt, mxfp4); pass the weight bytes or read the safetensors headers
    """
    dense = dense_format(model_dtype_bytes)
    if qc is None:
        return QuantScheme(method="none", quantized=dense, dense=dense)
    if not isinstance(qc, dict):
        raise QuantizationError(f"quantization_config must be an object, got {qc!r:.40}")
    method = str(qc.get("quant_method", "")).lower()
    method = {"awq_marlin": "awq", "gptq_marlin": "gptq", "nvfp4": "modelopt"}.get(method, method)
    excluded = _patterns(
        qc, "modules_to_not_convert", "ignore", "ignored_layers", "exclude_modules"
    )
    if method == "awq":
        bits = _int(qc, "bits", "w_bit")
        group = _int(qc, "group_size", "q_group_size", default=128)
        fmt = _int_format("awq", bits, group, zeros=bool(qc.get("zero_point", True)), g_idx=False)
        return QuantScheme(method=method, quantized=fmt, dense=dense, excluded=excluded)
    if method == "gptq":
        bits = _int(qc, "bits")
        group = _int(qc, "group_size", default=128)
        dynamic = qc.get("dynamic") or {}
        skipped = tuple(
            "re:" + key[2:] for key in dynamic if isinstance(key, str) and key.startswith("-:")
        )
        fmt = _int_format("gptq", bits, group, zeros=True, g_idx=True)
        return QuantScheme(
            method=method,
            quantized=fmt,
            dense=dense,
            lm_head_quantized=bool(qc.get("lm_head", False)),
            excluded=excluded + skipped,
        )
    if method in ("fp8", "fbgemm_fp8"):
        block = qc.get("weight_block_size")
        if block is not None:
            if (
                not isinstance(block, list)
                or len(block) != 2
                or not all(isinstance(b, int) and b > 0 for b in block)
            ):
                raise QuantizationError(
                    f"fp8: weight_block_size must be two positive ints, got {block!r:.40}"
                )
            fmt = LinearFormat(
                name=f"fp8-block{block[0]}x{block[1]}",
                weight_bits=8.0,
                block=(block[0], block[1]),
                scale_bytes=4,
            )
        elif method == "fbgemm_fp8":
            fmt = LinearFormat(name="fp8-channel", weight_bits=8.0, per_channel=True, scale_bytes=4)
        else:
            fmt = LinearFormat(name="fp8-tensor", weight_bits=8.0, scale_bytes=8)
        return QuantScheme(method=method, quantized=fmt, dense=dense, excluded=excluded)
    if method == "compressed-tensors":
        fmt, lm_head = _compressed_tensors(qc)
        return QuantScheme(
            method=method, quantized=fmt, dense=dense, excluded=excluded, lm_head_quantized=lm_head
        )
    if method == "modelopt":
        algo = str(qc.get("quant_algo", "")).upper()
        if algo == "FP8":
            fmt = LinearFormat(name="modelopt-fp8", weight_bits=8.0, scale_bytes=8)
        elif algo == "NVFP4":
            group = _int(qc, "group_size", default=16)
            fmt = LinearFormat(
                name=f"modelopt-nvfp4-g{group}",
                weight_bits=4.0,
                group_size=group,
                scale_bytes=1,
                repacked=True,
            )
        else:
            raise QuantizationError(
                f"modelopt: quant_algo {algo!r} is not modelled (modelled: FP8, NVFP4)"
            )
        return QuantScheme(method=method, quantized=fmt, dense=dense, excluded=excluded)
    if method == "mxfp4":
        fmt = LinearFormat(
            name="mxfp4-g32", weight_bits=4.0, group_size=32, scale_bytes=1, repacked=True
        )
        return QuantScheme(
            method=method, quantized=fmt, dense=dense, excluded=excluded, experts_only=True
        )
    raise QuantizationError(
        f"quantization method {method or qc.get('quant_method')!r} is not modelled (modelled: "
        "awq, compressed-tensors, fbgemm_fp8, fp8, gptq, modelopt, mxfp4); pass the weight "
        "bytes or read the safetensors headers",
        quant_method=method,
    )
