"""kvschema serve's JSON API with FastAPI's test client: every endpoint answers what the command
line prints for the same input, the limits hold, every error is JSON with a rule id, and every
answer carries the security headers."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi", reason='needs the serve extra: pip install ".[serve]"')
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx (the test-serve extra)")

from fastapi.testclient import TestClient

from kvschema.cli import main
from kvschema.exchange.canonical import fingerprint, layout_fingerprint, read_config
from kvschema.exchange.schema import json_schemas
from kvschema.planning.gpus import gpus as catalogue
from kvschema.serve import service
from kvschema.serve.app import LOOPBACK_HOSTS, create_app
from kvschema.serve.bundled import BUNDLED, bundled_config
from kvschema.serve.schemas import ErrorReport, FitResponse

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def error(response: Any, status: int, kind: str) -> ErrorReport:
    """The answer is an ErrorReport of this status and rule id, with the security headers."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    report = ErrorReport.model_validate_json(response.text)
    assert (report.status, report.type) == (status, kind), report
    assert "Traceback" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    return report


# -- the page and the headers ------------------------------------------------------------------


def test_the_page_and_its_files_carry_a_strict_policy(client: TestClient) -> None:
    for path, kind in (
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["x-content-type-options"] == "nosniff"
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["server-timing"].startswith("app;dur=")


def test_the_page_has_no_inline_script_no_style_attribute_and_no_eval() -> None:
    from html.parser import HTMLParser

    static = ROOT / "kvschema" / "serve" / "static"
    found: list[str] = []

    class Page(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {name for name, _ in attrs}
            if tag == "script" and "src" not in names:
                found.append("inline script")
            if tag == "style" or "style" in names:
                found.append(f"inline style on <{tag}>")
            found.extend(f"{name} on <{tag}>" for name in names if name.startswith("on"))
            for name, value in attrs:
                if (
                    name in ("src", "href")
                    and value
                    and value.startswith(("http:", "https:", "//"))
                ):
                    found.append(f"a file from elsewhere: {value}")

    Page().feed((static / "index.html").read_text())
    assert found == []
    script = (static / "app.js").read_text()
    for banned in ("eval(", "new Function", "innerHTML", "outerHTML", "document.write", "http://"):
        assert banned not in script, banned


def test_labels_name_every_control() -> None:
    import re

    page = (ROOT / "kvschema" / "serve" / "static" / "index.html").read_text()
    controls = re.findall(r'<(?:input|select)[^>]* id="([^"]+)"', page)
    labelled = set(re.findall(r'<label for="([^"]+)"', page))
    assert controls and set(controls) <= labelled


def test_openapi_is_kvschemas_models_and_no_cdn_docs(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in ("FitReport", "FitRequest", "Sweep", "CachePlan", "CompatibilityReport", "GPU"):
        assert name in schemas, name
    assert {"/api/fit", "/api/plan", "/api/validate", "/api/compat", "/api/fingerprint"} <= set(
        document["paths"]
    )
    for path in ("/docs", "/redoc"):
        error(client.get(path), 404, "not_found")


# -- catalogue endpoints -------------------------------------------------------------------------


def test_gpus_are_the_catalogue(client: TestClient) -> None:
    answer = client.get("/api/gpus").json()
    assert answer == [gpu.model_dump(mode="json") for gpu in catalogue()]


def test_bundled_models_are_listed_and_given(client: TestClient) -> None:
    listed = client.get("/api/models").json()
    assert [m["name"] for m in listed] == list(BUNDLED)
    llama = next(m for m in listed if m["name"] == "llama3-8b")
    assert (llama["model_type"], llama["max_model_len"]) == ("llama", 131072)
    for name in BUNDLED:
        assert client.get(f"/api/models/{name}").json() == bundled_config(name)
    error(client.get("/api/models/..%2F..%2Fsecrets"), 404, "not_found")
    report = error(client.get("/api/models/nope"), 404, "unknown_model")
    assert "llama3-8b" in report.message


def test_schemas(client: TestClient) -> None:
    published = json_schemas()
    assert client.get("/api/schemas").json() == list(published)
    for name, body in published.items():
        assert client.get(f"/api/schemas/{name}").json() == body
    error(client.get("/api/schemas/nope"), 404, "unknown_schema")


# -- validate: the CLI's errors and lines -------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted((EXAMPLES / "invalid").iterdir()) + sorted((EXAMPLES / "valid").iterdir()),
    ids=lambda p: p.name,
)
def test_validate_says_what_the_cli_prints(client: TestClient, path: Path) -> None:
    name = str(path.relative_to(ROOT))
    fmt = {".json": "json", ".toml": "toml"}.get(path.suffix, "yaml")
    body = {"text": path.read_text(), "format": fmt, "name": name}
    answer = client.post("/api/validate", json=body).json()
    with contextlib.chdir(ROOT):
        code, out, _ = cli("validate", "-o", "json", name)
        _, text, _ = cli("validate", "-q", name)
    (entry,) = json.loads(out)["files"]
    assert answer["ok"] == entry["ok"] and answer["exit_code"] == code
    assert answer["kinds"] == entry.get("kinds", [])
    assert [e["type"] for e in answer["errors"]] == [e["type"] for e in entry["errors"]]
    assert [(e["path"], e["line"]) for e in answer["errors"]] == [
        (e["path"], e["line"]) for e in entry["errors"]
    ]
    assert answer["lines"] == text.splitlines()


def test_validate_a_document_sent_as_json(client: TestClient) -> None:
    spec = {"kind": "full_attention", "page_size": 16, "num_kv_heads": 8, "head_size": 128}
    answer = client.post("/api/validate", json={"document": {**spec, "dtype": "bf16"}}).json()
    assert answer["ok"] and answer["kinds"] == ["spec"] and answer["lines"] == []
    answer = client.post("/api/validate", json={"document": {**spec, "dtype": "f12"}}).json()
    assert answer["exit_code"] == 1 and answer["errors"][0]["type"] == "dtype"
    assert answer["lines"][0].startswith("document: $.dtype: ")
    error(client.post("/api/validate", json={}), 422, "invalid_argument")
    error(client.post("/api/validate", json={"text": "a", "document": 1}), 422, "invalid_argument")


def test_validate_text_keeps_the_cli_limits(client: TestClient) -> None:
    deep = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 80))
    answer = client.post("/api/validate", json={"text": "[" * 70 + "]" * 70}).json()
    assert answer["exit_code"] == 2 and answer["errors"][0]["type"] == "load"
    assert "nesting deeper than 64" in answer["errors"][0]["message"]
    bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True)
    )
    answer = client.post("/api/validate", json={"text": bomb, "format": "yaml"}).json()
    assert answer["exit_code"] == 2 and "values" in answer["errors"][0]["message"]
    assert client.post("/api/validate", json={"text": deep}).json()["exit_code"] in (1, 2)


# -- fit: kvschema fit -o json, and the command that reproduces it -----------------------------

FITS: list[dict[str, Any]] = [
    {"model": "llama3-8b", "gpu": "H100"},
    {"model": "llama3-8b", "gpu": "L4", "max_model_len": "auto"},
    {"model": "qwen3-8b", "gpu": "A100-80GB", "gpus": 2, "max_model_len": 32000},
    {"model": "gpt-oss-20b", "gpu": "H200", "kv_cache_dtype": "fp8", "gpu_memory_utilization": 0.8},
    {"model": "qwen3-next-80b", "gpu": "H100", "gpus": 4, "max_num_seqs": 128},
    {"model": "deepseek-v3", "gpu": "H200", "gpus": 8, "max_model_len": "auto"},
    {"model": "mixtral-8x7b", "gpu": "H100", "gpus": 4, "pipeline_parallel_size": 2},
    {"model": "gemma2-9b", "gpu": "L40S", "enforce_eager": True, "max_num_batched_tokens": 4096},
    {"model": "llama3-70b", "gpu": "H100", "gpus": 2},
    {"model": "qwen3.5-0.8b", "gpu": "L4"},
    {"model": "mistral-7b-v0.1", "kv_cache_memory_bytes": 8 << 30, "max_num_batched_tokens": 8192},
    {"model": "llama3-8b", "gpu_memory": 24 << 30, "weights_bytes": 16_060_522_496},
]


def _cli_json(command: str, folder: Path) -> dict[str, Any]:
    args = shlex.split(command)[2:]
    config = args.index("--hf-config") + 1
    args[config] = str(folder / args[config])
    _, out, err = cli("fit", *args, "-o", "json")
    assert out, err
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.mark.parametrize("request_body", FITS, ids=lambda b: "-".join(map(str, b.values())))
def test_fit_is_kvschema_fit_and_its_command_reproduces_it(
    client: TestClient, tmp_path: Path, request_body: dict[str, Any]
) -> None:
    response = client.post("/api/fit", json={**request_body, "chart": True})
    assert response.status_code == 200, response.text
    answer = FitResponse.model_validate_json(response.text)
    name = request_body["model"]
    (tmp_path / f"{name}.json").write_text(json.dumps(bundled_config(name)))
    assert answer.command is not None and answer.report is not None
    assert _cli_json(answer.command, tmp_path) == answer.report.model_dump(mode="json")
    # the plan at the point budget is plan_cache's, with the blocks the fit counts
    if answer.report.plan.fits and answer.plan is not None:
        assert answer.plan.num_pages == answer.report.plan.num_pages
        assert answer.plan.kv_cache_size_tokens == answer.report.plan.kv_cache_size_tokens
        assert answer.chart_svg is not None and answer.chart_svg.startswith("<svg")
        assert answer.groups == answer.plan.groups
    else:
        assert answer.plan is None and answer.chart_svg is None and answer.groups


def test_every_bundled_model_fits_somewhere_and_plans_the_same_blocks(client: TestClient) -> None:
    for name in BUNDLED:
        body = {"model": name, "gpu": "H200", "gpus": 8, "max_model_len": "auto"}
        answer = client.post("/api/fit", json=body).json()
        assert answer["report"]["verdict"] == "fits", (name, answer["report"]["reason"])
        assert answer["plan"]["config"]["num_pages"] == answer["report"]["plan"]["num_pages"], name


def test_a_dropped_config_and_its_index(client: TestClient, tmp_path: Path) -> None:
    config = bundled_config("qwen2.5-7b")
    body = {"hf_config": config, "config_name": "C:\\models\\qwen/config.json", "gpu": "L40S"}
    answer = client.post("/api/fit", json=body).json()
    assert answer["command"].startswith("kvschema fit --hf-config config.json --gpu L40S")
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert _cli_json(answer["command"], tmp_path) == answer["report"]
    index = {"metadata": {"total_size": 15_231_233_024}, "weight_map": {"x": "a.safetensors"}}
    answer = client.post("/api/fit", json={**body, "safetensors_index": index}).json()
    assert answer["report"]["weights"]["provenance"] == "index"
    assert answer["report"]["weights"]["total_bytes"] == 15_231_233_024
    folder = tmp_path / "MODEL_DIR"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "MODEL_DIR" in answer["command_note"]
    assert _cli_json(answer["command"], tmp_path) == answer["report"]
    bad = {**body, "safetensors_index": {"metadata": {"total_size": -1}}}
    report = error(client.post("/api/fit", json=bad), 422, "checkpoint")
    assert "total_size" in report.message


def test_sweep_and_solve_are_the_clis(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "qwen3-8b.json").write_text(json.dumps(bundled_config("qwen3-8b")))
    sweep = {"gpus": ["H100", "L40S", "A10G"], "kv_cache_dtypes": ["auto", "fp8"]}
    answer = client.post(
        "/api/fit", json={"model": "qwen3-8b", "max_model_len": 16384, "sweep": sweep}
    ).json()
    assert answer["report"] is None and answer["command"] is None
    assert "--sweep --gpu H100,L40S,A10G" in answer["sweep_command"]
    assert _cli_json(answer["sweep_command"], tmp_path) == answer["sweep"]
    # a sweep of lengths replaces the request's one
    lengths = {"gpus": ["H100", "L4"], "max_model_lens": [8192, "auto"]}
    answer = client.post(
        "/api/fit", json={"model": "qwen3-8b", "max_model_len": 16384, "sweep": lengths}
    ).json()
    assert answer["sweep_command"].endswith("--max-model-len 8192,auto")
    assert {row["asked_max_model_len"] for row in answer["sweep"]["rows"]} == {8192, "auto"}
    assert len(answer["sweep"]["rows"]) == 2 * 4 * 2
    assert _cli_json(answer["sweep_command"], tmp_path) == answer["sweep"]
    for solve in ("max-num-seqs", "gpu-memory-utilization", "gpus"):
        body: dict[str, Any] = {"model": "qwen3-8b", "gpu": "L40S", "solve": solve}
        if solve != "max-num-seqs":
            body["concurrency"] = 4
        answer = client.post("/api/fit", json=body).json()
        assert _cli_json(answer["command"], tmp_path) == answer["solution"], solve
    error(
        client.post("/api/fit", json={"model": "qwen3-8b", "gpu": "L4", "solve": "gpus"}),
        422,
        "invalid_argument",
    )
    big = {"model": "qwen3-8b", "sweep": {"tensor_parallel_sizes": list(range(1, 17))}}
    big["sweep"]["kv_cache_dtypes"] = ["auto", "fp8", "bfloat16"]
    assert (
        "at most 512" in error(client.post("/api/fit", json=big), 422, "invalid_argument").message
    )
    big = {"model": "qwen3-8b", "sweep": {"max_model_lens": [1024 * n for n in range(1, 11)]}}
    message = error(client.post("/api/fit", json=big), 422, "invalid_argument").message
    assert "a sweep of 520 choices" in message


def test_fit_refusals_name_the_rule(client: TestClient) -> None:
    report = error(
        client.post("/api/fit", json={"model": "llama3-8b", "gpu": "H1000"}), 422, "unknown_gpu"
    )
    assert report.details == {"gpu": "H1000"}
    error(client.post("/api/fit", json={"model": "llama3-8b"}), 422, "invalid_argument")
    error(client.post("/api/fit", json={"gpu": "H100"}), 422, "invalid_argument")
    body = {"model": "llama3-8b", "hf_config": {}, "gpu": "H100"}
    error(client.post("/api/fit", json=body), 422, "invalid_argument")
    body = {"hf_config": {"model_type": "llama"}, "gpu": "H100"}
    assert client.post("/api/fit", json=body).status_code == 422
    body = {"model": "llama3-8b", "gpu": "H100", "gpu_memory_utilization": 1.5}
    assert (
        "gpu_memory_utilization"
        in error(client.post("/api/fit", json=body), 422, "invalid_argument").message
    )
    body = {"model": "llama3-8b", "gpu": "H100", "gpus": 3}
    assert client.post("/api/fit", json=body).status_code == 422
    # does not fit: an answer, not an error
    body = {"model": "llama3-70b", "gpu": "L4"}
    assert client.post("/api/fit", json=body).json()["report"]["verdict"] == "does_not_fit"


def test_requests_are_strict(client: TestClient) -> None:
    for body, kind, where in (
        ({"model": "llama3-8b", "gpus": "2"}, "int_type", "$.gpus"),
        ({"model": "llama3-8b", "gpus": 0}, "greater_than_equal", "$.gpus"),
        ({"model": "llama3-8b", "gpus": 2.0}, "int_type", "$.gpus"),
        ({"model": "llama3-8b", "enforce_eager": 1}, "bool_type", "$.enforce_eager"),
        ({"model": "llama3-8b", "gpu_mem": 1}, "extra_forbidden", "$.gpu_mem"),
        ({"model": "llama3-8b", "max_model_len": 2**60}, "less_than_equal", "$.max_model_len"),
    ):
        report = error(client.post("/api/fit", json=body), 422, "request_validation")
        assert [(p.type, p.path) for p in report.problems][:1] == [(kind, where)], report


# -- plan, compat, fingerprint --------------------------------------------------------------------


def test_plan_is_kvschema_plan(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "gemma2-9b.json").write_text(json.dumps(bundled_config("gemma2-9b")))
    body = {
        "model": "gemma2-9b",
        "memory": 20 << 30,
        "max_model_len": 8192,
        "tensor_parallel_size": 2,
    }
    answer = client.post("/api/plan", json=body).json()
    _, out, _ = cli(
        "plan",
        "--hf-config",
        str(tmp_path / "gemma2-9b.json"),
        "--memory",
        str(20 << 30),
        "--max-model-len",
        "8192",
        "--tp",
        "2",
        "-o",
        "json",
    )
    assert answer == json.loads(out)
    layers = yaml.safe_load((EXAMPLES / "plan" / "jamba-layers.yaml").read_text())
    body = {"layers": layers, "memory": [8 << 30], "max_model_len": 4096}
    answer = client.post("/api/plan", json=body).json()
    _, out, _ = cli(
        "plan",
        "--layers",
        str(EXAMPLES / "plan" / "jamba-layers.yaml"),
        "--memory",
        str(8 << 30),
        "--max-model-len",
        "4096",
        "-o",
        "json",
    )
    assert answer == json.loads(out)
    # what plan -o json writes is read back as its layout
    again = client.post(
        "/api/plan", json={"groups": answer, "memory": 8 << 30, "max_model_len": 4096}
    )
    assert again.json()["config"]["num_pages"] == answer["config"]["num_pages"]
    report = error(
        client.post("/api/plan", json={"model": "qwen3-8b", "memory": 1 << 30}),
        422,
        "insufficient_memory",
    )
    assert report.details["max_model_len_estimate"] == 7264
    error(client.post("/api/plan", json={"memory": 1 << 30}), 422, "invalid_argument")
    bad = {
        "layers": {"layer.0": {"kind": "full_attention", "page_size": 0}},
        "memory": 1,
        "max_model_len": 8,
    }
    report = error(client.post("/api/plan", json=bad), 422, "invalid_document")
    assert {p.field for p in report.problems} == {"layers"}


def test_compat_is_kvschema_diff(client: TestClient) -> None:
    folder = EXAMPLES / "exchange"
    for a, b, tp_a, tp_b in (
        ("prefill-tp2.yaml", "decode-tp4.yaml", 2, 4),
        ("prefill-tp2.yaml", "decode-wrong-window.yaml", 2, 4),
    ):
        body = {
            "a": yaml.safe_load((folder / a).read_text()),
            "b": yaml.safe_load((folder / b).read_text()),
            "tp_a": tp_a,
            "tp_b": tp_b,
        }
        answer = client.post("/api/compat", json=body).json()
        _, out, _ = cli(
            "diff",
            str(folder / a),
            str(folder / b),
            "--tp-a",
            str(tp_a),
            "--tp-b",
            str(tp_b),
            "-o",
            "json",
        )
        assert answer == json.loads(out)
    body = {"a": {"kv_cache_groups": []}, "b": {"num_pages": 1}}
    report = error(client.post("/api/compat", json=body), 422, "invalid_document")
    assert report.problems[0].field == "a"


def test_fingerprint(client: TestClient) -> None:
    document = yaml.safe_load((EXAMPLES / "exchange" / "prefill-tp2.yaml").read_text())
    answer = client.post("/api/fingerprint", json={"document": document}).json()
    config = read_config(document)
    assert answer["kind"] == "config"
    assert answer["fingerprint"] == fingerprint(config)
    assert answer["layout_fingerprint"] == layout_fingerprint(config)
    spec = {"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32"}
    answer = client.post("/api/fingerprint", json={"document": spec}).json()
    assert answer["layout_fingerprint"] is None and answer["canonical_json"].startswith('{"dtype"')
    error(client.post("/api/fingerprint", json={"document": [1]}), 422, "invalid_document")


# -- limits, content types, errors ----------------------------------------------------------------


def test_bodies_over_the_cap_are_refused_unread(client: TestClient) -> None:
    big = b'{"text": "' + b"a" * (1 << 20) + b'"}'
    report = error(client.post("/api/validate", content=big, headers=JSON), 413, "body_too_large")
    assert "1,048,576" in report.message

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused as soon as it passes the cap
        yield b'{"text": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    error(client.post("/api/validate", content=chunks(), headers=JSON), 413, "body_too_large")
    small = b'{"text": "' + b"a" * 1000 + b'"}'
    assert client.post("/api/validate", content=small, headers=JSON).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/jsonp",
    ],
)
def test_only_json_is_read(client: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/api/fit", content=b'{"model": "llama3-8b"}', headers=headers)
    error(response, 415, "unsupported_media_type")


def test_json_bodies_keep_the_loaders_rules(client: TestClient) -> None:
    report = error(client.post("/api/fit", content=b"{", headers=JSON), 400, "load")
    assert report.problems[0].line == 1
    error(client.post("/api/fit", content=b"[" * 65 + b"]" * 65, headers=JSON), 400, "load")
    report = error(
        client.post("/api/fit", content=b'{"gpu": "A", "gpu": "B"}', headers=JSON),
        400,
        "duplicate_key",
    )
    assert report.problems[0].path == "$.gpu"
    error(client.post("/api/fit", content=b"\xff\xfe", headers=JSON), 400, "load")
    error(client.post("/api/fit", content=b"[]", headers=JSON), 422, "request_validation")
    response = client.post(
        "/api/fit",
        content=b'{"model": "llama3-8b", "gpu": "H100"}',
        headers={"content-type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 200


def test_unknown_paths_and_methods_are_json(client: TestClient) -> None:
    error(client.get("/etc/passwd"), 404, "not_found")
    error(client.get("/api/fit"), 405, "method_not_allowed")
    error(client.delete("/api/fit", headers=JSON), 405, "method_not_allowed")


def test_a_bug_is_a_500_without_a_traceback(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "run_fit", broken)
    report = error(client.post("/api/fit", json={"model": "llama3-8b"}), 500, "internal_error")
    assert "secret" not in report.message and "RuntimeError" in report.message


def test_loopback_servers_refuse_other_host_names() -> None:
    app = create_app(allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1:8000") as local:
        assert local.get("/api/schemas").status_code == 200
        assert local.get("/", headers={"host": "localhost:8000"}).status_code == 200
        assert local.get("/", headers={"host": "[::1]:8000"}).status_code == 200
        error(local.get("/", headers={"host": "attacker.example"}), 400, "untrusted_host")
        error(local.get("/", headers={"host": "127.0.0.1.attacker.example"}), 400, "untrusted_host")


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_CONFIG_KEYS = st.sampled_from(
    [
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "vocab_size",
        "max_position_embeddings",
        "torch_dtype",
        "sliding_window",
        "layer_types",
        "intermediate_size",
        "quantization_config",
        "text_config",
        "rope_scaling",
        "num_local_experts",
        "num_experts",
        "kv_lora_rank",
        "linear_num_key_heads",
        "full_attention_interval",
        "partial_rotary_factor",
        "tie_word_embeddings",
    ]
)


@settings(
    max_examples=int(os.environ.get("KVSCHEMA_SERVE_FUZZ", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(list(BUNDLED)),
    changes=st.dictionaries(_CONFIG_KEYS, _JSON, max_size=4),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "gpus",
                "max_model_len",
                "kv_cache_dtype",
                "block_size",
                "max_num_seqs",
                "gpu_memory_utilization",
                "pipeline_parallel_size",
                "weights_bytes",
            ]
        ),
        _JSON,
        max_size=3,
    ),
)
def test_no_input_gets_a_traceback(
    client: TestClient, name: str, changes: dict[str, Any], fields: dict[str, Any]
) -> None:
    """Whatever the config and settings, the answer is a fit or an ErrorReport: never a 500."""
    body = {"hf_config": {**bundled_config(name), **changes}, "gpu": "H100", **fields}
    response = client.post("/api/fit", json=body)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        ErrorReport.model_validate_json(response.text)


def test_a_changed_input_replans_in_well_under_50_ms(client: TestClient) -> None:
    """The page re-plans on every change: the server's time (Server-Timing), with the chart and
    the sweep of the whole catalogue, a new length each time (nothing answered twice)."""
    client.post("/api/fit", json={"model": "qwen3-8b", "gpu": "H100", "sweep": {}})  # warm up
    times = []
    for length in range(8000, 8040, 2):
        body = {
            "model": "qwen3-8b",
            "gpu": "H100",
            "max_model_len": length,
            "chart": True,
            "sweep": {},
        }
        response = client.post("/api/fit", json=body)
        assert response.status_code == 200
        times.append(float(response.headers["server-timing"].split("dur=")[1]))
    assert statistics.median(times) < 50, times


# -- the command ---------------------------------------------------------------------------------


def test_serve_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)
    code, _, err = cli("serve")
    assert code == 2 and 'pip install ".[serve]"' in err and "uvicorn" in err


def test_serve_binds_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    import kvschema.serve.runner as runner

    calls: list[tuple[str, int, bool]] = []
    monkeypatch.setattr(
        runner, "serve", lambda host, port, allow_remote: calls.append((host, port, allow_remote))
    )
    assert cli("serve", "--port", "8123")[0] == 0
    code, _, err = cli("serve", "--host", "0.0.0.0")
    assert code == 2 and "--allow-remote" in err
    assert cli("serve", "--host", "0.0.0.0", "--allow-remote")[0] == 0
    assert cli("serve", "--host", "::1")[0] == 0
    assert calls == [("127.0.0.1", 8123, False), ("0.0.0.0", 8000, True), ("::1", 8000, False)]
    with pytest.raises(SystemExit):
        cli("serve", "--port", "70000")


def test_the_runner_refuses_too() -> None:
    from kvschema.errors import InvalidArgumentError
    from kvschema.serve.runner import serve

    with pytest.raises(InvalidArgumentError, match="allow-remote"):
        serve("192.0.2.1", 8000)
    with pytest.raises(InvalidArgumentError, match="port"):
        serve("127.0.0.1", 0)
