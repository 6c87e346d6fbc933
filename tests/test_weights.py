"""Weight bytes per rank: safetensors headers (real files written here), the index, the config count.

The safetensors files are written by a tiny writer below (8-byte little-endian header length,
the JSON header, the data), so the reader is tested against the format itself, hostile headers
included.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.models.families import HFConfigError
from kvschema.models.params import count_parameters
from kvschema.models.quant import QuantizationError, linear_bytes, parse_quantization
from kvschema.models.safetensors import CheckpointError, index_total_size, read_folder, read_header
from kvschema.models.split import WeightPart, pp_layer_ranges, stage_bytes
from kvschema.models.weights import (
    estimate_weights,
    weights_from_config,
    weights_from_index,
    weights_from_safetensors,
    weights_given,
)

BITS = {"BF16": 16, "F16": 16, "F32": 32, "I32": 32, "U8": 8, "F8_E4M3": 8, "F4": 4, "I64": 64}


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None
) -> int:
    """Write a valid file of zero-filled tensors; returns the data bytes."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = -(-math.prod(shape) * BITS[dtype] // 8)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return offset


def write_raw(path: Path, header: bytes, data: int = 0, length: int | None = None) -> Path:
    """A file with any header bytes (hostile ones), a declared length and ``data`` zero bytes."""
    size = len(header) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + header + bytes(data))
    return path


LLAMA_8B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}

# Parameter counts as Hugging Face shows them on each model's page (the safetensors total),
# and, for Qwen3-Coder-Next (Qwen3-Next's architecture), as published alongside its GGUF
# files; each config is the model's own config.json (the fields the count reads).
KNOWN_COUNTS = {
    "Meta-Llama-3-8B": (LLAMA_8B, 8_030_261_248),
    "Meta-Llama-3-70B": (
        {
            **LLAMA_8B,
            "hidden_size": 8192,
            "intermediate_size": 28672,
            "num_hidden_layers": 80,
            "num_attention_heads": 64,
        },
        70_553_706_496,
    ),
    "Llama-2-7b": (
        {**LLAMA_8B, "intermediate_size": 11008, "num_key_value_heads": 32, "vocab_size": 32000},
        6_738_415_616,
    ),
    "Mistral-7B-v0.1": ({**LLAMA_8B, "model_type": "mistral", "vocab_size": 32000}, 7_241_732_096),
    "Mixtral-8x7B-v0.1": (
        {**LLAMA_8B, "model_type": "mixtral", "vocab_size": 32000, "num_local_experts": 8},
        46_702_792_704,
    ),
    "Qwen2.5-7B": (
        {
            "model_type": "qwen2",
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
        },
        7_615_616_512,
    ),
    "Qwen2-0.5B (tied)": (
        {
            "model_type": "qwen2",
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
        },
        494_032_768,
    ),
    "gemma-2-9b": (
        {
            "model_type": "gemma2",
            "hidden_size": 3584,
            "intermediate_size": 14336,
            "num_hidden_layers": 42,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 256,
            "vocab_size": 256000,
            "torch_dtype": "bfloat16",
        },
        9_241_705_984,
    ),
    "Qwen3-8B": (
        {
            "model_type": "qwen3",
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "num_hidden_layers": 36,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "vocab_size": 151936,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
        },
        8_190_735_360,
    ),
    "Qwen3-30B-A3B": (
        {
            "model_type": "qwen3_moe",
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "moe_intermediate_size": 768,
            "num_hidden_layers": 48,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "vocab_size": 151936,
            "num_experts": 128,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
        },
        30_532_122_624,
    ),
    "DeepSeek-V3 (without the MTP layer)": (
        {
            "model_type": "deepseek_v3",
            "hidden_size": 7168,
            "intermediate_size": 18432,
            "moe_intermediate_size": 2048,
            "num_hidden_layers": 61,
            "first_k_dense_replace": 3,
            "n_routed_experts": 256,
            "n_shared_experts": 1,
            "moe_layer_freq": 1,
            "num_attention_heads": 128,
            "num_key_value_heads": 128,
            "q_lora_rank": 1536,
            "kv_lora_rank": 512,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "v_head_dim": 128,
            "vocab_size": 129280,
            "torch_dtype": "bfloat16",
        },
        671_026_419_200,
    ),
    "gpt-oss-20b": (
        {
            "model_type": "gpt_oss",
            "hidden_size": 2880,
            "intermediate_size": 2880,
            "num_hidden_layers": 24,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "vocab_size": 201088,
            "num_local_experts": 32,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
        },
        20_914_757_184,
    ),
    "gpt-oss-120b": (
        {
            "model_type": "gpt_oss",
            "hidden_size": 2880,
            "intermediate_size": 2880,
            "num_hidden_layers": 36,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "vocab_size": 201088,
            "num_local_experts": 128,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
        },
        116_829_156_672,
    ),
    "Qwen3-Coder-Next (Qwen3-Next-80B-A3B)": (
        {
            "model_type": "qwen3_next",
            "hidden_size": 2048,
            "intermediate_size": 5120,
            "moe_intermediate_size": 512,
            "shared_expert_intermediate_size": 512,
            "num_experts": 512,
            "num_hidden_layers": 48,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "head_dim": 256,
            "vocab_size": 151936,
            "full_attention_interval": 4,
            "linear_num_key_heads": 16,
            "linear_key_head_dim": 128,
            "linear_num_value_heads": 32,
            "linear_value_head_dim": 128,
            "linear_conv_kernel_dim": 4,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
        },
        79_674_391_296,
    ),
}


# -- the header reader -------------------------------------------------------------------------


def test_reads_dtypes_shapes_and_sub_byte_sizes(tmp_path: Path) -> None:
    data = write_safetensors(
        tmp_path / "m.safetensors",
        {"a": ("BF16", [3, 5]), "b": ("F4", [3]), "c": ("I64", []), "d": ("U8", [0, 7])},
        metadata={"format": "pt"},
    )
    header = read_header(tmp_path / "m.safetensors")
    assert {n: t.nbytes for n, t in header.tensors.items()} == {"a": 30, "b": 2, "c": 8, "d": 0}
    assert header.nbytes == data == 40
    assert header.metadata == {"format": "pt"}
    assert header.tensors["a"].shape == (3, 5)


def test_reads_the_header_and_nothing_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_safetensors(tmp_path / "m.safetensors", {"w": ("F32", [1024, 1024])})
    raw_len = struct.unpack("<Q", (tmp_path / "m.safetensors").read_bytes()[:8])[0]
    read: list[int] = []
    real_open = Path.open

    class Spy:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def read(self, n: int = -1) -> bytes:
            assert n >= 0, "the reader must never read to the end of the file"
            chunk: bytes = self.handle.read(n)
            read.append(len(chunk))
            return chunk

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Spy(real_open(self, *a, **k)))
    read_header(tmp_path / "m.safetensors")
    assert sum(read) == 8 + raw_len  # 4 MiB of tensor data untouched


@pytest.mark.parametrize(
    ("header", "data", "length", "message"),
    [
        (b"", 0, 10**9, "exceeds the 1000000-byte cap"),
        (b"{}", 0, 500, "header length 500 exceeds the file"),
        (b"not json", 0, None, "header is not JSON"),
        (b"\xff\xfe{}", 0, None, "header is not JSON"),
        (b"[1, 2]", 0, None, "header is a JSON list, not an object"),
        (b"[" * 50000 + b"]" * 50000, 0, None, "header is not JSON"),
        (b'{"a": 1}', 0, None, "must hold exactly dtype, shape, data_offsets"),
        (b'{"a": {"dtype": "BF16", "shape": [2]}}', 4, None, "must hold exactly"),
        (
            b'{"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 1]}}',
            1,
            None,
            "has dtype 'Q4'",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": ["2"], "data_offsets": [0, 4]}}',
            4,
            None,
            "not a list of ints >= 0",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [true], "data_offsets": [0, 2]}}',
            2,
            None,
            "not a list of ints >= 0",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [-2], "data_offsets": [0, 4]}}',
            4,
            None,
            "not a list of ints >= 0",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 0]}}',
            4,
            None,
            "not [begin <= end]",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 5]}}',
            5,
            None,
            "is 4 bytes but data_offsets span 5",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [4000000000, 4000000000], "data_offsets": [0, 8]}}',
            8,
            None,
            "data_offsets span 8",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}',
            2,
            None,
            "the file is truncated",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}',
            9,
            None,
            "the tensors cover 4 of the 9 data bytes",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},'
            b' "b": {"dtype": "BF16", "shape": [2], "data_offsets": [2, 6]}}',
            6,
            None,
            "it overlaps the previous one",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]}}',
            8,
            None,
            "it leaves a gap",
        ),
        (
            b'{"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},'
            b' "a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}',
            4,
            None,
            "duplicate key 'a'",
        ),
        (b'{"__metadata__": {"x": 1}}', 0, None, "__metadata__ must map strings to strings"),
    ],
)
def test_hostile_headers_are_refused_naming_the_file(
    tmp_path: Path, header: bytes, data: int, length: int | None, message: str
) -> None:
    path = write_raw(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(CheckpointError, match=re.escape(message)) as err:
        read_header(path, max_header_bytes=1_000_000)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_files_too_short_or_missing(tmp_path: Path) -> None:
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="shorter than the 8-byte header length"):
        read_header(tmp_path / "short.safetensors")
    with pytest.raises(CheckpointError, match="no such file"):
        read_header(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="a folder"):
        read_header(tmp_path)


def test_a_folder_of_shards(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": ("BF16", [8])})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"b": ("F32", [8])})
    headers = read_folder(tmp_path)
    assert [h.nbytes for h in headers] == [16, 32]
    write_safetensors(tmp_path / "model-00003-of-00002.safetensors", {"a": ("BF16", [8])})
    with pytest.raises(CheckpointError, match="tensor 'a' is in both"):
        read_folder(tmp_path)
    with pytest.raises(CheckpointError, match="no .safetensors files"):
        read_folder(tmp_path / "..").__class__  # noqa: B018 - the parent holds none
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no .safetensors files"):
        read_folder(empty)


# -- the index -------------------------------------------------------------------------------


def test_index_total_size(tmp_path: Path) -> None:
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 16060522496}, "weight_map": {}}))
    assert index_total_size(tmp_path) == index_total_size(index) == 16060522496
    for bad in (
        {"metadata": {}},
        {"metadata": {"total_size": -1}},
        [1],
        {"metadata": {"total_size": True}},
        {"metadata": {"total_size": "16"}},
    ):
        index.write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match="total_size must be a positive integer"):
            index_total_size(index)
    index.write_text("{")
    with pytest.raises(CheckpointError, match="not JSON"):
        index_total_size(index)


def test_index_per_rank_split_uses_the_config(tmp_path: Path) -> None:
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 16060522496}}))
    alone = weights_from_index(index)
    assert alone.provenance == "index" and alone.bytes_per_rank.point == 16060522496
    bounded = weights_from_index(index, tensor_parallel_size=4)
    assert bounded.bytes_per_rank.low == 16060522496 // 4
    assert bounded.bytes_per_rank.high == 16060522496  # no config: everything on one rank
    split = weights_from_index(index, config=LLAMA_8B, tensor_parallel_size=4)
    # a quarter of every matrix, and every norm whole on each rank
    norms = (2 * 32 + 1) * 4096 * 2
    assert split.bytes_per_rank.point == pytest.approx((16060522496 - norms) / 4 + norms, abs=4)


def test_float32_checkpoints_load_in_16_bits(tmp_path: Path) -> None:
    given = weights_given(32 * 2**30, config={**LLAMA_8B, "torch_dtype": "float32"})
    assert given.bytes_per_rank.point == 16 * 2**30
    assert given.bytes_per_rank.high == 32 * 2**30
    assert any("float32" in n for n in given.notes)


# -- the config count ------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "expected"), KNOWN_COUNTS.values(), ids=list(KNOWN_COUNTS))
def test_parameter_counts_match_the_published_ones(config: dict[str, Any], expected: int) -> None:
    assert count_parameters(config).num_parameters == expected


def test_llama_8b_bf16_per_rank_and_tp() -> None:
    cfg = {**LLAMA_8B, "max_position_embeddings": 8192}
    one = weights_from_config(cfg)
    rope = 8192 * 128 * 2
    assert one.bytes_per_rank.point == 2 * 8_030_261_248 + rope
    assert one.bytes_per_rank.low < one.bytes_per_rank.point < one.bytes_per_rank.high
    two = weights_from_config(cfg, tensor_parallel_size=2)
    norms = (32 * 2 + 1) * 4096 * 2
    # every matrix halves; norms and the RoPE cache stay whole
    assert two.bytes_per_rank.point == (one.bytes_per_rank.point - norms - rope) // 2 + norms + rope


def test_kv_heads_are_replicated_past_their_count() -> None:
    """num_key_value_heads=8 over TP 16: each rank keeps one whole KV head (QKVParallelLinear)."""
    cfg = {**LLAMA_8B, "num_attention_heads": 64, "hidden_size": 8192, "vocab_size": 128000}
    counted = count_parameters(cfg)
    kv = sum(p.nbytes for p in counted.parts if p.split == "kv")
    at8 = stage_bytes(counted.parts, num_layers=32, tensor_parallel_size=8)[0].point
    at16 = stage_bytes(counted.parts, num_layers=32, tensor_parallel_size=16)[0].point
    others = at8 - kv // 8
    assert at16 == pytest.approx((others - 0) / 2 + kv / 8, rel=0.01)


def test_vocab_padding_to_64_and_its_divisibility() -> None:
    part = WeightPart(name="embed", place="embed", split="vocab", nbytes=100 * 10, rows=100)
    # 100 rows pad to 128 (VocabParallelEmbedding allocates the padded rows even at TP 1)
    assert stage_bytes([part], num_layers=1)[0].point == 1280
    # and 64 rows a rank at TP 2
    assert stage_bytes([part], num_layers=1, tensor_parallel_size=2)[0].point == 640
    with pytest.raises(InvalidArgumentError, match="does not divide over tensor_parallel_size=3"):
        stage_bytes([part], num_layers=1, tensor_parallel_size=3)


def test_pipeline_stages_place_embeddings_first_and_lm_head_last() -> None:
    counted = count_parameters({**LLAMA_8B, "num_hidden_layers": 5})
    first, middle, last = stage_bytes(counted.parts, num_layers=5, pipeline_parallel_size=3)
    embed = 128256 * 4096 * 2
    layer = (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096) * 2
    assert pp_layer_ranges(5, 3) == [(0, 2), (2, 4), (4, 5)]
    assert first.point == embed + 2 * layer
    assert middle.point == 2 * layer
    assert last.point == layer + 4096 * 2 + embed


def test_tied_lm_head_is_a_second_copy_only_across_stages() -> None:
    cfg = KNOWN_COUNTS["Qwen2-0.5B (tied)"][0]
    counted = count_parameters(cfg)
    embed = 151936 * 896 * 2
    one = stage_bytes(counted.parts, num_layers=24)[0].point
    two = stage_bytes(counted.parts, num_layers=24, pipeline_parallel_size=2)
    assert one == 2 * 494_032_768
    assert sum(s.point for s in two) == one + embed


# vLLM's tests/distributed/test_pipeline_partition.py::test_uneven_auto_partition, its goldens
@pytest.mark.parametrize(
    ("layers", "pp", "ranges"),
    [
        (2, 2, [(0, 1), (1, 2)]),
        (3, 2, [(0, 2), (2, 3)]),
        (3, 3, [(0, 1), (1, 2), (2, 3)]),
        (4, 3, [(0, 1), (1, 3), (3, 4)]),
        (5, 3, [(0, 2), (2, 4), (4, 5)]),
    ],
)
def test_pp_layer_ranges_match_vllm_get_pp_indices(
    layers: int, pp: int, ranges: list[tuple[int, int]]
) -> None:
    assert pp_layer_ranges(layers, pp) == ranges


def test_more_stages_than_layers_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="exceeds the 2 layers"):
        pp_layer_ranges(2, 3)


def test_expert_parallel_spreads_whole_experts() -> None:
    cfg = KNOWN_COUNTS["Mixtral-8x7B-v0.1"][0]
    counted = count_parameters(cfg)
    experts = sum(p.nbytes for p in counted.parts if p.split == "expert")
    tp3 = stage_bytes(counted.parts, num_layers=32, tensor_parallel_size=2)[0]
    ep3 = stage_bytes(counted.parts, num_layers=32, tensor_parallel_size=2, expert_parallel_size=3)[
        0
    ]
    # 8 experts over 3 ranks: the fullest holds 3 (determine_expert_map), 3/8 of the experts
    assert ep3.point - tp3.point == pytest.approx(experts * 3 / 8 - experts / 2, abs=64)


# -- quantization ----------------------------------------------------------------------------


def test_quantized_formats() -> None:
    gptq = parse_quantization(
        {"quant_method": "gptq", "bits": 4, "group_size": 128}, model_dtype_bytes=2
    )
    weight, meta = linear_bytes(gptq.quantized, 4096, 4096)
    assert weight == 4096 * 4096 // 2
    # fp16 scales and packed 4-bit zeros per 128 inputs, and an int32 g_idx per input
    assert meta == 32 * 4096 * 2 + 32 * 4096 // 2 + 4 * 4096
    nvfp4 = parse_quantization(
        {"quant_method": "modelopt", "quant_algo": "NVFP4"}, model_dtype_bytes=2
    )
    assert linear_bytes(nvfp4.quantized, 4096, 4096) == (4096 * 4096 // 2, 4096 * 256)
    ct = parse_quantization(
        {
            "quant_method": "compressed-tensors",
            "ignore": ["lm_head", "re:.*mlp.gate$"],
            "config_groups": {
                "group_0": {
                    "targets": ["Linear"],
                    "weights": {"num_bits": 8, "type": "float", "strategy": "channel"},
                }
            },
        },
        model_dtype_bytes=2,
    )
    assert ct.format_for("model.layers.0.mlp.gate").weight_bits == 16
    assert ct.format_for("model.layers.0.mlp.down_proj").weight_bits == 8
    assert ct.format_for("lm_head").weight_bits == 16


@pytest.mark.parametrize(
    "qc",
    [
        {"quant_method": "bitsandbytes"},
        {"quant_method": "gguf"},
        {"quant_method": "gptq", "bits": 5},
        {"quant_method": "awq", "bits": "4"},
        {"quant_method": "fp8", "weight_block_size": [128]},
        {"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"},
        {"quant_method": "compressed-tensors"},
        "fp8",
    ],
)
def test_unmodelled_or_malformed_quantization_is_refused(qc: Any) -> None:
    with pytest.raises(QuantizationError):
        weights_from_config({**LLAMA_8B, "quantization_config": qc})


def test_awq_int4_llama_8b_keeps_embeddings_and_lm_head_in_16_bits() -> None:
    awq = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}
    est = weights_from_config({**LLAMA_8B, "quantization_config": awq})
    bf16 = weights_from_config(LLAMA_8B)
    embeddings = 2 * 128256 * 4096 * 2
    linears = bf16.bytes_per_rank.point - embeddings
    # 4 bits a weight, plus an fp16 scale and a 4-bit zero per 128 weights (+3.9 %)
    assert est.bytes_per_rank.point == pytest.approx(
        embeddings + linears / 4 * (1 + 2.5 / 64), rel=0.001
    )
    assert est.bytes_per_rank.high > est.bytes_per_rank.point * 1.02  # repacking margin


def test_gpt_oss_120b_mxfp4_matches_its_published_size() -> None:
    """gpt-oss-120b in MXFP4 is a 60.87 GiB file (llama.cpp's load log in ollama issue #16416,
    https://github.com/ollama/ollama/issues/16416: experts MXFP4, the rest 16-bit)."""
    cfg = {
        **KNOWN_COUNTS["gpt-oss-120b"][0],
        "quantization_config": {
            "quant_method": "mxfp4",
            "modules_to_not_convert": [
                "model.layers.*.self_attn",
                "model.layers.*.mlp.router",
                "model.embed_tokens",
                "lm_head",
            ],
        },
    }
    est = weights_from_config(cfg)
    assert est.bytes_per_rank.point / 2**30 == pytest.approx(60.87, rel=0.01)
    assert est.bytes_per_rank.high / 2**30 > 62  # kernels may pad experts (oracle/mxfp4.py)


def test_deepseek_v3_fp8_block_per_rank() -> None:
    cfg = {
        **KNOWN_COUNTS["DeepSeek-V3 (without the MTP layer)"][0],
        "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
    }
    one = weights_from_config(cfg)
    # 671 B parameters, nearly all fp8 linears, plus 16-bit embeddings and the MLA copies
    assert 660e9 < one.bytes_per_rank.point < 690e9
    eight = weights_from_config(cfg, tensor_parallel_size=8)
    replicated = 61 * (7168 * 1536 + 7168 * 576)  # q_a_proj, kv_a_proj_with_mqa (fp8)
    assert eight.bytes_per_rank.point > one.bytes_per_rank.point / 8 + replicated * 7 / 8


# -- the safetensors path agrees with the config path ----------------------------------------


def llama_tensors(cfg: dict[str, Any]) -> dict[str, tuple[str, list[int]]]:
    h, inter, heads = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * h // heads
    out: dict[str, tuple[str, list[int]]] = {
        "model.embed_tokens.weight": ("BF16", [cfg["vocab_size"], h])
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out |= {
            f"{p}.input_layernorm.weight": ("BF16", [h]),
            f"{p}.self_attn.q_proj.weight": ("BF16", [h, h]),
            f"{p}.self_attn.k_proj.weight": ("BF16", [kv, h]),
            f"{p}.self_attn.v_proj.weight": ("BF16", [kv, h]),
            f"{p}.self_attn.o_proj.weight": ("BF16", [h, h]),
            f"{p}.post_attention_layernorm.weight": ("BF16", [h]),
            f"{p}.mlp.gate_proj.weight": ("BF16", [inter, h]),
            f"{p}.mlp.up_proj.weight": ("BF16", [inter, h]),
            f"{p}.mlp.down_proj.weight": ("BF16", [h, inter]),
        }
    out["model.norm.weight"] = ("BF16", [h])
    out["lm_head.weight"] = ("BF16", [cfg["vocab_size"], h])
    return out


TINY = {
    **LLAMA_8B,
    "hidden_size": 64,
    "intermediate_size": 192,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
}


@pytest.mark.parametrize(("tp", "pp"), [(1, 1), (2, 1), (4, 1), (8, 1), (2, 2), (1, 4)])
def test_safetensors_and_config_agree(tmp_path: Path, tp: int, pp: int) -> None:
    write_safetensors(tmp_path / "model.safetensors", llama_tensors(TINY))
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    files = estimate_weights(tmp_path, tensor_parallel_size=tp, pipeline_parallel_size=pp)
    counted = weights_from_config(TINY, tensor_parallel_size=tp, pipeline_parallel_size=pp)
    assert files.provenance == "safetensors"
    assert [s.point for s in files.stages] == [s.point for s in counted.stages]
    assert files.bytes_per_rank.low == files.bytes_per_rank.point  # every tensor was placed


def test_unknown_tensors_widen_the_interval(tmp_path: Path) -> None:
    tensors = llama_tensors(TINY) | {"visual.blocks.0.attn.qkv.weight": ("BF16", [192, 64])}
    write_safetensors(tmp_path / "model.safetensors", tensors)
    est = weights_from_safetensors(tmp_path, config=TINY, tensor_parallel_size=2)
    assert est.bytes_per_rank.high - est.bytes_per_rank.low >= 192 * 64 * 2 // 2
    assert any("cannot place" in n for n in est.notes)


def test_mtp_layers_past_num_hidden_layers_are_not_loaded(tmp_path: Path) -> None:
    tensors = llama_tensors(TINY) | {"model.layers.4.eh_proj.weight": ("BF16", [64, 128])}
    write_safetensors(tmp_path / "model.safetensors", tensors)
    with_config = weights_from_safetensors(tmp_path, config=TINY)
    without = weights_from_safetensors(tmp_path)
    assert without.bytes_per_rank.point - with_config.bytes_per_rank.point == 64 * 128 * 2
    assert any("MTP" in n for n in with_config.notes)


def test_estimate_weights_prefers_given_then_files_then_index_then_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    assert estimate_weights(tmp_path).provenance == "config"
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 10**6}})
    )
    assert estimate_weights(tmp_path).provenance == "index"
    write_safetensors(tmp_path / "model.safetensors", llama_tensors(TINY))
    assert estimate_weights(tmp_path).provenance == "safetensors"
    assert estimate_weights(tmp_path, weights_bytes=10**9).provenance == "given"
    with pytest.raises(InvalidArgumentError, match="no weight source"):
        estimate_weights()


def test_unknown_family_is_refused_clearly() -> None:
    with pytest.raises(HFConfigError, match="no parameter count for model_type 'falcon'"):
        weights_from_config({"model_type": "falcon", "hidden_size": 8})


def test_multimodal_configs_need_text_only() -> None:
    cfg = {"model_type": "llava", "vision_config": {"hidden_size": 1024}, "text_config": LLAMA_8B}
    with pytest.raises(HFConfigError, match="vision_config"):
        weights_from_config(cfg)
    est = weights_from_config(cfg, text_only=True)
    assert est.num_parameters == 8_030_261_248


@pytest.mark.parametrize(
    "bad",
    [
        {"tensor_parallel_size": 0},
        {"pipeline_parallel_size": -1},
        {"tensor_parallel_size": True},
        {"expert_parallel": "yes"},
    ],
)
def test_bad_parallel_arguments_raise_value_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(KVSchemaError):
        weights_from_config(LLAMA_8B, **bad)


def test_missing_config_fields_name_the_field() -> None:
    cfg = {k: v for k, v in LLAMA_8B.items() if k != "intermediate_size"}
    with pytest.raises(HFConfigError, match="intermediate_size"):
        weights_from_config(cfg)


# -- properties ------------------------------------------------------------------------------

dense_configs = st.fixed_dictionaries(
    {
        "model_type": st.sampled_from(["llama", "qwen3", "mistral", "gemma2", "olmo2"]),
        "hidden_size": st.sampled_from([256, 512, 1024]),
        "intermediate_size": st.sampled_from([512, 1536, 2816]),
        "num_hidden_layers": st.integers(1, 12),
        "num_attention_heads": st.sampled_from([8, 16]),
        "num_key_value_heads": st.sampled_from([1, 2, 4, 8]),
        "head_dim": st.just(32),
        "vocab_size": st.integers(1000, 70000),
        "tie_word_embeddings": st.booleans(),
        "torch_dtype": st.just("bfloat16"),
    }
)


@settings(max_examples=60, deadline=None)
@given(cfg=dense_configs, tp=st.sampled_from([1, 2, 4]), pp=st.integers(1, 3))
def test_more_tp_never_increases_per_rank_weights(cfg: dict[str, Any], tp: int, pp: int) -> None:
    pp = min(pp, cfg["num_hidden_layers"])
    fewer = weights_from_config(cfg, tensor_parallel_size=tp, pipeline_parallel_size=pp)
    more = weights_from_config(cfg, tensor_parallel_size=2 * tp, pipeline_parallel_size=pp)
    assert more.bytes_per_rank.point <= fewer.bytes_per_rank.point
    assert more.bytes_per_rank.high <= fewer.bytes_per_rank.high


@settings(max_examples=60, deadline=None)
@given(cfg=dense_configs, tp=st.sampled_from([1, 2, 4, 8]), pp=st.integers(1, 3))
def test_more_gpus_never_hold_fewer_bytes_in_total(cfg: dict[str, Any], tp: int, pp: int) -> None:
    pp = min(pp, cfg["num_hidden_layers"])
    one = weights_from_config(cfg).bytes_per_rank
    many = weights_from_config(cfg, tensor_parallel_size=tp, pipeline_parallel_size=pp)
    assert sum(s.point for s in many.stages) * tp >= one.point
    assert sum(s.high for s in many.stages) * tp >= one.high
    assert sum(s.low for s in many.stages) * tp >= one.low - pp  # each stage's low rounds down


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("head_dim", "128"),
        ("partial_rotary_factor", [1]),
        ("rotary_dim", "64"),
        ("torch_dtype", [1]),
    ],
)
def test_malformed_fields_are_value_errors_naming_them(field: str, value: Any) -> None:
    """Found by the web app's fuzz test (tests/test_serve_api.py): a config field of the wrong
    type is refused with a ValueError naming it, or ignored, never a TypeError."""
    cfg = {**LLAMA_8B, "max_position_embeddings": 8192, field: value}
    try:
        count_parameters(cfg)
    except ValueError as err:
        assert field in str(err)


def test_a_count_split_per_layout_is_memoized_by_the_configs_content() -> None:
    """A sweep splits one count over every layout: the count is kept by the config's content,
    so an equal config answers as counted afresh and a changed one is counted again."""
    from fit_models import QWEN3_8B

    from kvschema.models import weights as module

    def split(config: dict[str, object]) -> object:
        return module.weights_given(
            16 * 10**9, config=config, tensor_parallel_size=2, pipeline_parallel_size=3
        )

    module._COUNTS.clear()
    fresh = split(dict(QWEN3_8B))
    assert len(module._COUNTS) == 1
    assert split(dict(QWEN3_8B)) == fresh and len(module._COUNTS) == 1  # an equal config
    wider = split({**QWEN3_8B, "vocab_size": 2 * QWEN3_8B["vocab_size"]})
    assert wider != fresh and len(module._COUNTS) == 2
    module._COUNTS.clear()
    assert split(dict(QWEN3_8B)) == fresh
    for n in range(module._COUNTS_KEPT + 3):  # only the last few are kept
        split({**QWEN3_8B, "vocab_size": 1000 + n})
    assert len(module._COUNTS) == module._COUNTS_KEPT
