"""vLLM 0.33's hybrid block size (``Platform._align_hybrid_block_size``) and the layouts it gives."""

from math import lcm
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema import FullAttentionSpec, MambaSpec, SlidingWindowSpec, plan_cache
from kvschema.errors import InvalidArgumentError
from kvschema.planning.engine import (
    HybridBlockSize,
    align_hybrid_block_size,
    vllm_layers,
    vllm_layers_from_hf_config,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"


def load(name: str, **kwargs: Any) -> Any:
    return vllm_layers_from_hf_config(FIXTURES / f"{name}.json", **kwargs)


def pages(layers: Any) -> tuple[int, int, int, int]:
    """(attention block, attention page bytes, raw state page, state pages per request)."""
    attention = next(s for s in layers.values() if not isinstance(s, MambaSpec))
    state = next(s for s in layers.values() if isinstance(s, MambaSpec))
    assert state.page_size_bytes == attention.page_size_bytes  # padded to the attention page
    return (
        attention.page_size,
        attention.page_size_bytes,
        state.raw_page_size_bytes,
        state.pages_per_request,
    )


@pytest.mark.parametrize(("checkpoint_alignment", "block_size"), [(64, 576), (None, 544)])
def test_blocks_land_on_the_mamba_checkpoint_grid(
    checkpoint_alignment: int | None, block_size: int
) -> None:
    # tests/v1/worker/test_gpu_model_runner.py::test_blocks_land_on_the_mamba_checkpoint_grid:
    # Qwen3.5-0.8B in align mode, a [MultipleOf(16)] backend; a layer checkpointing every 64
    # tokens makes the block 576, none (or one layer that cannot) leaves 544. Its pages: 2 KV
    # heads x 256 x 2 (K, V) x 2 B = 2048 B a token; conv (3, 6144) bf16 + (16, 128, 128) fp32.
    result = align_hybrid_block_size(
        attention_bytes_per_token=2048,
        mamba_page_bytes=3 * 6144 * 2 + 16 * 128 * 128 * 4,
        prefill_checkpoint_alignment=checkpoint_alignment,
    )
    assert result.block_size == block_size
    backend = "triton" if checkpoint_alignment is None else "flashinfer"
    layers = load("qwen3.5-0.8b", gdn_prefill_backend=backend)
    assert pages(layers)[0] == block_size


# Cross-checks from /tmp/notes/vllm_mamba.md §5.2 (vLLM log lines: "Setting attention block size
# to N tokens", "Padding mamba page size by P%"), TP = 1, kernel alignment 16, no checkpoints.
NOTES = [
    ("Qwen3-Next-80B-A3B, bf16", 2048, 3 * 8192 * 2 + 32 * 128 * 128 * 2, 544, 1.49),
    ("Qwen3.5-0.8B, fp32 SSM", 2048, 3 * 6144 * 2 + 16 * 128 * 128 * 4, 544, 2.64),
    ("Qwen3.5-27B, fp32 SSM", 4096, 3 * 10240 * 2 + 48 * 128 * 128 * 4, 784, 0.13),
    ("Qwen3.5-27B, bf16 SSM", 4096, 3 * 10240 * 2 + 48 * 128 * 128 * 2, 400, 0.25),
]


@pytest.mark.parametrize(("model", "per_token", "state", "block", "padding"), NOTES)
def test_logged_block_sizes(
    model: str, per_token: int, state: int, block: int, padding: float
) -> None:
    result = align_hybrid_block_size(attention_bytes_per_token=per_token, mamba_page_bytes=state)
    assert result.block_size == block, model
    assert result.mamba_page_size_padded == block * per_token
    assert round(100 * (block * per_token - state) / state, 2) == padding


def test_mla_hybrids_align_to_128() -> None:
    # Kimi-Linear-48B (notes §5.2): a 576 B MLA latent a token (fp8) and a 2,170,880 B KDA state;
    # 0.33 makes an MLA hybrid's block a multiple of 128 (TRTLLM / FlashInfer MLA decode): 3840.
    result = align_hybrid_block_size(
        attention_bytes_per_token=576, mamba_page_bytes=2_170_880, use_mla=True
    )
    assert result == HybridBlockSize(block_size=3840, mamba_page_size_padded=3840 * 576)
    assert (
        align_hybrid_block_size(
            attention_bytes_per_token=576, mamba_page_bytes=2_170_880
        ).block_size
        == 3776
    )  # the same without the MLA floor


def test_the_block_only_grows_and_the_user_block_is_the_grain() -> None:
    # --block-size 512 on Jamba (a 304 KiB state, 4 KiB a token): 512 already holds it
    assert align_hybrid_block_size(
        attention_bytes_per_token=4096, mamba_page_bytes=311296, block_size=512
    ) == HybridBlockSize(512, 512 * 4096)
    # --block-size 48: the grain is 48 (max(16, 48)), so 48 x cdiv(76, 48) = 96
    assert (
        align_hybrid_block_size(
            attention_bytes_per_token=4096, mamba_page_bytes=311296, block_size=48
        ).block_size
        == 96
    )
    # a state exactly one attention page: no padding
    assert align_hybrid_block_size(
        attention_bytes_per_token=4096, mamba_page_bytes=16 * 4096
    ) == HybridBlockSize(16, None)
    # no state at all: vLLM returns before touching the block
    assert align_hybrid_block_size(
        attention_bytes_per_token=4096, mamba_page_bytes=0, block_size=32
    ) == HybridBlockSize(32, None)


@given(
    st.integers(1, 1 << 16),
    st.integers(1, 1 << 24),
    st.sampled_from([16, 32, 48, 64, 128, 1024]),
    st.sampled_from([16, 32, 64]),
    st.booleans(),
    st.sampled_from(["none", "align"]),
    st.sampled_from([None, 16, 64, 96]),
)
def test_alignment_laws(
    per_token: int,
    state: int,
    block: int,
    kernel: int,
    mla: bool,
    mode: Any,
    checkpoint: int | None,
) -> None:
    result = align_hybrid_block_size(
        attention_bytes_per_token=per_token,
        mamba_page_bytes=state,
        block_size=block,
        kernel_block_size=kernel,
        use_mla=mla,
        mamba_cache_mode=mode,
        prefill_checkpoint_alignment=checkpoint,
    )
    page = result.block_size * per_token
    assert result.block_size >= block  # only ever grows
    assert page >= state  # one attention page holds one state page
    padded = result.mamba_page_size_padded
    assert (padded is None) == (page == state)
    assert padded is None or padded == page > state  # padded >= raw
    if result.block_size > block:  # grown: the fewest grains, then a whole kernel block
        grain = max(kernel, block, 128 if mla else 1)
        if mode == "align" and checkpoint:
            grain = lcm(grain, checkpoint)
        fewest = grain * -(-state // (grain * per_token))
        assert (fewest - grain) * per_token < state <= fewest * per_token
        assert result.block_size % kernel == 0
        assert fewest <= result.block_size < fewest + kernel
        if grain % kernel == 0:
            assert result.block_size == fewest


FAMILIES = [
    # fixture, attention block, attention page, raw state page, state pages per request
    ("jamba-v0.1", 80, 80 * 4096, 3 * 8192 * 2 + 8192 * 16 * 2, 2),
    ("nemotron-h-8b", 1040, 1040 * 4096, 3 * 10240 * 2 + 128 * 64 * 128 * 4, 2),
    ("qwen3-next-80b", 576, 576 * 2048, 3 * 8192 * 2 + 32 * 128 * 128 * 2, 3),
    ("qwen3.5-0.8b", 576, 576 * 2048, 3 * 6144 * 2 + 16 * 128 * 128 * 4, 3),
    ("granite-4.0-h-350m", 400, 400 * 1024, 3 * 1792 * 2 + 48 * 32 * 128 * 2, 2),
    ("falcon-h1-7b", 1568, 1568 * 1024, 3 * 3584 * 2 + 24 * 128 * 256 * 2, 2),
    # vLLM's own test model (notes §1.4): a 103,680 B state page, 512 B a token
    ("falcon-h1-tiny-90m", 208, 208 * 512, 103_680, 2),
]


@pytest.mark.parametrize(("name", "block", "page", "state", "per_request"), FAMILIES)
def test_families_as_vllm_pages_them(
    name: str, block: int, page: int, state: int, per_request: int
) -> None:
    assert pages(load(name)) == (block, page, state, per_request)


def test_tensor_parallel_uses_the_heads_of_one_rank() -> None:
    # Qwen3-Next at tp 2: 1 of 2 KV heads (1 KiB a token), half the state
    assert pages(load("qwen3-next-80b", tensor_parallel_size=2, gdn_prefill_backend="triton")) == (
        544,
        544 * 1024,
        3 * 4096 * 2 + 16 * 128 * 128 * 2,
        2,
    )
    # tp 4: the 2 KV heads replicated (still 1 KiB a token), a quarter of the state
    assert pages(load("qwen3-next-80b", tensor_parallel_size=4, gdn_prefill_backend="triton"))[
        :3
    ] == (272, 272 * 1024, 3 * 2048 * 2 + 8 * 128 * 128 * 2)


def test_prefix_caching_off_keeps_one_state_page_of_max_model_len_tokens() -> None:
    layers = load("jamba-v0.1", enable_prefix_caching=False, max_model_len=4096)
    state = layers["layer.0"]
    assert (state.mamba_cache_mode, state.page_size, state.pages_per_request) == ("none", 4096, 1)
    assert layers["layer.4"].page_size == 80  # the block is aligned all the same
    # without one, the model's own length (Jamba v0.1: 262144), as the plan defaults to it
    assert load("jamba-v0.1", enable_prefix_caching=False)["layer.0"].page_size == 262144
    with pytest.raises(InvalidArgumentError, match="pass max_model_len"):
        vllm_layers(dict(layers), enable_prefix_caching=False)  # specs alone: no length known
    # no prefill checkpoints without prefix caching
    assert (
        load("qwen3-next-80b", enable_prefix_caching=False, max_model_len=8)[
            "layer.0"
        ].pages_per_request
        == 1
    )


def test_attention_only_and_attention_free_models() -> None:
    llama = load("llama3-8b")
    assert {spec.page_size for spec in llama.values()} == {16}
    assert load("llama3-8b", block_size=32)["layer.0"].page_size == 32
    state = MambaSpec(page_size=16, shapes=((3, 1024), (16, 64, 16)), dtype="bf16")
    alone = vllm_layers({"m": state}, max_model_len=2048)  # attention-free: caching off
    assert (alone["m"].page_size, alone["m"].mamba_cache_mode) == (2048, "none")  # type: ignore[union-attr]
    cached = vllm_layers({"m": state}, enable_prefix_caching=True)
    assert (cached["m"].page_size, cached["m"].pages_per_request) == (16, 2)  # type: ignore[union-attr]


def test_attention_geometries_must_agree() -> None:
    full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=4, head_size=128, dtype="bf16", sliding_window=512
    )
    state = MambaSpec(page_size=16, shapes=((3, 1024),), dtype="bf16")
    with pytest.raises(InvalidArgumentError, match="attention layers differ"):
        vllm_layers({"a": full, "b": local, "m": state})
    same = local.model_copy(update={"num_kv_heads": 8})
    paged = vllm_layers({"a": full, "b": same, "m": state})
    assert {spec.page_size for spec in paged.values()} == {16}  # 6 KiB fit one 64 KiB page


def test_plans_hold_two_state_pages_a_request() -> None:
    # Jamba v0.1 on 20 GiB, 32768 tokens: 80-token blocks of 320 KiB, 4 layers a group, so
    # 20 GiB // 1.25 MiB = 16384 page indices; a request takes cdiv(32768, 80) = 410 attention
    # pages and 2 in each of the 7 state groups.
    plan = plan_cache(
        load("jamba-v0.1"),
        available_bytes=20 * 1024**3,
        max_model_len=32768,
        max_num_batched_tokens=8192,
        specs_per_rank=True,
    )
    assert plan.bytes_per_page == 4 * 80 * 4096
    assert plan.config.num_pages == 16384
    assert plan.pages_per_request == [2] * 7 + [410]


@pytest.mark.parametrize(
    "arguments",
    [
        {"attention_bytes_per_token": 0, "mamba_page_bytes": 1},
        {"attention_bytes_per_token": 1, "mamba_page_bytes": -1},
        {"attention_bytes_per_token": 1, "mamba_page_bytes": True},
        {"attention_bytes_per_token": 1, "mamba_page_bytes": 1, "mamba_cache_mode": "all"},
        {"attention_bytes_per_token": 1, "mamba_page_bytes": 1, "kernel_block_size": 0},
        {"attention_bytes_per_token": 1, "mamba_page_bytes": 1, "prefill_checkpoint_alignment": 0},
    ],
)
def test_bad_arguments_are_invalid_argument_errors(arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        align_hybrid_block_size(**arguments)


def test_bad_gdn_backend() -> None:
    with pytest.raises(InvalidArgumentError, match="gdn_prefill_backend must be"):
        load("qwen3-next-80b", gdn_prefill_backend="cuda")


def test_models_doc_table_is_current() -> None:
    """docs/models.md's "As vLLM pages them" table shows what the engine rules compute."""
    text = (FIXTURES.parent.parent.parent / "docs" / "models.md").read_text()

    def row(name: str, backend: str) -> tuple[int, int, int, str, int]:
        layers = load(name, gdn_prefill_backend=backend)
        block, page, state, per_request = pages(layers)
        return page // block, state, block, f"{100 * (page - state) / state:.2f} %", per_request

    for name in ("jamba-v0.1", "nemotron-h-8b", "granite-4.0-h-350m", "falcon-h1-7b"):
        per_token, state, block, padding, per_request = row(name, "flashinfer")
        assert (
            f"| `{name}` | {per_token:,} | {state:,} | {block} | {padding} | {per_request} |"
            in text
        )
    for name in ("qwen3-next-80b", "qwen3.5-0.8b"):
        per_token, state, block, padding, per_request = row(name, "flashinfer")
        _, _, triton, triton_padding, triton_pages = row(name, "triton")
        assert (
            f"| `{name}` | {per_token:,} | {state:,} | {block} ({triton} with Triton) | "
            f"{padding} ({triton_padding}) | {per_request} ({triton_pages}) |" in text
        )


def test_example_layer_file_is_the_engine_layout() -> None:
    import yaml

    from kvschema import parse_spec

    path = FIXTURES.parent.parent.parent / "examples" / "plan" / "jamba-layers.yaml"
    document = yaml.safe_load(path.read_text())
    assert {name: parse_spec(spec) for name, spec in document.items()} == dict(load("jamba-v0.1"))
