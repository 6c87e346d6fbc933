"""The command line: exit codes, one line per error, JSON reports, stdin, limits, schema export."""

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kvschema.cli import main
from kvschema.cli.commands import _Style

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
VALID = sorted((EXAMPLES / "valid").iterdir())
INVALID = {
    "all-layers-not-alone.yaml": "all_layers_not_alone",
    "duplicate-key.json": "duplicate_key",
    "duplicate-key.yaml": "duplicate_key",
    "ds-mla-not-mla.yaml": "cache_dtype_str_not_mla",
    "empty.yaml": "empty_document",
    "infinity-pages.json": "int_type",
    "kv-sharing-target-elsewhere.yaml": "kv_sharing_target_elsewhere",
    "layer-in-two-groups.yaml": "layer_in_two_groups",
    "newer-schema-version.json": "schema_version_unsupported",
    "padded-too-small.yaml": "page_size_padded_too_small",
    "sliding-mla.yaml": "mla_sliding_window",
    "string-heads.yaml": "int_type",
    "sub-byte-dtype.yaml": "dtype",
    "unknown-dtype.yaml": "dtype",
    "unknown-field.yaml": "extra_forbidden",
    "unrecognised.yaml": "unrecognised_document",
    "version-1-new-field.yaml": "field_newer_than_schema_version",
    "window-and-chunk.yaml": "window_and_chunk",
    "wrong-page-bytes.json": "derived_mismatch",
    "yes-is-not-true.yaml": "bool_type",
    "zero-page-size.yaml": "greater_than_equal",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_invalid_example_is_listed() -> None:
    assert sorted(p.name for p in (EXAMPLES / "invalid").iterdir()) == sorted(INVALID)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_examples(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, err = run(capsys, "validate", "-v", str(path))
    assert code == 0
    assert out.startswith(f"{path}: ok (")
    assert err == "ok: 1 file(s) valid\n"


@pytest.mark.parametrize(("name", "error_type"), sorted(INVALID.items()))
def test_invalid_examples(capsys: pytest.CaptureFixture[str], name: str, error_type: str) -> None:
    path = str(EXAMPLES / "invalid" / name)
    code, out, _ = run(capsys, "validate", "-q", path)
    assert code == 1
    lines = out.splitlines()
    assert lines
    assert all(line.startswith(path) for line in lines)
    assert any(line.endswith(f"[{error_type}]") for line in lines)


def test_line_format_names_file_line_column_path_rule(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "invalid" / "zero-page-size.yaml")
    _, out, _ = run(capsys, "validate", "-q", path)
    assert out == (
        f"{path}:6:7: $.kv_cache_groups[0].kv_cache_spec.page_size: "
        "Input should be greater than or equal to 1, got 0 [greater_than_equal]\n"
    )


def test_every_file_checked_every_error_reported(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(EXAMPLES / "invalid" / n) for n in ("unknown-field.yaml", "sliding-mla.yaml")]
    code, out, err = run(capsys, "validate", *files, str(VALID[0]))
    assert code == 1
    assert len(out.splitlines()) == 3
    assert err == "2 of 3 file(s) failed\n"


def test_section_by_json_pointer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    deploy = str(EXAMPLES / "sections" / "llama3-deploy.yaml")
    assert run(capsys, "validate", "--path", "/serving/kv_cache", deploy)[0] == 0
    code, out, _ = run(
        capsys, "validate", "--path", "/serving/kv_cache", deploy.replace("llama3-deploy", "none")
    )
    assert code == 2
    code, out, _ = run(capsys, "validate", "-q", "--path", "/serving/cache", deploy)
    assert code == 1
    assert "section /serving/cache not found: $.serving has no 'cache' [path_not_found]" in out
    broken = tmp_path / "deploy.yaml"
    broken.write_text(Path(deploy).read_text().replace("num_kv_heads: 8", "num_kv_heads: -8"))
    code, out, _ = run(capsys, "validate", "-q", "--path", "/serving/kv_cache", str(broken))
    assert code == 1
    # paths and lines stay those of the whole file
    assert out.startswith(
        f"{broken}:13:11: $.serving.kv_cache.kv_cache_groups[0].kv_cache_spec.num_kv_heads:"
    )


def test_kind_forces_the_document_type(capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(EXAMPLES / "valid" / "spec-mla.yaml")
    assert run(capsys, "validate", "--kind", "spec", spec)[0] == 0
    code, out, _ = run(capsys, "validate", "-q", "--kind", "config", spec)
    assert code == 1
    assert "[missing]" in out
    assert "[extra_forbidden]" in out


def test_multi_document_errors_name_the_document(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stream = tmp_path / "two.yaml"
    stream.write_text(
        "kind: mamba\npage_size: 1\nshapes: [[4]]\ndtype: fp32\n---\nkind: mamba\npage_size: 0\nshapes: [[4]]\ndtype: fp32\n"
    )
    code, out, _ = run(capsys, "validate", "-q", str(stream))
    assert code == 1
    assert (
        out
        == f"{stream}:7:1: document 1: $.page_size: Input should be greater than or equal to 1, got 0 [greater_than_equal]\n"
    )


def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    bad = str(EXAMPLES / "invalid" / "sliding-mla.yaml")
    code, out, _ = run(capsys, "validate", "-o", "json", bad, str(VALID[0]))
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    first, second = report["files"]
    assert first["ok"] is False
    assert second["ok"] is True
    (error,) = first["errors"]
    assert error == {
        "document": None,
        "path": "$.use_mla",
        "message": "a sliding-window spec cannot use MLA (use_mla=True); MLA layers are full attention",
        "type": "mla_sliding_window",
        "line": 7,
        "column": 1,
    }


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    text = (EXAMPLES / "valid" / "jamba-mamba-hybrid.json").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
    assert run(capsys, "validate", "-")[0] == 0
    monkeypatch.setattr(
        sys,
        "stdin",
        io.TextIOWrapper(
            io.BytesIO(b"kind: mamba\npage_size: 1\nshapes: [[4]]\ndtype: fp32\nx: yes\n")
        ),
    )
    code, out, _ = run(capsys, "validate", "-q", "-")
    assert code == 1
    assert out.startswith("-:5:1: $.x: Extra inputs are not permitted")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["validate", "/no/such/file.yaml"], "/no/such/file.yaml: no such file [load]"),
        (["validate", "README.md"], "unknown extension '.md'"),
        (["validate", "--max-bytes", "10", "examples/valid/spec-mla.yaml"], "larger than 10"),
        (
            ["validate", "--max-depth", "2", "examples/valid/jamba-mamba-hybrid.json"],
            "deeper than 2",
        ),
        (["validate", "--max-values", "5", "examples/valid/spec-mla.yaml"], "more than 5 values"),
    ],
)
def test_unreadable_files_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, *argv)
    assert code == 2
    assert needle in out
    assert "Traceback" not in out


@pytest.mark.parametrize("output", ["text", "json"])
def test_workers_report_what_one_process_reports(output: str) -> None:
    # in processes of their own: this one may hold JAX's threads, and then nothing is forked
    files = [str(p) for p in [*VALID, *sorted((EXAMPLES / "invalid").iterdir())]] * 3
    files.append("/no/such/file.yaml")
    serial = _console("", "validate", "-v", "-o", output, "-j", "1", *files)
    assert serial.returncode == 2 and serial.stdout.count("ok") > len(VALID)
    for jobs in ("2", "5"):
        forked = _console("", "validate", "-v", "-o", output, "-j", jobs, *files)
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            serial.returncode,
            serial.stdout,
            serial.stderr,
        )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["validate"],
        ["validate", "--kind", "x", "a.yaml"],
        ["validate", "--max-depth", "0", "a.yaml"],
        ["validate", "--jobs", "0", "a.yaml"],
        ["nope"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    try:
        code: object = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert "usage:" in capsys.readouterr().err


def test_quiet_prints_only_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "validate", "-q", str(VALID[0])) == (0, "", "")


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert _Style(Tty())("x", "31") == "\033[31mx\033[0m"
    assert _Style(io.StringIO())("x", "31") == "x"
    monkeypatch.setenv("NO_COLOR", "1")
    assert _Style(Tty())("x", "31") == "x"


def test_schema_export_and_drift_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "schema", "--out", str(tmp_path))
    assert code == 0
    assert len(out.splitlines()) == 3
    assert run(capsys, "schema", "--check", "--out", str(tmp_path))[0] == 0
    (tmp_path / "cache-spec.schema.json").write_text("{}\n")
    code, _, err = run(capsys, "schema", "--check", "--out", str(tmp_path))
    assert code == 1
    assert f"{tmp_path / 'cache-spec.schema.json'}: differs" in err
    assert run(capsys, "schema", "--check", "--out", str(ROOT / "schemas"))[0] == 0


def test_pre_commit_hook_definition() -> None:
    import yaml

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "kvschema-validate"
    assert hook["entry"] == "kvschema validate"
    assert hook["language"] == "python"


def _console(code: str, *argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``code`` then the console script's ``run()`` with ``argv``, in a process of its own."""
    program = f"import sys\n{code}\nsys.argv = ['kvschema', *{list(argv)!r}]\n"
    program += "from kvschema.cli import run\nrun()\n"
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, **kwargs
    )


def test_console_script_exit_code_output_and_atexit_handlers() -> None:
    code = "import atexit\natexit.register(lambda: print('atexit ran', file=sys.stderr))"
    done = _console(code, "validate", "-v", *[str(p) for p in VALID])
    assert done.returncode == 0
    assert done.stdout.count(": ok (") == len(VALID)  # flushed before the process ended
    assert done.stderr.endswith("atexit ran\n")
    bad = _console("", "validate", "-q", "examples/invalid/zero-page-size.yaml")
    assert bad.returncode == 1 and "[greater_than_equal]" in bad.stdout


def test_console_script_reader_closing_the_pipe_early() -> None:
    # a megabyte of output: more than a pipe holds, so the writer meets the closed pipe
    child = (
        "import sys, kvschema.cli.app as cli\n"
        "cli.main = lambda: [print('x' * 1000) for _ in range(1000)] and 0\n"
        "cli.run()\n"
    )
    program = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE, "
        "stderr=subprocess.PIPE)\n"
        "p.stdout.readline(); p.stdout.close()\n"
        "err = p.stderr.read().decode(); print(p.wait()); print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=True
    )
    code, _, stderr = done.stdout.partition("\n")
    assert code == "141"
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_console_script_output_that_cannot_be_written() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-c", "from kvschema.cli import run; run()", "validate", "-v"]
            + [str(p) for p in VALID],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
    assert done.returncode == 2
    assert done.stderr.startswith("kvschema: cannot write the output: No space left on device")


def test_console_script_interrupted() -> None:
    child = "import kvschema.cli.app as cli\ndef stop():\n    raise KeyboardInterrupt\ncli.main = stop\ncli.run()\n"
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 130
    assert done.stderr == "kvschema: interrupted\n"
