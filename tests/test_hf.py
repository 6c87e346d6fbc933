"""Hugging Face config.json → per-layer specs, family by family, with the published numbers."""

import json
from pathlib import Path
from typing import Any

import pytest

from kvschema import MambaSpec, plan_cache
from kvschema.errors import KVSchemaWarning
from kvschema.hf import HFConfigError, layers_from_hf_config, mask_details_from_hf_config

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf"


def load(name: str, **kwargs: Any) -> Any:
    return layers_from_hf_config(FIXTURES / f"{name}.json", **kwargs)


def kinds(layers: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for spec in layers.values():
        counts[spec.kind] = counts.get(spec.kind, 0) + 1
    return counts


# name, layer kinds and counts, KV bytes per token at bf16 (or the checkpoint's dtype), written
# out from the family's published numbers: layers x 2 (K and V) x KV heads x head size x bytes.
CASES = [
    ("llama3-8b", {"full_attention": 32}, 32 * 2 * 8 * 128 * 2),
    ("llama3-70b", {"full_attention": 80}, 80 * 2 * 8 * 128 * 2),
    ("mistral-7b-v0.1", {"sliding_window": 32}, 32 * 2 * 8 * 128 * 2),
    ("mistral-nemo", {"full_attention": 40}, 40 * 2 * 8 * 128 * 2),
    ("phi3-mini-4k", {"sliding_window": 32}, 32 * 2 * 32 * 96 * 2),
    ("qwen2.5-7b", {"full_attention": 28}, 28 * 2 * 4 * 128 * 2),
    ("qwen3-8b", {"full_attention": 36}, 36 * 2 * 8 * 128 * 2),
    ("qwen3-30b-a3b", {"full_attention": 48}, 48 * 2 * 4 * 128 * 2),
    ("olmo2-7b", {"full_attention": 32}, 32 * 2 * 32 * 128 * 4),  # float32 checkpoint, kept
    ("mixtral-8x7b", {"full_attention": 32}, 32 * 2 * 8 * 128 * 2),
    ("minimax-m2", {"full_attention": 62}, 62 * 2 * 8 * 128 * 2),
    ("gemma2-9b", {"sliding_window": 21, "full_attention": 21}, 42 * 2 * 8 * 256 * 4),
    ("gemma3-27b", {"sliding_window": 52, "full_attention": 10}, 62 * 2 * 16 * 128 * 2),
    ("gemma3-4b", {"sliding_window": 29, "full_attention": 5}, 34 * 2 * 4 * 256 * 2),
    ("cohere2-7b", {"sliding_window": 24, "full_attention": 8}, 32 * 2 * 8 * 128 * 2),
    ("gpt-oss-20b", {"sliding_window": 12, "full_attention": 12}, 24 * 2 * 8 * 64 * 2),
    ("llama4-scout", {"local_attention": 36, "full_attention": 12}, 48 * 2 * 8 * 128 * 2),
    ("deepseek-v3", {"full_attention": 61}, 61 * (512 + 64) * 2),  # one MLA latent, no MTP layer
    ("deepseek-v2-lite", {"full_attention": 27}, 27 * (512 + 64) * 2),
    ("jamba-v0.1", {"full_attention": 4, "mamba": 28}, 4 * 2 * 8 * 128 * 2),
    ("nemotron-h-8b", {"full_attention": 4, "mamba": 24}, 4 * 2 * 8 * 128 * 2),
    ("qwen3-next-80b", {"full_attention": 12, "mamba": 36}, 12 * 2 * 2 * 256 * 2),
    ("qwen3.5", {"full_attention": 2, "mamba": 6}, 2 * 2 * 2 * 256 * 2),
    ("qwen3.5-0.8b", {"full_attention": 6, "mamba": 18}, 6 * 2 * 2 * 256 * 2),
    ("granite-4.0-h-350m", {"full_attention": 4, "mamba": 28}, 4 * 2 * 4 * 64 * 2),
    # Falcon-H1 runs attention and Mamba-2 side by side in every layer
    ("falcon-h1-7b", {"full_attention": 44, "mamba": 44}, 44 * 2 * 2 * 128 * 2),
    ("falcon-h1-tiny-90m", {"full_attention": 24, "mamba": 24}, 24 * 2 * 2 * 64 * 2),
    # Gemma 3n E4B: the last 15 of 35 layers read layers 18 / 19's KV (no cache of their own)
    ("gemma-3n-e4b", {"sliding_window": 16, "full_attention": 4}, 20 * 2 * 2 * 256 * 2),
    # Gemma 4 as transformers 5 saves it: full layers 512 wide with one KV head (k_eq_v), the
    # last 12 layers shared: layers 0-17 cache, 15 sliding (4 x 256) and 3 full (1 x 512)
    (
        "gemma4-text-transformers5",
        {"sliding_window": 15, "full_attention": 3},
        15 * 2 * 4 * 256 * 2 + 3 * 2 * 1 * 512 * 2,
    ),
    ("falcon-7b", {"full_attention": 32}, 32 * 2 * 1 * 64 * 2),  # multi_query: one KV head
    ("falcon-40b", {"full_attention": 60}, 60 * 2 * 8 * 64 * 2),  # num_kv_heads 8
    # MiMo-V2-Flash: 9 full layers of 4 KV heads, 39 sliding of 8; K 192 wide, V 128
    (
        "mimo-v2-flash",
        {"full_attention": 9, "sliding_window": 39},
        9 * 4 * (192 + 128) * 2 + 39 * 8 * (192 + 128) * 2,
    ),
    ("lfm2-1.2b", {"full_attention": 6, "mamba": 10}, 6 * 2 * 8 * 64 * 2),
    # DeepSeek-V3.2: a 576-wide latent and a 132-byte indexer key on each of 61 layers
    ("deepseek-v3.2", {"full_attention": 122}, 61 * ((512 + 64) * 2 + 132)),
    ("glm-4.7-flash", {"full_attention": 47}, 47 * (512 + 64) * 2),
    ("kimi-linear-48b-a3b", {"full_attention": 7, "mamba": 20}, 7 * (512 + 64) * 2),
    ("qwen2.5-omni-7b", {"full_attention": 28}, 28 * 2 * 4 * 128 * 2),  # thinker_config.text_config
    ("qwen3-omni-30b-a3b", {"full_attention": 48}, 48 * 2 * 4 * 128 * 2),
    ("mamba-2.8b", {"mamba": 64}, 0),
    ("falcon-mamba-7b", {"mamba": 64}, 0),
    ("mamba-codestral-7b", {"mamba": 64}, 0),
    ("zamba2-2.7b", {"full_attention": 9, "mamba": 54}, 9 * 2 * 32 * 160 * 2),
    ("gpt2", {"full_attention": 12}, 12 * 2 * 12 * 64 * 4),
    ("gpt-j-6b", {"full_attention": 28}, 28 * 2 * 16 * 256 * 2),
    ("gpt-neox-20b", {"full_attention": 44}, 44 * 2 * 64 * 96 * 2),
    ("bloom-560m", {"full_attention": 24}, 24 * 2 * 16 * 64 * 2),
    ("starcoder", {"full_attention": 40}, 40 * 2 * 1 * 128 * 4),  # multi_query, float32
    ("starcoder2-15b", {"sliding_window": 40}, 40 * 2 * 4 * 128 * 2),
    ("nemotron-h-8b-transformers5", {"full_attention": 4, "mamba": 24}, 4 * 2 * 8 * 128 * 2),
]


@pytest.mark.parametrize(("name", "counts", "per_token"), CASES, ids=[c[0] for c in CASES])
def test_family(name: str, counts: dict[str, int], per_token: int) -> None:
    layers = load(name)
    assert kinds(layers) == counts
    assert layers.kv_bytes_per_token() == per_token
    assert list(layers) == sorted(layers, key=lambda n: int(n.split(".")[1]))
    held = [
        n for n in layers.layer_names if n not in layers.no_cache and n not in layers.kv_sharing
    ]
    assert held == list(layers)


#: Fixtures kvschema refuses, with what the refusal says.
REFUSED = {
    # vLLM 0.33's Qwen2Model asserts max_window_layers == num_hidden_layers when some layers
    # slide and others do not (vllm/model_executor/models/qwen2.py, Qwen2Model.__init__)
    "qwen2-sliding": "vLLM 0.33's Qwen2 / Qwen3 model refuses it",
    "jetmoe-8b": "JetMoE is not in vLLM 0.33's registry",
    "llama-3.2-11b-vision": r"no longer serves MllamaForConditionalGeneration \(last served in 0.10.2\)",
    "recurrentgemma-2b": "RecurrentGemma is not in vLLM 0.33's registry",
    "bert-base-uncased": "bert is an encoder: it keeps no KV cache",
    "t5-small": "t5 is an encoder-decoder",
}


def test_every_fixture_is_covered() -> None:
    covered = {c[0] for c in CASES} | set(REFUSED)
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(covered)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_fixture(name: str) -> None:
    with pytest.raises(HFConfigError, match=REFUSED[name]):
        load(name)


def test_interleaving_rules() -> None:
    gemma3 = load("gemma3-27b")
    assert [i for i, s in enumerate(gemma3.values()) if s.kind == "full_attention"] == list(
        range(5, 62, 6)
    )
    assert gemma3["layer.0"].sliding_window == 1024
    gemma2 = load("gemma2-9b")
    assert [s.kind for s in list(gemma2.values())[:4]] == ["sliding_window", "full_attention"] * 2
    cohere = load("cohere2-7b")
    assert [i for i, s in enumerate(cohere.values()) if s.kind == "full_attention"] == list(
        range(3, 32, 4)
    )
    oss = load("gpt-oss-20b")
    assert oss["layer.0"].sliding_window == 128
    assert oss["layer.1"].kind == "full_attention"
    scout = load("llama4-scout")  # an empty no_rope_layers list means every 4th layer global
    assert [i for i, s in enumerate(scout.values()) if s.kind == "full_attention"] == list(
        range(3, 48, 4)
    )
    assert scout["layer.0"].attention_chunk_size == 8192


def test_qwen_without_use_sliding_window_has_no_window_whatever_sliding_window_says() -> None:
    assert set(kinds(load("qwen2.5-7b"))) == {"full_attention"}


def test_gemma3_defaults_fill_what_real_files_leave_out() -> None:
    layers = load("gemma3-4b")  # heads, KV heads, head_dim and pattern are the class defaults
    spec = layers["layer.0"]
    assert (spec.num_kv_heads, spec.head_size) == (4, 256)


def test_mla_latent_and_head_dim_trap() -> None:
    layers = load("deepseek-v3")
    spec = layers["layer.0"]
    assert spec.use_mla
    assert (spec.num_kv_heads, spec.head_size) == (1, 576)  # not the rope-only head_dim of 64
    assert len(layers) == 61
    assert load("deepseek-v3", tensor_parallel_size=8)["layer.0"] == spec  # never sharded


def test_jamba_mamba1_state() -> None:
    layers = load("jamba-v0.1")
    assert [i for i, s in enumerate(layers.values()) if s.kind == "full_attention"] == [
        4,
        12,
        20,
        28,
    ]
    state = layers["layer.0"]
    # vLLM's default "SD" conv layout: (d_conv - 1, expand x hidden), then (.., d_state)
    assert state.shapes == ((3, 8192), (8192, 16))
    assert state.page_size_bytes == (8192 * 3 + 8192 * 16) * 2
    assert layers.state_bytes_per_request() == 28 * state.page_size_bytes
    assert load("jamba-v0.1", tensor_parallel_size=2)["layer.0"].shapes == ((3, 4096), (4096, 16))


def test_nemotron_h_mamba2_state_and_cacheless_layers() -> None:
    layers = load("nemotron-h-8b")
    assert len(layers.no_cache) == 24  # the MLP blocks: reported, never silently lost
    assert "layer.1" in layers.no_cache
    assert "layer.1" not in layers
    state = layers["layer.0"]
    # intermediate = 128 heads x 64; conv (kernel - 1, intermediate + 2 x groups x state)
    assert state.shapes == ((3, 8192 + 2 * 8 * 128), (128, 64, 128))
    assert state.dtypes == ("bfloat16", "float32")  # SSM state in float32 when unset
    assert state.page_size_bytes == 3 * 10240 * 2 + 128 * 64 * 128 * 4
    sharded = load("nemotron-h-8b", tensor_parallel_size=8)["layer.0"]
    assert sharded.shapes == ((3, (8192 + 2 * 8 * 128) // 8), (16, 64, 128))
    # vLLM's MambaMixer2 needs tp to divide the groups (or one group): 8 groups over 16 ranks
    # fail there, so they are refused here (they used to be padded up to 16)
    with pytest.raises(HFConfigError, match="8 Mamba-2 groups cannot be split"):
        load("nemotron-h-8b", tensor_parallel_size=16)


def test_gated_delta_net_state() -> None:
    layers = load("qwen3-next-80b")
    assert [i for i, s in enumerate(layers.values()) if s.kind == "full_attention"] == list(
        range(3, 48, 4)
    )
    state = layers["layer.0"]
    assert state.shapes == ((3, 2 * 16 * 128 + 32 * 128), (32, 128, 128))
    assert state.dtype == "bfloat16"
    qwen35 = load("qwen3.5")  # layer_types and mamba_ssm_dtype
    assert qwen35["layer.0"].dtypes == ("bfloat16", "float32")
    assert qwen35["layer.3"].kind == "full_attention"
    # vLLM reads mamba_ssm_dtype for Qwen3.5 only (Qwen3_5ForConditionalGenerationConfig):
    # a Qwen3-Next config that carries it keeps its SSM state in the model dtype
    config = json.loads((FIXTURES / "qwen3-next-80b.json").read_text())
    next_with_field = layers_from_hf_config({**config, "mamba_ssm_dtype": "float32"})
    assert next_with_field["layer.0"].dtype == "bfloat16"
    # --mamba-cache-dtype / --mamba-ssm-cache-dtype win over the family's own setting
    assert load("qwen3.5", mamba_ssm_cache_dtype="bf16")["layer.0"].dtype == "bfloat16"
    assert load("qwen3-next-80b", mamba_cache_dtype="fp32")["layer.0"].dtype == "float32"
    assert load("nemotron-h-8b", mamba_ssm_cache_dtype="float16")["layer.0"].dtypes == (
        "bfloat16",
        "float16",
    )
    with pytest.raises(HFConfigError, match="mamba_cache_dtype must be one of"):
        load("jamba-v0.1", mamba_cache_dtype="fp8")


def test_granite_4_h_mamba2_state() -> None:
    layers = load("granite-4.0-h-350m")
    assert [i for i, s in enumerate(layers.values()) if s.kind == "full_attention"] == [
        10,
        13,
        17,
        27,
    ]
    state = layers["layer.0"]
    # intermediate = mamba_expand (2, the class default) x 768; one group of 128
    assert state.shapes == ((3, 1536 + 2 * 1 * 128), (48, 32, 128))
    assert state.dtype == "bfloat16"
    assert layers.mixers == ("mamba2",)
    # one group over 4 ranks is replicated to each: (1536 + 2 x 4 x 128) / 4 conv channels
    assert load("granite-4.0-h-350m", tensor_parallel_size=4)["layer.0"].shapes == (
        (3, (1536 + 2 * 4 * 128) // 4),
        (12, 32, 128),
    )
    attention = layers["layer.10"]
    assert (attention.num_kv_heads, attention.head_size) == (4, 768 // 12)
    spelled = {
        "model_type": "granitemoehybrid",
        "num_hidden_layers": 2,
        "layer_types": ["linear_attention", "full_attention"],
        "torch_dtype": "bfloat16",
    }
    assert kinds(layers_from_hf_config(spelled)) == {"mamba": 1, "full_attention": 1}
    with pytest.raises(HFConfigError, match="layer_types must list 2 entries from attention"):
        layers_from_hf_config({**spelled, "layer_types": ["mamba", "sliding_attention"]})


def test_falcon_h1_keeps_attention_and_state_in_every_layer() -> None:
    layers = load("falcon-h1-7b")
    assert list(layers)[:4] == ["layer.0.attn", "layer.0.mamba", "layer.1.attn", "layer.1.mamba"]
    assert layers.layer_names == tuple(layers)
    state = layers["layer.0.mamba"]
    # mamba_d_ssm (3072) + 2 x 1 group x 256; 24 heads of 128
    assert state.shapes == ((3, 3072 + 2 * 256), (24, 128, 256))
    tiny = load("falcon-h1-tiny-90m")["layer.0.mamba"]
    assert tiny.shapes == ((3, 896), (24, 32, 64))  # vLLM's Falcon-H1-Tiny test data
    with pytest.raises(HFConfigError, match="use layers_from_hf_config"):
        mask_details_from_hf_config(FIXTURES / "falcon-h1-7b.json")


def test_tensor_parallel_heads() -> None:
    assert load("llama3-8b", tensor_parallel_size=2)["layer.0"].num_kv_heads == 4
    assert load("llama3-8b", tensor_parallel_size=16)["layer.0"].num_kv_heads == 1
    with pytest.raises(
        HFConfigError, match="8 KV heads cannot be split over tensor_parallel_size=3"
    ):
        load("llama3-8b", tensor_parallel_size=3)
    with pytest.raises(HFConfigError, match="cannot be split over tensor_parallel_size=3"):
        load("nemotron-h-8b", tensor_parallel_size=3)


def test_dtypes() -> None:
    assert load("olmo2-7b").dtype == "float32"  # kept as written: no downcast
    assert load("llama3-8b", kv_cache_dtype="fp8")["layer.0"].dtype == "float8_e4m3fn"
    fp8 = load("nemotron-h-8b", kv_cache_dtype="fp8")
    assert fp8["layer.7"].dtype == "float8_e4m3fn"
    assert fp8["layer.0"].dtypes == ("bfloat16", "float32")  # state keeps the model dtype
    config = json.loads((FIXTURES / "llama3-8b.json").read_text())
    del config["torch_dtype"]
    with pytest.warns(KVSchemaWarning, match="assuming bfloat16"):
        assert layers_from_hf_config(config).dtype == "bfloat16"
    config["dtype"] = "float16"
    assert layers_from_hf_config(config).dtype == "float16"


def test_paths_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((FIXTURES / "nemotron-h-8b.json").read_text())
    assert len(layers_from_hf_config(folder)) == 28  # with Infinity inside
    assert len(layers_from_hf_config(str(folder / "config.json"))) == 28
    with pytest.raises(HFConfigError, match="no such file"):
        layers_from_hf_config(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(HFConfigError, match="not JSON"):
        layers_from_hf_config(tmp_path / "bad.json")
    with pytest.raises(HFConfigError, match="must be a dict"):
        layers_from_hf_config(42)  # type: ignore[arg-type]


def test_unknown_families() -> None:
    plain = {
        "model_type": "brand_new",
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "hidden_size": 1024,
        "torch_dtype": "bfloat16",
    }
    with pytest.warns(KVSchemaWarning, match="unknown"):
        layers = layers_from_hf_config(plain)
    assert layers["layer.0"].head_size == 128
    with pytest.raises(
        HFConfigError,
        match=r"not a family kvschema knows \(it has sliding_window\); supported: .*gemma2",
    ):
        layers_from_hf_config({**plain, "sliding_window": 4096})
    explicit = {
        **plain,
        "sliding_window": 512,
        "layer_types": ["sliding_attention", "full_attention"] * 2,
    }
    assert kinds(layers_from_hf_config(explicit)) == {"sliding_window": 2, "full_attention": 2}
    with pytest.raises(HFConfigError, match="names no model_type"):
        layers_from_hf_config({"num_hidden_layers": 2})


def test_bad_fields() -> None:
    with pytest.raises(HFConfigError, match="layer_types must list 4 entries"):
        layers_from_hf_config(
            {
                "model_type": "gpt_oss",
                "num_hidden_layers": 4,
                "layer_types": ["full_attention"],
                "torch_dtype": "bf16",
            }
        )
    with pytest.raises(HFConfigError, match="hybrid_override_pattern must be 3 characters"):
        layers_from_hf_config(
            {
                "model_type": "nemotron_h",
                "num_hidden_layers": 3,
                "hybrid_override_pattern": "MX*",
                "torch_dtype": "bf16",
            }
        )
    with pytest.raises(HFConfigError, match="num_hidden_layers must be a positive integer"):
        layers_from_hf_config(
            {"model_type": "llama", "num_hidden_layers": -2, "torch_dtype": "bf16"}
        )


def test_mask_details() -> None:
    details = mask_details_from_hf_config(FIXTURES / "gemma3-27b.json")
    assert len(details) == 62
    assert details[0].size == 1024
    assert details[5].mask_type.name == "FULL"
    chunked = mask_details_from_hf_config(FIXTURES / "llama4-scout.json")
    assert chunked[0].chunks == 8192
    with pytest.raises(HFConfigError, match="use layers_from_hf_config"):
        mask_details_from_hf_config(FIXTURES / "jamba-v0.1.json")


def test_hf_layers_plan() -> None:
    layers = load("gemma3-27b", tensor_parallel_size=2)
    plan = plan_cache(
        layers,
        available_bytes=20 * 1024**3,
        max_model_len=32768,
        max_num_batched_tokens=8192,
        tensor_parallel_size=2,
        specs_per_rank=True,
    )
    assert plan.inputs.tensor_parallel_size == 2
    assert plan.config.kv_cache_groups[-1].kv_cache_spec.num_kv_heads == 8
    states = [s for s in load("jamba-v0.1").values() if isinstance(s, MambaSpec)]
    assert len(states) == 28


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "llama", "layer_types": [[]]},  # found by the long fuzz run: TypeError
        {"model_type": "llama", "layer_types": "full_attention"},
        {"model_type": "llama4_text", "num_hidden_layers": 4, "no_rope_layers": [1]},
        {"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": True},
        {"model_type": "deepseek_v3", "num_hidden_layers": 2, "kv_lora_rank": 1.5},
        {"model_type": "gemma2", "num_hidden_layers": 2, "sliding_window": "4096"},
    ],
)
def test_malformed_fields_are_hf_config_errors(config: dict[str, Any]) -> None:
    with pytest.raises(HFConfigError):
        layers_from_hf_config({**config, "torch_dtype": "bfloat16"})
