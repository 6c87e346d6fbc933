"""`kvschema plan --chart`: a readable, well-formed SVG; the docs' charts are current."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kvschema import FullAttentionSpec, SlidingWindowSpec, plan_cache
from kvschema.cli import main
from kvschema.render.chart import plan_chart

ROOT = Path(__file__).resolve().parent.parent
HF = ROOT / "tests" / "fixtures" / "hf"
DOC_CHARTS = {
    "gemma3-27b-plan.svg": [
        "plan",
        "--hf-config",
        str(HF / "gemma3-27b.json"),
        "--memory",
        "20GiB",
        "--max-model-len",
        "32768",
        "--tp",
        "2",
    ],
    "nemotron-h-8b-plan.svg": [
        "plan",
        "--hf-config",
        str(HF / "nemotron-h-8b.json"),
        "--memory",
        "16GiB",
        "--max-model-len",
        "8192",
    ],
}


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")]


def test_chart_has_labels_units_and_legend() -> None:
    full = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=1024
    )
    plan = plan_cache(
        {f"l{i}": full if i % 6 == 5 else local for i in range(12)},
        available_bytes=2 * 1024**3,
        max_model_len=8192,
        max_num_batched_tokens=2048,
    )
    labels = texts(plan_chart(plan, title="a 5:1 hybrid"))
    assert labels[0] == "a 5:1 hybrid"
    assert "max_model_len (tokens, log scale)" in labels
    assert "max concurrency (requests, log scale)" in labels
    # async scheduling (vLLM 0.33's default) keeps 2 x 2048 tokens in flight: 321 sliding pages
    assert "memory by group: 264.62 MiB" in labels  # 2,117 page indices of 128 KiB
    assert "pages by group: 2,117 pages" in labels
    assert f"{plan.max_concurrency:.2f} requests at 8,192 tokens" in labels
    assert sum(label.startswith(("0 sliding", "5 full")) for label in labels) == 2


@pytest.mark.parametrize(("name", "argv"), sorted(DOC_CHARTS.items()))
def test_docs_charts_are_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, argv: list[str]
) -> None:
    out = tmp_path / name
    assert main([*argv, "--chart", str(out)]) == 0
    capsys.readouterr()
    expected = (ROOT / "docs" / "img" / name).read_text()
    assert out.read_text().replace(argv[2].rsplit("/", 1)[0], "") == expected.replace(
        argv[2].rsplit("/", 1)[0], ""
    ), f"regenerate docs/img/{name} with: kvschema {' '.join(argv)} --chart docs/img/{name}"


def test_chart_path_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = DOC_CHARTS["gemma3-27b-plan.svg"]
    assert main([*argv, "--chart", "/no/such/dir/chart.svg"]) == 2
    assert "cannot write /no/such/dir/chart.svg" in capsys.readouterr().err
