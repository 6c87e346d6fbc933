"""`kvschema plan`: inputs, sizes, outputs and exit codes."""

import json
from pathlib import Path
from typing import Any

import pytest

from kvschema.cli import main
from kvschema.render.units import human_bytes, parse_size, parse_sizes

ROOT = Path(__file__).resolve().parent.parent
GEMMA = str(ROOT / "examples" / "plan" / "gemma3-27b-layers.yaml")
JAMBA = str(ROOT / "examples" / "plan" / "jamba-layers.yaml")
HF = ROOT / "tests" / "fixtures" / "hf"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("40GiB", 40 * 1024**3),
        ("40 GB", 40 * 10**9),
        ("512MiB", 512 * 1024**2),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("4096", 4096),
        ("2kib", 2048),
        ("7B", 7),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "-1GiB", "0", "1.5", "12 parsecs", "1e9"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_per_stage_sizes_and_human_bytes() -> None:
    assert parse_sizes("1GiB,2GiB") == [1024**3, 2 * 1024**3]
    assert human_bytes(512) == "512 B"
    assert human_bytes(3 * 1024**4) == "3.00 TiB"


def test_plan_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "plan", "--layers", GEMMA, "--memory", "20GiB", "--max-model-len", "32768"
    )
    assert code == 0
    lines = out.splitlines()
    # vLLM 0.33 schedules asynchronously by default: two batches of 8192 tokens in flight
    # (this was 8192 tokens and 2.97 requests while kvschema defaulted to synchronous).
    assert lines[0] == (
        "62 layers, hybrid, tp=1 pp=1, max_model_len=32768, 16384 tokens in flight (2 x 8192, async)"
    )
    assert "full_attention" in lines[-6]
    assert lines[-4] == "budget       20.00 GiB per rank (21474836480 bytes)"
    assert lines[-3] == "pages        16384 of 1.25 MiB per page index (one is the null page)"
    assert lines[-2] == "concurrency  1.91 requests of 32768 tokens"


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    # Jamba v0.1 at tp = 2, paged as vLLM 0.33 pages it: 4 of 8 KV heads (2 KiB a token) and
    # a 152 KiB state page give an 80-token block (16 x cdiv(155648, 16 x 2048)), pages of
    # 160 KiB, 4 layers a group: 24 GiB // 640 KiB = 39321 page indices.
    code, out, _ = run(
        capsys,
        "plan",
        "--hf-config",
        str(HF / "jamba-v0.1.json"),
        "--memory",
        "24GiB",
        "--max-model-len",
        "65536",
        "--tp",
        "2",
        "-o",
        "json",
    )
    assert code == 0
    plan = json.loads(out)
    assert plan["config"]["num_pages"] == 39321
    assert plan["inputs"]["tensor_parallel_size"] == 2
    assert len(plan["pages_per_request"]) == len(plan["config"]["kv_cache_groups"]) == 8
    assert plan["pages_per_request"] == [2] * 7 + [820]  # align mode: two state pages


def test_whole_model_state_specs_are_not_sharded(capsys: pytest.CaptureFixture[str]) -> None:
    # A layer file's MambaSpec does not say how its state splits: at tp = 2 the planner refuses
    # (it used to plan the whole state on every rank) and names the ways out.
    code, out, err = run(
        capsys,
        "plan",
        "--layers",
        JAMBA,
        "--memory",
        "24GiB",
        "--max-model-len",
        "65536",
        "--tp",
        "2",
    )
    assert (code, out) == (1, "")
    assert "cannot be split over tensor_parallel_size=2" in err
    assert "--hf-config" in err and "specs_per_rank=True" in err


def test_plan_from_groups(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = str(ROOT / "examples" / "valid" / "gemma3-sliding-hybrid.yaml")
    code, out, _ = run(
        capsys, "plan", "--groups", config, "--memory", "4GiB", "--max-model-len", "8192"
    )
    assert code == 0
    assert out.startswith("12 layers, hybrid")
    listed = tmp_path / "groups.json"
    listed.write_text(
        json.dumps(
            [
                {
                    "kv_cache_spec": {
                        "kind": "mamba",
                        "page_size": 1,
                        "shapes": [[4]],
                        "dtype": "fp32",
                    },
                    "layer_names": ["a"],
                }
            ]
        )
    )
    assert (
        run(
            capsys,
            "plan",
            "--groups",
            str(listed),
            "--groups-list",
            "--memory",
            "1MiB",
            "--max-model-len",
            "8",
        )[0]
        == 0
    )


def test_insufficient_memory_exits_1_with_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "plan", "--layers", GEMMA, "--memory", "2GiB", "--max-model-len", "131072"
    )
    assert code == 1
    assert out == ""
    assert err.startswith("kvschema plan: one request of max_model_len=131072 tokens needs")
    assert "lower max_model_len to 3728" in err
    assert err.rstrip().endswith("[insufficient_memory]")


def test_invalid_layer_files_name_the_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "layers.yaml"
    bad.write_text(
        "layer.0: {kind: full_attention, page_size: 16, num_kv_heads: 0, head_size: 8, dtype: bf16}\n"
    )
    code, _, err = run(
        capsys, "plan", "--layers", str(bad), "--memory", "1GiB", "--max-model-len", "8"
    )
    assert code == 1
    assert err.startswith(
        f"{bad}:1:48: $['layer.0'].num_kv_heads: Input should be greater than or equal to 1"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--memory", "1GiB", "--max-model-len", "8"],
        ["plan", "--layers", GEMMA, "--memory", "lots", "--max-model-len", "8"],
        ["plan", "--layers", GEMMA, "--memory", "1GiB"],
        ["plan", "--layers", GEMMA, "--groups", GEMMA, "--memory", "1GiB", "--max-model-len", "8"],
        ["plan", "--layers", "/no/such.yaml", "--memory", "1GiB", "--max-model-len", "8"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert run(capsys, *argv)[0] == 2


def test_tp_that_cannot_split_heads_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "plan", "--layers", GEMMA, "--memory", "20GiB", "--max-model-len", "8", "--tp", "3"
    )
    assert code == 1
    assert "16 KV heads cannot be split over tensor_parallel_size=3" in err


EXCHANGE = ROOT / "examples" / "exchange"


def test_diff_compatible_peers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "diff",
        str(EXCHANGE / "prefill-tp2.yaml"),
        str(EXCHANGE / "decode-tp4.yaml"),
        "--tp-a",
        "2",
        "--tp-b",
        "4",
    )
    assert code == 0
    assert out.splitlines()[-1].endswith(": compatible (tp 2 -> 4, 0 difference(s))")
    assert "[info]" in out


def test_diff_swapped_sides_fail_on_page_size(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "diff",
        str(EXCHANGE / "decode-tp4.yaml"),
        str(EXCHANGE / "prefill-tp2.yaml"),
        "--tp-a",
        "4",
        "--tp-b",
        "2",
        "-o",
        "json",
    )
    assert code == 1
    report = json.loads(out)
    assert report["compatible"] is False
    assert {d["rule"] for d in report["differences"]} == {"page_size"}


def test_diff_usage_and_invalid_files_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "diff", str(EXCHANGE / "prefill-tp2.yaml"), "/no/such.yaml")[0] == 2
    bad = str(ROOT / "examples" / "invalid" / "zero-page-size.yaml")
    assert run(capsys, "diff", bad, bad)[0] == 2
    assert run(capsys, "diff", str(EXCHANGE / "prefill-tp2.yaml"))[0] == 2


def test_layers_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "layers", "--hf-config", str(HF / "nemotron-h-8b.json"))
    assert code == 0
    assert out.splitlines()[0] == "nemotron_h: 52 layers, cache dtype bfloat16, tp=1"
    assert "layer.1   none            no cache (MLP / MoE block)" in out
    assert "KV bytes per token   16384 (16.00 KiB)" in out
    assert "without a cache      24 layer(s)" in out
    code, out, _ = run(
        capsys, "layers", "--hf-config", str(HF / "llama3-8b.json"), "--tp", "2", "-o", "json"
    )
    document = json.loads(out)
    assert document["kv_bytes_per_token"] == 32 * 2 * 4 * 128 * 2
    assert document["layers"]["layer.0"]["num_kv_heads"] == 4


def test_layers_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "layers", "--hf-config", str(HF / "llama3-8b.json"), "--tp", "3")
    assert code == 2
    assert "cannot be split over tensor_parallel_size=3" in err
    assert err.rstrip().endswith("[hf_config]")
    assert run(capsys, "layers", "--hf-config", "/no/such/folder")[0] == 2


def test_plan_from_hf_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "plan",
        "--hf-config",
        str(HF / "gemma3-27b.json"),
        "--memory",
        "20GiB",
        "--max-model-len",
        "32768",
        "--tp",
        "2",
        "-o",
        "json",
    )
    assert code == 0
    plan = json.loads(out)
    assert plan["inputs"]["tensor_parallel_size"] == 2
    assert (
        plan["config"]["kv_cache_groups"][-1]["kv_cache_spec"]["num_kv_heads"] == 8
    )  # 16 heads / 2


def test_plan_hf_config_pages_as_vllm(capsys: pytest.CaptureFixture[str]) -> None:
    def plan(name: str, *extra: str) -> dict[str, Any]:
        code, out, err = run(
            capsys,
            "plan",
            "--hf-config",
            str(HF / f"{name}.json"),
            "--memory",
            "20GiB",
            "--max-model-len",
            "32768",
            "-o",
            "json",
            *extra,
        )
        assert code == 0, err
        document: dict[str, Any] = json.loads(out)
        return document

    def specs(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            g["kv_cache_spec"]["kind"]: g["kv_cache_spec"]
            for g in document["config"]["kv_cache_groups"]
        }

    default = specs(plan("qwen3-next-80b"))
    assert default["full_attention"]["page_size"] == 576  # FlashInfer's 64-token checkpoints
    assert default["mamba"]["mamba_cache_mode"] == "align"
    assert default["mamba"]["num_prefill_checkpoint_blocks"] == 1
    triton = specs(plan("qwen3-next-80b", "--gdn-prefill-backend", "triton"))
    assert triton["full_attention"]["page_size"] == 544
    assert triton["mamba"]["num_prefill_checkpoint_blocks"] == 0
    off = plan("jamba-v0.1", "--no-enable-prefix-caching")
    assert specs(off)["mamba"]["mamba_cache_mode"] == "none"
    assert specs(off)["mamba"]["page_size"] == 32768  # one block of max_model_len tokens
    assert off["pages_per_request"] == [1] * 7 + [410]
    grain = specs(plan("jamba-v0.1", "--page-size", "48"))  # vLLM's --block-size: the grain
    assert grain["full_attention"]["page_size"] == 96
    ssm = specs(
        plan("nemotron-h-8b", "--mamba-ssm-cache-dtype", "bfloat16", "--allow-long-max-model-len")
    )  # an 8K model: 32768 only when allowed
    assert ssm["mamba"]["dtype"] == "bfloat16"
    # EasyDeL's per-layer pool does not align blocks: the plain 16-token pages
    per_layer = specs(plan("jamba-v0.1", "--strategy", "per_layer"))
    assert per_layer["full_attention"]["page_size"] == 16
    assert per_layer["mamba"]["page_size_padded"] is None


def test_engine_switches_as_vllm_names_them(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["plan", "--layers", GEMMA, "--memory", "20GiB", "--max-model-len", "32768"]
    code, out, _ = run(capsys, *base, "--no-async-scheduling")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("8192 tokens in flight (1 x 8192)")
    assert lines[-2] == "concurrency  2.97 requests of 32768 tokens"  # kvschema's old default
    code, out, _ = run(capsys, *base, "--disable-hybrid-kv-cache-manager", "-o", "json")
    assert code == 0
    plan = json.loads(out)
    assert plan["inputs"]["disable_hybrid_kv_cache_manager"] is True
    assert [g["layers"] for g in plan["groups"]] == [62]
    assert plan["config"]["num_pages"] == 2642
    code, out, _ = run(capsys, *base, "--no-kv-connector-supports-hma")
    assert code == 0
    assert "(hybrid KV cache manager disabled)" in out.splitlines()[0]


def test_chunked_local_attention_switches(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["plan", "--hf-config", str(ROOT / "tests" / "fixtures" / "hf" / "llama4-scout.json")]
    base += ["--memory", "40GiB", "--max-model-len", "131072", "--tp", "4", "-o", "json"]
    for extra, disabled in (
        ([], False),
        (["--eagle"], True),
        (["--no-allow-chunked-local-with-hybrid"], True),
    ):
        code, out, _ = run(capsys, *base, *extra)
        assert code == 0
        assert json.loads(out)["inputs"]["disable_hybrid_kv_cache_manager"] is disabled
    code, _, err = run(capsys, *base, "--eagle", "--no-disable-hybrid-kv-cache-manager")
    assert code == 1
    assert "Hybrid KV cache manager was explicitly enabled" in err


def test_attention_free_layers_plan_no_kv_cache(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "layers.yaml"
    empty.write_text("{}\n")
    base = ["plan", "--layers", str(empty), "--memory", "1GiB", "--max-model-len", "4096"]
    code, out, _ = run(capsys, *base)
    assert code == 0
    assert out.splitlines()[0].startswith("0 layers, hybrid")
    assert "no KV cache" in out
    code, out, _ = run(capsys, *base, "-o", "json")
    assert code == 0
    plan = json.loads(out)
    assert plan["config"] is None and plan["max_concurrency"] is None and plan["groups"] == []
    chart = tmp_path / "plan.svg"
    code, _, _ = run(capsys, *base, "--chart", str(chart))
    assert code == 0
    assert chart.read_text().startswith("<svg") and "no KV cache" in chart.read_text()
