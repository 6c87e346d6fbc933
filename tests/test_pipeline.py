"""The command line as a pipeline (issue 17): what one command writes, the next reads; options
that do not apply are refused; sizes have documented units; the plan shows its budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvschema import (
    CacheGroupsConfig,
    CacheGroupSpec,
    FullAttentionSpec,
    fingerprint,
    layout_fingerprint,
)
from kvschema.cli import main
from kvschema.render.units import parse_size

ROOT = Path(__file__).resolve().parent.parent
GEMMA = str(ROOT / "examples/plan/gemma3-27b-layers.yaml")
PREFILL = str(ROOT / "examples/exchange/prefill-tp2.yaml")
DECODE = str(ROOT / "examples/exchange/decode-tp4.yaml")
DEPLOY = str(ROOT / "examples/sections/llama3-deploy.yaml")
JAMBA_HF = str(ROOT / "tests/fixtures/hf/jamba-v0.1.json")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _plan_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str) -> Path:
    code, out, _ = run(
        capsys, "plan", "--layers", GEMMA, "--memory", "20GiB", "--max-model-len", "32768",
        "-o", "json", *extra,
    )  # fmt: skip
    assert code == 0
    path = tmp_path / "plan.json"
    path.write_text(out)
    return path


# -- what plan -o json writes, plan --groups, diff and fingerprint read ----------------------


def test_diff_reads_a_plan_and_its_layout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = _plan_json(capsys, tmp_path)
    config = json.loads(plan.read_text())["config"]
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps(config))
    for a, b in [(plan, plan), (plan, layout), (layout, plan)]:
        code, out, err = run(capsys, "diff", str(a), str(b))
        assert code == 0, err
        assert out.rstrip().endswith("compatible (tp 1 -> 1, 0 difference(s))")


def test_diff_takes_tp_from_what_a_plan_records(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = _plan_json(capsys, tmp_path, "--tp", "2")
    code, out, _ = run(capsys, "diff", str(plan), str(plan))
    assert code == 0 and "(tp 2 -> 2," in out
    code, _, err = run(capsys, "diff", str(plan), str(plan), "--tp-a", "4")
    assert code == 2 and "--tp-a 4 contradicts" in err and "give 2" in err


def test_diff_and_fingerprint_take_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", "--path", "/serving/kv_cache", DEPLOY, DEPLOY)
    assert code == 0 and "compatible" in out
    code, _, err = run(capsys, "diff", "--path", "/nowhere", DEPLOY, DEPLOY)
    assert code == 2 and "[path_not_found]" in err
    code, out, _ = run(capsys, "fingerprint", "--path", "/serving/kv_cache", DEPLOY, "-o", "json")
    assert code == 0
    answer = json.loads(out)
    assert answer["fingerprint"].startswith("sha256:")
    assert answer["layout_fingerprint"].startswith("sha256:")


def test_fingerprint_prints_what_the_library_computes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = _plan_json(capsys, tmp_path)
    config = CacheGroupsConfig.model_validate(json.loads(plan.read_text())["config"])
    code, out, _ = run(capsys, "fingerprint", str(plan))
    assert code == 0
    assert out.splitlines() == [
        f"fingerprint         {fingerprint(config)}",
        f"layout_fingerprint  {layout_fingerprint(config)}",
    ]
    # a spec has a fingerprint, and no layout fingerprint (it has no groups)
    spec = tmp_path / "spec.yaml"
    spec.write_text("{kind: mamba, page_size: 1, shapes: [[4]], dtype: fp32}\n")
    code, out, _ = run(capsys, "fingerprint", str(spec), "-o", "json")
    assert code == 0 and json.loads(out)["layout_fingerprint"] is None


def test_fingerprint_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("{kind: mamba, page_size: 0, shapes: [[4]], dtype: fp32}\n")
    assert run(capsys, "fingerprint", str(bad))[0] == 1
    code, out, _ = run(capsys, "fingerprint", str(tmp_path / "missing.yaml"), "-o", "json")
    assert code == 2 and json.loads(out)["ok"] is False


def test_a_peer_keeps_its_fingerprints_across_the_pipeline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """plan -o json, then plan --groups of that plan: the same layout, the same fingerprints."""
    first = _plan_json(capsys, tmp_path)
    code, out, _ = run(
        capsys, "plan", "--groups", str(first), "--memory", "20GiB", "--max-model-len", "32768",
        "-o", "json",
    )  # fmt: skip
    assert code == 0
    second = tmp_path / "again.json"
    second.write_text(out)
    prints = [run(capsys, "fingerprint", str(path))[1] for path in (first, second)]
    assert prints[0] == prints[1]


# -- options that do not apply are refused ---------------------------------------------------

HF_ONLY = [
    ("--page-size", "32"),
    ("--kv-cache-dtype", "fp8"),
    ("--kv-cache-dtype", "auto"),  # given, even as the default: still not applicable
    ("--mamba-cache-dtype", "fp32"),
    ("--mamba-ssm-cache-dtype", "fp32"),
    ("--gdn-prefill-backend", "triton"),
    ("--no-enable-prefix-caching", None),
    ("--allow-long-max-model-len", None),
]


@pytest.mark.parametrize(("option", "value"), HF_ONLY)
@pytest.mark.parametrize("source", ["--layers", "--groups"])
def test_hf_options_are_refused_with_layers_or_groups(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, source: str, option: str, value: str | None
) -> None:
    path = GEMMA if source == "--layers" else str(_plan_json(capsys, tmp_path))
    given = [option] if value is None else [option, value]
    code, out, err = run(
        capsys, "plan", source, path, "--memory", "20GiB", "--max-model-len", "32768", *given,
        "-o", "json",
    )  # fmt: skip
    assert code == 2
    assert f"kvschema plan: {option} applies to --hf-config only" in err
    assert json.loads(out)["errors"][0]["type"] == "usage"


@pytest.mark.parametrize(
    "option", [["--gdn-prefill-backend", "triton"], ["--no-enable-prefix-caching"]]
)
def test_vllm_paging_options_are_refused_with_per_layer(
    capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    code, _, err = run(
        capsys, "plan", "--hf-config", JAMBA_HF, "--memory", "24GiB", "--strategy", "per_layer",
        *option,
    )  # fmt: skip
    assert code == 2 and f"{option[0]} applies to vLLM's paging" in err


def test_groups_list_needs_groups(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "plan", "--layers", GEMMA, "--groups-list", "--memory", "1GiB",
        "--max-model-len", "1024",
    )  # fmt: skip
    assert code == 2 and "--groups-list" in err


def test_hf_options_still_apply_to_hf_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "plan", "--hf-config", JAMBA_HF, "--memory", "24GiB", "--max-model-len", "65536",
        "--kv-cache-dtype", "fp8", "--page-size", "160", "--no-enable-prefix-caching",
    )  # fmt: skip
    assert code == 0, err
    assert "budget       24.00 GiB per rank" in out


# -- sizes and the budget the plan shows -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("80G", 80 * 2**30),  # vLLM's --kv-cache-memory-bytes: upper case is binary
        ("80Gi", 80 * 2**30),
        ("80gi", 80 * 2**30),
        ("80GiB", 80 * 2**30),
        ("80g", 80 * 10**9),  # lower case is decimal, as in vLLM
        ("80GB", 80 * 10**9),
        ("80gb", 80 * 10**9),
        ("512M", 512 * 2**20),
        ("512m", 512 * 10**6),
        ("1T", 2**40),
        ("1.5G", 3 * 2**29),
        ("1k", 1000),
        ("1K", 1024),
    ],
)
def test_size_units_mean_what_the_docs_say(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["80GG", "80 Gib B", "G80", "1b5", "80x", "9" * 100 + "G"])
def test_unknown_size_units_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a number of bytes with an optional unit"):
        parse_size(text)


def test_the_plan_shows_the_budget_it_planned_for(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "plan", "--layers", GEMMA, "--memory", "20G", "--max-model-len", "32768"
    )
    assert code == 0
    assert "budget       20.00 GiB per rank (21474836480 bytes)" in out.splitlines()
    code, out, _ = run(
        capsys, "plan", "--layers", GEMMA, "--memory", "20GiB,18GiB", "--max-model-len", "8192",
        "--pp", "2",
    )  # fmt: skip
    assert code == 0
    assert "budget       20.00 GiB, 18.00 GiB per rank, one per pipeline stage" in out


def test_a_budget_past_the_json_bound_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "plan", "--layers", GEMMA, "--memory", "9000000TiB", "--max-model-len", "8192",
        "-o", "json",
    )  # fmt: skip
    assert code == 1 and "available_bytes must be at most 9007199254740991" in err
    assert json.loads(out)["ok"] is False


def test_validate_takes_every_kind_the_docs_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", "--kind", "layers", GEMMA)
    assert code == 0, err
    code, _, _ = run(capsys, "validate", "--kind", "groups", GEMMA)
    assert code == 1


def test_what_each_fingerprint_covers_is_what_the_docs_say() -> None:
    """docs/exchange.md's table: num_pages, parallelism and schema_version are in the
    fingerprint only; specs, layer names and the order of groups are in both."""
    from kvschema import Parallelism, SlidingWindowSpec

    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=512
    )
    full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    groups = [
        CacheGroupSpec(kv_cache_spec=local, layer_names=["l0", "l1"]),
        CacheGroupSpec(kv_cache_spec=full, layer_names=["l2"]),
    ]
    base = CacheGroupsConfig(num_pages=64, kv_cache_groups=groups)
    only_fingerprint = [
        base.model_copy(update={"num_pages": 65}),
        base.model_copy(update={"parallelism": Parallelism(tensor_parallel_size=2)}),
        base.model_copy(update={"schema_version": 1}).model_copy(  # content_version: 1 either way
            update={"kv_cache_groups": groups}
        ),
    ]
    for other in only_fingerprint[:2]:
        assert fingerprint(other) != fingerprint(base)
        assert layout_fingerprint(other) == layout_fingerprint(base)
    assert fingerprint(only_fingerprint[2]) == fingerprint(base)  # written as content_version
    both = [
        base.model_copy(update={"kv_cache_groups": groups[::-1]}),
        base.model_copy(
            update={
                "kv_cache_groups": [
                    groups[0].model_copy(update={"layer_names": ["l1", "l0"]}),
                    groups[1],
                ]
            }
        ),
        base.model_copy(
            update={
                "kv_cache_groups": [
                    groups[0],
                    CacheGroupSpec(
                        kv_cache_spec=full.model_copy(update={"dtype": "float16"}),
                        layer_names=["l2"],
                    ),
                ]
            }
        ),
    ]
    for other in both:
        assert fingerprint(other) != fingerprint(base)
        assert layout_fingerprint(other) != layout_fingerprint(base)
    # spelling does not count: aliases, key order, defaults written out
    spelt = CacheGroupsConfig.model_validate_json(
        json.dumps(json.loads(base.model_dump_json()), sort_keys=True).replace("bfloat16", "bf16")
    )
    assert fingerprint(spelt) == fingerprint(base)
