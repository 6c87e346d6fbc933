"""Issue 15: every text decoder vLLM 0.33 serves read exactly or refused by name, never a
silently wrong size; bad input is a clear HFConfigError quoting the value."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema import plan_cache
from kvschema.cli.app import main
from kvschema.hf import HFConfigError, layers_from_hf_config, mask_details_from_hf_config
from kvschema.models.catalog import FAMILIES, families_markdown, family_for
from kvschema.models.refusals import NOT_READ, PREVIOUSLY_SUPPORTED, refusal_for
from kvschema.planning.engine import vllm_layers_from_hf_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HF = FIXTURES / "hf"
REGISTRY = json.loads((FIXTURES / "vllm-0.33-registry.json").read_text())
BF16 = {"torch_dtype": "bfloat16"}


def read(config: dict[str, Any], **kwargs: Any) -> Any:
    return layers_from_hf_config({**BF16, **config}, **kwargs)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HF / f"{name}.json").read_text())
    return data


# -- the registry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "architecture", REGISTRY["text_generation"] + REGISTRY["transformers_backend"]
)
def test_every_registered_architecture_is_read_or_refused_by_name(architecture: str) -> None:
    """vLLM 0.33's text-generation registry (and its Transformers-backend list), vendored from
    vllm/model_executor/models/registry.py: each architecture has a family or a refusal."""
    family = family_for("", [architecture])
    refused = refusal_for([architecture], "")
    assert (family is None) != (refused is None), architecture
    if refused is not None:
        assert architecture in refused


def test_the_refusal_tables_are_vllms() -> None:
    assert REGISTRY["previously_supported"] == PREVIOUSLY_SUPPORTED
    served = set(REGISTRY["text_generation"]) | set(REGISTRY["transformers_backend"])
    assert set(NOT_READ) <= served  # refused for what kvschema lacks, not for vLLM
    claimed = {a for f in FAMILIES for a in f.architectures}
    assert claimed <= served, claimed - served


def test_dropped_models_are_refused_naming_the_last_version() -> None:
    for name, version in (("BambaForCausalLM", "0.23.0"), ("MiniMaxM1ForCausalLM", "0.23.0")):
        with pytest.raises(
            HFConfigError, match=rf"no longer serves {name} \(last served in {version}\)"
        ):
            read({"architectures": [name], "model_type": "x", "num_hidden_layers": 2})
    with pytest.raises(HFConfigError, match="no longer serves Bamba"):
        read({"model_type": "bamba", "num_hidden_layers": 2})
    with pytest.raises(HFConfigError, match="kvschema does not read its cache"):
        read({"architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4"})


# -- silently wrong before ---------------------------------------------------------------------


def test_gemma3n_shared_layers_get_no_memory() -> None:
    layers = layers_from_hf_config(HF / "gemma-3n-e4b.json")
    assert len(layers) == 20 and len(layers.kv_sharing) == 15
    # vLLM gemma3n.py: a shared sliding layer reads first - 2, a full one first - 1
    assert layers.kv_sharing["layer.20"] == "layer.18"
    assert layers.kv_sharing["layer.24"] == "layer.19"
    plan = plan_cache(layers, available_bytes=8 * 2**30, max_num_batched_tokens=2048)
    alone = plan_cache(
        dict(layers.items()),  # the 20 caching layers only
        available_bytes=8 * 2**30,
        max_model_len=plan.inputs.max_model_len,
        max_num_batched_tokens=2048,
    )
    assert plan.num_pages == alone.num_pages  # the 15 sharing layers cost nothing
    assert plan.config.kv_sharing == layers.kv_sharing


def test_gemma3n_plan_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(HF / "gemma-3n-e4b.json")
    assert main(["plan", "--hf-config", path, "--memory", "8GiB", "-o", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    shared = {
        name: target
        for group in planned["config"]["kv_cache_groups"]
        for name, target in (group.get("kv_sharing") or {}).items()
    }
    assert len(shared) == 15
    listed = {n for g in planned["config"]["kv_cache_groups"] for n in g["layer_names"]}
    assert not listed & set(shared)  # sharing layers own no page
    assert main(["layers", "--hf-config", path]) == 0
    out = capsys.readouterr().out
    assert "reads layer.18's KV cache" in out and "KV bytes per token   40960" in out


def test_gemma3n_vllm_paging_keeps_the_sharing() -> None:
    layers = vllm_layers_from_hf_config(HF / "gemma-3n-e4b.json")
    assert len(layers.kv_sharing) == 15 and layers.kv_bytes_per_token() == 40960


@given(
    groups=st.integers(min_value=2, max_value=12),
    shared=st.integers(min_value=0, max_value=60),
)
def test_gemma3n_sharing_law(groups: int, shared: int) -> None:
    """The 4:1 pattern: L - shared layers cache, each sharing layer reads an earlier caching
    layer of its own type; bytes are the caching layers' alone."""
    count = 5 * groups
    shared = min(shared, count - 5)
    first = count - shared
    if shared and (first % 5 or (first - 1) % 5 == 0):  # the pattern does not fit vLLM's rule
        with pytest.raises(HFConfigError, match="do not fit"):
            read(
                {
                    "model_type": "gemma3n_text",
                    "num_hidden_layers": count,
                    "num_kv_shared_layers": shared,
                }
            )
        return
    layers = read(
        {
            "model_type": "gemma3n_text",
            "num_hidden_layers": count,
            "num_kv_shared_layers": shared,
        }
    )
    assert len(layers) == count - shared
    assert layers.kv_bytes_per_token() == (count - shared) * 2 * 2 * 256 * 2
    for name, target in layers.kv_sharing.items():
        own = int(name.split(".")[1])
        full = (own + 1) % 5 == 0
        assert target == f"layer.{count - shared - (1 if full else 2)}"  # vLLM's rule
        assert (layers[target].kind == "full_attention") == full  # read from its own type


def test_gemma4_hub_form_equals_what_transformers_saves() -> None:
    """global_head_dim / num_global_key_value_heads / attention_k_eq_v (the hub's fields) give
    the per_layer_config transformers 5 writes (gemma4-text-transformers5.json)."""
    saved = layers_from_hf_config(HF / "gemma4-text-transformers5.json")
    hub = read(
        {
            "model_type": "gemma4_text",
            "num_hidden_layers": 30,
            "attention_k_eq_v": True,
            "num_global_key_value_heads": 1,
            "global_head_dim": 512,
            "num_kv_shared_layers": 12,
        }
    )
    assert hub == saved and hub.kv_sharing == saved.kv_sharing
    full = saved["layer.5"]
    assert (full.num_kv_heads, full.head_size, full.kind) == (1, 512, "full_attention")
    assert saved["layer.4"].sliding_window == 512
    # without attention_k_eq_v the global layers keep num_key_value_heads
    plain = read({"model_type": "gemma4_text", "num_hidden_layers": 6})
    assert (plain["layer.5"].num_kv_heads, plain["layer.5"].head_size) == (4, 512)


def test_gemma4_last_layer_is_full_and_assistants_hold_no_cache() -> None:
    layers = read({"model_type": "gemma4_text", "num_hidden_layers": 4})
    assert layers["layer.3"].kind == "full_attention"  # transformers forces the last layer
    assistant = read(
        {
            "model_type": "gemma4_assistant",
            "text_config": {"model_type": "gemma4_text", "num_hidden_layers": 4},
        }
    )
    assert len(assistant) == 0 and assistant.kv_bytes_per_token() == 0
    assert "no cache of its own" in assistant.notes[0]
    with pytest.raises(HFConfigError, match="num_kv_shared_layers equals num_hidden_layers"):
        read({"model_type": "gemma4_text", "num_hidden_layers": 4, "num_kv_shared_layers": 4})


def test_qwen3_moe_head_dim_and_window() -> None:
    config = {
        "model_type": "qwen3_moe",
        "hidden_size": 2048,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "num_hidden_layers": 48,
    }
    assert read(config).kv_bytes_per_token() == 48 * 2 * 4 * 64 * 2  # was 98,304: head_dim 128
    windowed = read({**config, "use_sliding_window": True, "sliding_window": 4096})
    assert {s.kind for s in windowed.values()} == {"sliding_window"}  # every layer, not some
    assert read({**config, "sliding_window": 4096}).kv_bytes_per_token() == 49152


def test_defaults_are_transformers_5s() -> None:
    assert len(read({"model_type": "deepseek_v2"})) == 32  # was 30
    assert len(read({"model_type": "qwen3_moe"})) == 24  # was Qwen3's 32
    assert read({"model_type": "qwen2_moe"})["layer.0"].num_kv_heads == 16


def test_linear_attention_means_each_familys_mixer() -> None:
    assert layers_from_hf_config(HF / "qwen3-next-80b.json").mixers == ("gated_delta_net",)
    assert layers_from_hf_config(HF / "jamba-v0.1.json").mixers == ("mamba1",)
    assert layers_from_hf_config(HF / "granite-4.0-h-350m.json").mixers == ("mamba2",)
    assert layers_from_hf_config(HF / "kimi-linear-48b-a3b.json").mixers == ("kda",)
    assert layers_from_hf_config(HF / "lfm2-1.2b.json").mixers == ("short_conv",)
    kimi = layers_from_hf_config(HF / "kimi-linear-48b-a3b.json")
    assert kimi["layer.0"].dtypes == ("bfloat16", "float32")  # KDA recurrent state in fp32
    assert kimi["layer.0"].shapes == ((3, 3 * 32 * 128), (32, 128, 128))
    assert kimi["layer.3"].use_mla  # 1-based full_attn_layers [4, ...]


def test_lfm2_full_attn_idxs_and_conv_state() -> None:
    layers = layers_from_hf_config(HF / "lfm2-1.2b.json")
    attention = [n for n, s in layers.items() if s.kind == "full_attention"]
    assert attention == [f"layer.{i}" for i in (2, 5, 8, 10, 12, 14)]
    assert layers["layer.0"].shapes == ((2, 2048),)  # (conv_L_cache - 1, conv_dim)
    assert layers["layer.2"].head_size == 2048 // 32
    with pytest.raises(HFConfigError, match="layer_types missing"):
        read({"model_type": "lfm2_moe", "num_hidden_layers": 2})


def test_hrm_cache_slots() -> None:
    base = {"model_type": "hrm_text", "num_attention_heads": 12, "head_dim": 128}
    legacy = read({**base, "num_hidden_layers": 4, "H_cycles": 2, "L_cycles": 3})
    saved = read({**base, "num_hidden_layers": 32, "num_layers_per_stack": 4})
    assert len(legacy) == len(saved) == 4 * 2 * (3 + 1)


def test_falcon_legacy_and_new_architecture() -> None:
    rw = read({"model_type": "RefinedWebModel", "n_layer": 32, "n_head": 71, "hidden_size": 4544})
    assert rw["layer.0"].num_kv_heads == 1
    big = read({"model_type": "RefinedWeb", "n_layer": 60, "n_head": 128, "hidden_size": 8192})
    assert big["layer.0"].num_kv_heads == 1  # RWConfig: n_head_kv defaults to 1
    with pytest.raises(HFConfigError, match="no longer serves RWForCausalLM"):
        read({"architectures": ["RWForCausalLM"], "model_type": "RefinedWebModel"})


def test_mimo_v2_needs_the_hub_fields() -> None:
    layers = layers_from_hf_config(HF / "mimo-v2-flash.json")
    swa = layers["layer.1"]
    assert (swa.num_kv_heads, swa.head_size, swa.head_size_v, swa.sliding_window) == (
        8,
        192,
        128,
        128,
    )
    assert layers["layer.0"].num_kv_heads == 4
    config = fixture("mimo-v2-flash")
    del config["hybrid_layer_pattern"]
    with pytest.raises(HFConfigError, match="hybrid_layer_pattern missing"):
        read(config)


def test_deepseek_v32_indexer_and_record_formats() -> None:
    layers = layers_from_hf_config(HF / "deepseek-v3.2.json")
    assert layers["layer.0.indexer"].page_size_bytes // 16 == 132
    fp8 = layers_from_hf_config(HF / "deepseek-v3.2.json", kv_cache_dtype="fp8")
    assert fp8["layer.0.attn"].cache_dtype_str == "fp8_ds_mla"
    assert fp8.kv_bytes_per_token() == 61 * (656 + 132)
    fp4 = layers_from_hf_config(HF / "deepseek-v3.2.json", kv_cache_dtype="nvfp4_ds_mla")
    assert fp4.kv_bytes_per_token() == 61 * (352 + 132)
    with pytest.raises(HFConfigError, match="no DeepSeek sparse-attention MLA cache"):
        layers_from_hf_config(HF / "llama3-8b.json", kv_cache_dtype="fp8_ds_mla")
    config = fixture("deepseek-v3.2")
    del config["index_topk"]
    with pytest.raises(HFConfigError, match="index_topk missing"):
        read(config)
    every_other = read({**fixture("deepseek-v3.2"), "index_topk_pattern": "FS" * 30 + "F"})
    assert "layer.1.indexer" not in every_other and "layer.2.indexer" in every_other
    # GLM-4.7-Flash: MLA, and an indexer only when index_topk is set
    assert not any(n.endswith(".indexer") for n in layers_from_hf_config(HF / "glm-4.7-flash.json"))


def test_kimi_linear_refuses_what_vllm_asserts() -> None:
    config = fixture("kimi-linear-48b-a3b")
    with pytest.raises(HFConfigError, match="mla_use_nope"):
        read({**config, "mla_use_nope": False})
    broken = {**config["linear_attn_config"]}
    del broken["full_attn_layers"]
    with pytest.raises(HFConfigError, match="full_attn_layers"):
        read({**config, "linear_attn_config": broken})


def test_nemotron_nas_block_configs() -> None:
    config = {
        "model_type": "nemotron-nas",
        "architectures": ["DeciLMForCausalLM"],
        "num_hidden_layers": 3,
        "num_attention_heads": 64,
        "hidden_size": 8192,
        "block_configs": [
            {"attention": {"n_heads_in_group": 8, "no_op": False}, "ffn": {"ffn_mult": 2.0}},
            {"attention": {"no_op": True}, "ffn": {"ffn_mult": 1.0}},
            {"attention": {"n_heads_in_group": 64}, "ffn": {"no_op": True}},
        ],
    }
    layers = read(config)
    assert layers.no_cache == ("layer.1",)
    assert (layers["layer.0"].num_kv_heads, layers["layer.2"].num_kv_heads) == (8, 1)
    config["block_configs"][0]["attention"]["replace_with_linear"] = True
    with pytest.raises(HFConfigError, match="replace_with_linear"):
        read(config)


def test_nemotron_h_as_transformers_5_saves_it() -> None:
    old = layers_from_hf_config(HF / "nemotron-h-8b.json")
    new = layers_from_hf_config(HF / "nemotron-h-8b-transformers5.json")
    assert new == old and new.no_cache == old.no_cache


def test_bigcode_multi_query_and_mha() -> None:
    mha = read({**fixture("starcoder"), "multi_query": False})
    assert mha["layer.0"].num_kv_heads == 48


# -- not decoders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model_type": "vit", "num_hidden_layers": 12}, "vit is an encoder"),
        (
            {"model_type": "clip", "text_config": {"model_type": "clip_text_model"}},
            "clip is an encoder",
        ),
        ({"model_type": "whisper", "is_encoder_decoder": True}, "encoder-decoder"),
        ({"model_type": "roberta", "num_hidden_layers": 2}, "roberta is an encoder"),
        (
            {"model_type": "my_bert", "architectures": ["MyBertForSequenceClassification"]},
            "encoder heads",
        ),
        ({"model_type": "llama", "num_hidden_layers": 2, "is_causal": False}, "not causal"),
        ({"model_type": "gemma3_text", "use_bidirectional_attention": True}, "bidirectional"),
    ],
)
def test_non_decoders_get_no_decoder_cache(config: dict[str, Any], message: str) -> None:
    with pytest.raises(HFConfigError, match=message):
        read(config)


# -- bad input ----------------------------------------------------------------------------------

QWEN = {"model_type": "qwen2", "num_hidden_layers": 4, "use_sliding_window": True}


@pytest.mark.parametrize(
    ("config", "quoted"),
    [
        (
            {**QWEN, "max_window_layers": None},
            "max_window_layers must be an integer >= 0, got None",
        ),
        ({**QWEN, "max_window_layers": "28"}, "got '28'"),
        (
            {"model_type": "llama", "num_key_value_heads": 0},
            "num_key_value_heads must be a positive integer, got 0",
        ),
        ({"model_type": "llama", "head_dim": 0}, "head_dim must be a positive integer, got 0"),
        (
            {"model_type": "gemma2", "head_dim": "256"},
            "head_dim must be a positive integer, got '256'",
        ),
        (
            {"model_type": "qwen3", "use_sliding_window": "false"},
            "use_sliding_window must be true or false, got 'false'",
        ),
        (
            {"model_type": "jamba", "attn_layer_offset": 8},
            "attn_layer_offset must be an integer >= 0 up to 7, got 8",
        ),
        ({"model_type": "llama", "num_hidden_layers": 10**12}, "up to 100,000, got 1000000000000"),
        (
            {"model_type": "gpt2", "n_layer": 10**12},
            "n_layer must be a positive integer up to 100,000",
        ),
        (
            {"model_type": "gemma3n_text", "num_kv_shared_layers": 99},
            "num_kv_shared_layers must be",
        ),
        ({"model_type": "gemma4_text", "per_layer_config": {"x": {}}}, "per_layer_config key 'x'"),
        (
            {"model_type": "lfm2", "num_hidden_layers": 2, "full_attn_idxs": [True]},
            r"full_attn_idxs\[0\]",
        ),
    ],
)
def test_bad_fields_are_quoted(config: dict[str, Any], quoted: str) -> None:
    with pytest.raises(HFConfigError, match=quoted):
        read(config)


def test_config_file_size_cap_and_special_files(tmp_path: Path) -> None:
    shard = tmp_path / "model.safetensors"
    with shard.open("wb") as handle:  # sparse: 17 MiB without writing them
        handle.truncate(17 * 1024 * 1024)
    with pytest.raises(HFConfigError, match="more than a config.json holds"):
        layers_from_hf_config(shard)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        with pytest.raises(HFConfigError, match="not a regular file"):
            layers_from_hf_config(fifo)  # never opened: opening would block
    if Path("/dev/null").exists():
        with pytest.raises(HFConfigError, match="not a regular file"):
            layers_from_hf_config("/dev/null")


# -- mask details, the listing ------------------------------------------------------------------


def test_mask_details_of_sharing_and_no_op_layers() -> None:
    details = mask_details_from_hf_config(HF / "gemma-3n-e4b.json")
    assert len(details) == 35 and details[24].mask_type.name == "FULL"
    assert details[20].size == 512


def test_kvschema_models_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "-o", "markdown"]) == 0
    assert capsys.readouterr().out.strip() == families_markdown()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for family in FAMILIES:
        assert family.name in out


@pytest.mark.parametrize("kind", [[], {"a": 1}, 3])
def test_a_rope_type_that_is_no_name_is_no_type_error(kind: Any) -> None:
    """Found by mutating the fixtures: vLLM's length rule compared an unhashable rope type."""
    config = {**fixture("deepseek-v2-lite"), "rope_scaling": {"type": kind, "factor": 2.0}}
    assert len(read(config)) == 27


def test_the_architecture_picks_the_rule_as_vllm_picks_the_module() -> None:
    """A Qwen2 module ignores head_dim whatever model_type the config class is."""
    config = {"num_hidden_layers": 2, "num_attention_heads": 32, "hidden_size": 4096}
    llama = read({**config, "model_type": "llama", "head_dim": 64})
    qwen = read(
        {**config, "model_type": "llama", "head_dim": 64, "architectures": ["Qwen2ForCausalLM"]}
    )
    assert (llama["layer.0"].head_size, qwen["layer.0"].head_size) == (64, 128)
