"""Hostile input, round two (issue 17): forged output, unbounded work, wrong verdicts, streams.

One section per class of attack; each test pins the class, not only the example that found it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kvschema import CacheGroupsConfig, parse_spec
from kvschema.cli import main
from kvschema.cli.output import printable
from kvschema.errors import KVSchemaError
from kvschema.reading.loaders import Limits, LoadError, load_file, load_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MAMBA = "{kind: mamba, page_size: 1, shapes: [[4]], dtype: fp32}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def console(*argv: str, prelude: str = "", **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The console script in a process of its own (``prelude`` runs first)."""
    program = f"{prelude}\nfrom kvschema.cli import run\nrun()\n"
    return subprocess.run(
        [sys.executable, "-c", program, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        **kwargs,
    )


# -- output integrity ------------------------------------------------------------------------

#: Characters that move the cursor, colour the terminal, or reorder or hide text.
FORGERS = (
    [chr(c) for c in range(0x20)]
    + [chr(0x7F)]
    + [chr(c) for c in range(0x80, 0xA0)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + [chr(c) for c in range(0x200B, 0x2010)]
    + ["\u2028", "\u2029", "\ufeff", "\u00ad", "\u061c", "\u00a0"]
)


def _raw(text: str) -> list[str]:
    """The forging characters in ``text`` (newlines split lines, so they are not counted)."""
    return [c for c in text if c in FORGERS and c != "\n"]


@pytest.mark.parametrize("char", FORGERS, ids=lambda c: f"U+{ord(c):04X}")
def test_printable_escapes_every_forging_character(char: str) -> None:
    shown = printable(f"layer{char}.0")
    assert char not in shown
    assert shown.isascii() and shown.isprintable()
    assert f"\\x{ord(char):02x}" in shown or f"\\u{ord(char):04x}" in shown or "\\" in shown


@given(st.text(max_size=40))
def test_printable_is_printable_and_tells_texts_apart(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable()
    # a text without backslashes is told apart from every other: escapes decode back to it
    if "\\" not in text:
        decoded = shown.encode("ascii", "backslashreplace").decode("unicode_escape")
        assert decoded == text


def _hostile_names_config(tmp_path: Path) -> Path:
    forged = "x.yaml: ok\n\x1b[32mok: 1 file(s) valid\x1b[0m\u202e\u2066"
    path = tmp_path / "names.yaml"
    path.write_text(
        "kv_cache_groups:\n"
        f"  - kv_cache_spec: {MAMBA}\n"
        f"    layer_names: [{json.dumps(forged)}, a]\n"
        f"  - kv_cache_spec: {MAMBA}\n"
        f"    layer_names: [{json.dumps(forged)}]\n"
        "num_pages: 3\n"
        f"{json.dumps(forged)}: 1\n",
        encoding="utf-8",
    )
    return path


def test_no_input_forges_a_line_of_validate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _hostile_names_config(tmp_path)
    code, out, err = run(capsys, "validate", str(path))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2  # the layer in two groups and the extra key, one line each
    assert all(line.startswith(f"{path}:") for line in lines)
    assert not _raw(out + err)
    assert "x.yaml: ok\\n\\x1b[32mok" in out and "\\u202e\\u2066" in out
    assert err == "1 of 1 file(s) failed\n"


def test_no_input_forges_a_line_of_diff_or_of_a_file_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a = tmp_path / "a\nok: all fine\x1b[8m.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(
        f'kv_cache_groups:\n  - kv_cache_spec: {MAMBA}\n    layer_names: ["m\\n\\u202ex"]\n'
        "num_pages: 3\n"
    )
    b.write_text(
        f"kv_cache_groups:\n  - kv_cache_spec: {MAMBA}\n    layer_names: [m]\nnum_pages: 3\n"
    )
    code, out, err = run(capsys, "diff", str(a), str(b), "--format", "yaml")
    assert code == 1
    assert not _raw(out + err)
    assert "m\\n\\u202ex is in a only" in out
    assert out.splitlines()[-1].startswith(f"{tmp_path}/a\\nok: all fine\\x1b[8m.yaml -> ")
    code, out, err = run(capsys, "validate", "-v", "--format", "yaml", str(a))
    assert code == 0 and not _raw(out + err) and len(out.splitlines()) == 1


def test_usage_errors_escape_the_arguments_they_quote() -> None:
    done = console("validate", "x.yaml", "--\x1b[2Jbogus\u202e")
    assert done.returncode == 2
    assert not _raw(done.stderr) and "\\x1b[2Jbogus\\u202e" in done.stderr


def test_model_type_is_escaped_in_the_layers_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = {
        "model_type": "llama\n\x1b[2J",
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "hidden_size": 1024,
        "torch_dtype": "bfloat16",
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    _code, out, err = run(capsys, "layers", "--hf-config", str(path))
    assert not _raw(out + err)
    assert "llama\\n\\x1b[2J" in out + err


#: Names that look alike but differ: fullwidth digit, decomposed accent, zero-width space,
#: no-break space, a ligature.
LOOK_ALIKE = [
    ("layer.1", "layer.\uff11"),
    ("caf\u00e9", "cafe\u0301"),
    ("layer.1", "layer.\u200b1"),
    ("layer 1", "layer\u00a01"),
    ("fine", "\ufb01ne"),
]


@pytest.mark.parametrize(("plain", "look_alike"), LOOK_ALIKE)
def test_look_alike_layer_names_are_shown_apart(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, plain: str, look_alike: str
) -> None:
    # the decision (docs/cli.md, "Output that input cannot forge"): such names are valid,
    # and text output shows them apart
    assert printable(plain) != printable(look_alike)
    assert unicodedata.normalize("NFKC", printable(look_alike)) == printable(look_alike)
    path = tmp_path / "two.yaml"
    path.write_text(
        "kv_cache_groups:\n"
        f"  - kv_cache_spec: {MAMBA}\n    layer_names: [{json.dumps(plain)}, "
        f"{json.dumps(look_alike)}]\n"
        f"  - kv_cache_spec: {MAMBA}\n    layer_names: [{json.dumps(look_alike)}]\n"
        "num_pages: 3\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "validate", "-q", str(path))
    assert code == 1  # the look-alike is in two groups; the plain name is another layer
    assert f"layer {printable(look_alike)} is in group 0 and group 1" in out


def test_error_lines_have_a_bounded_length(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    long = "k" * 200_000
    documents = {
        "key.yaml": f"kind: mamba\n{long}: 1\n",
        "keys.yaml": "".join(f"{long}{i}: 1\n" for i in range(10)),
        "value.yaml": f"kind: {long}\n",
        "pointer.yaml": "a: 1\n",
        "tag.yaml": f"a: !{long} 1\n",
        "alias.yaml": f"a: *{long}\n",
        "dtype.json": json.dumps(
            {**json.loads('{"kind": "mamba", "page_size": 1}'), "shapes": [[4]], "dtype": long}
        ),
    }
    for name, text in documents.items():
        (tmp_path / name).write_text(text)
    paths = [str(tmp_path / name) for name in documents]
    code, out, _ = run(capsys, "validate", "--path", f"/{long}", paths[3])
    assert code == 1 and max(map(len, out.splitlines())) < 2_000
    code, out, _err = run(capsys, "validate", *paths)
    assert code == 2
    lines = out.splitlines()
    assert len(lines) >= len(documents)
    assert max(map(len, lines)) < 2_000
    assert "more characters]" in out


def test_bounded_lines_keep_the_whole_message_in_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    long = "v" * 5_000
    path = tmp_path / "long.yaml"
    path.write_text(f"kind: mamba\npage_size: 1\nshapes: [[4]]\ndtype: fp32\nx: {long}\n")
    code, out, _ = run(capsys, "validate", "-o", "json", str(path))
    assert code == 1
    (error,) = json.loads(out)["files"][0]["errors"]
    assert error["type"] == "extra_forbidden" and "Extra inputs" in error["message"]


# -- bounded work ----------------------------------------------------------------------------


def test_aliases_of_empty_collections_count(tmp_path: Path) -> None:
    for empty in ("[]", "{}", "''", "~"):
        text = f"e: &e {empty}\nl: [{', '.join(['*e'] * 2_000)}]\n"
        start = time.perf_counter()
        with pytest.raises(LoadError, match="more than 1000 values"):
            load_text(text, "yaml", Limits(max_values=1_000))
        assert time.perf_counter() - start < 1.0
    # the root, two keys, [], [*e, *e] and each alias: seven values
    assert load_text("e: &e []\nl: [*e, *e]\n", "yaml", Limits(max_values=7))[0].data == {
        "e": [],
        "l": [[], []],
    }
    with pytest.raises(LoadError, match="more than 6 values"):
        load_text("e: &e []\nl: [*e, *e]\n", "yaml", Limits(max_values=6))


def test_an_alias_counts_exactly_what_it_expands_to() -> None:
    text = "a: &a [1, [2, 3]]\nb: *a\n"
    # key a and its list of five values ([..], 1, [..], 2, 3), key b and the five *a stands
    # for: thirteen with the root mapping
    assert load_text(text, "yaml", Limits(max_values=13))[0].data["b"] == [1, [2, 3]]
    with pytest.raises(LoadError, match="more than 12 values"):
        load_text(text, "yaml", Limits(max_values=12))


def test_alias_nesting_counts_toward_max_depth() -> None:
    lines = ["a0: &a0 " + "[" * 30 + "1" + "]" * 30]
    lines += [f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 for i in range(1, 200)]
    with pytest.raises(LoadError, match=r"deeper than 64 levels \(alias \*a1 expanded\)") as info:
        load_text("\n".join(lines), "yaml")
    # the advice names the limit that reads the whole stream: the root and 200 x 30 levels
    assert info.value.message.endswith(
        "it nests 6001 levels: --max-depth 6001 reads it, if this is intended"
    )
    assert load_text("\n".join(lines), "yaml", Limits(max_depth=6001))
    (doc,) = load_text("\n".join(lines[:3]), "yaml", Limits(max_depth=100))
    node = doc.data["a2"]
    for _ in range(90):
        node = node[0]
    assert node == 1


def test_no_message_renders_an_alias_bomb(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = "b0: &b0 [4, 4, 4, 4, 4, 4, 4, 4]\n"
    text += "".join(f"b{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 8) + "]\n" for i in range(1, 6))
    for field in ("kind", "shapes", "dtype", "page_size", "layer_names"):
        path = tmp_path / f"{field}.yaml"
        path.write_text(f"{text}kind: mamba\n{field}: *b5\n".replace("kind: mamba\nkind", "kind"))
        code, out, _err = run(capsys, "validate", "-q", "--kind", "spec", str(path))
        assert code == 1
        assert len(out) < 20_000, field  # 8**6 values would be megabytes


def test_multi_document_streams_are_read_once(tmp_path: Path) -> None:
    text = "".join(f"---\nkind: mamba\npage_size: {i % 2}\n" for i in range(2_000))
    start = time.perf_counter()
    documents = load_text(text, "yaml")
    assert len(documents) == 2_000
    positions = [d.position(("page_size",)) for d in documents]
    elapsed = time.perf_counter() - start
    assert positions[1_999] == (3 * 1_999 + 3, 1)
    assert elapsed < 5.0  # 40 s when every document read the stream again


def test_named_pipes_and_devices_never_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    start = time.perf_counter()
    assert load_file(str(fifo)) == []  # nobody writes: empty, at once
    assert time.perf_counter() - start < 5.0

    stop = threading.Event()

    def write() -> None:  # whenever a reader has the pipe open, write a document and close
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # no reader: ENXIO
            except OSError:
                time.sleep(0.001)
                continue
            try:
                os.write(fd, b"a: 1\n")
            except OSError:  # the reader left first
                pass
            finally:
                os.close(fd)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(1_000):  # a reader that finds no writer yet reads nothing: try again
            documents = load_file(str(fifo))
            if documents:
                break
    finally:
        stop.set()
        writer.join(timeout=5)
    assert documents[0].data == {"a": 1}
    for device in ("/dev/zero", "/dev/null", "/dev/urandom"):
        if Path(device).exists():
            with pytest.raises(LoadError, match="not a regular file or a pipe: a character"):
                load_file(device, "yaml")


def test_stdin_from_an_endless_device_is_capped() -> None:
    with open("/dev/zero", "rb") as zero:
        done = console("validate", "--max-bytes", "1000", "-", stdin=zero)
    assert done.returncode == 2
    assert (
        done.stdout == "-: larger than 1000 bytes; raise --max-bytes if this is intended [load]\n"
    )


def test_every_reader_has_a_size_cap_and_refuses_devices(tmp_path: Path) -> None:
    from kvschema.exchange.schema import check_schemas, write_schemas
    from kvschema.hf import layers_from_hf_config

    with pytest.raises(KVSchemaError, match="not a regular file"):
        layers_from_hf_config("/dev/zero")
    big = tmp_path / "config.json"
    with big.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024 + 1)  # sparse: no disk used
    with pytest.raises(KVSchemaError, match="more than a config.json holds"):
        layers_from_hf_config(str(big))
    write_schemas(tmp_path / "schemas")
    first = sorted((tmp_path / "schemas").iterdir())[0]
    first.unlink()
    os.mkfifo(first)
    assert check_schemas(tmp_path / "schemas") == [first]  # read as empty: stale, no hang


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("v: 0x" + "f" * 20_000 + "\n", "yaml"),
        ("v: 0o" + "7" * 20_000 + "\n", "yaml"),
        ("v: " + "9" * 5_000 + "\n", "yaml"),
        ("v = 0x" + "f" * 20_000 + "\n", "toml"),
        ("v = 0o" + "7" * 20_000 + "\n", "toml"),
        ("v = 0b" + "1" * 20_000 + "\n", "toml"),
        ("v = " + "9" * 5_000 + "\n", "toml"),
        ("[" + "9" * 5_000 + "]", "json"),
    ],
)
def test_huge_integers_are_refused_clearly(text: str, fmt: Any) -> None:
    with pytest.raises(LoadError, match="too long|more than 4300 digits") as info:
        load_text(text, fmt)
    assert "set_int_max_str_digits" not in info.value.message
    assert len(info.value.message) < 200


def test_the_largest_integer_kept_is_refused_by_the_models_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(f"kind: mamba\npage_size: 0x{'f' * 3500}\nshapes: [[4]]\ndtype: fp32\n")
    code, out, _ = run(capsys, "validate", "-q", str(path))
    assert code == 1 and "[less_than_equal]" in out and len(out) < 2_000


@pytest.mark.parametrize(
    "text",
    ["a = " + "[" * 5_000 + "]" * 5_000, "a = " + "{b = " * 5_000 + "1" + "}" * 5_000],
)
def test_deep_toml_is_refused_without_wrong_advice(text: str) -> None:
    with pytest.raises(LoadError, match="no --max-depth reads this file"):
        load_text(text, "toml", Limits(max_depth=100_000))
    with pytest.raises(LoadError, match="no --max-depth"):
        load_text(text, "toml")


def test_depth_advice_is_given_only_where_it_helps() -> None:
    deep = "[" * 5_000 + "]" * 5_000
    for fmt in ("json", "yaml", "toml"):  # deeper than the parsers go: no limit helps
        text = f"a = {deep}" if fmt == "toml" else deep
        for limit in (64, 10_000):
            with pytest.raises(LoadError, match="no --max-depth reads") as info:
                load_text(text, fmt, Limits(max_depth=limit))  # type: ignore[arg-type]
            assert "--max-depth 5" not in info.value.message
    fair = "[" * 100 + "]" * 100
    for fmt in ("json", "yaml"):  # the advice names the limit that reads it, and it does
        with pytest.raises(LoadError, match="it nests 100 levels: --max-depth 100 reads it"):
            load_text(fair, fmt)
        assert load_text(fair, fmt, Limits(max_depth=100))
    text = "a:\n" + "".join(f"{'  ' * i}- b:\n" for i in range(1, 80)) + "  " * 80 + "- 1\n"
    with pytest.raises(LoadError) as info:  # block style, deep in a later document
        load_text("x: 1\n---\n" + text, "yaml")
    deepest = int(re.search(r"--max-depth (\d+) reads it", info.value.message).group(1))  # type: ignore[union-attr]
    assert load_text("x: 1\n---\n" + text, "yaml", Limits(max_depth=deepest))
    with pytest.raises(LoadError):
        load_text("x: 1\n---\n" + text, "yaml", Limits(max_depth=deepest - 1))


def test_the_per_config_layer_limit_holds_where_documented(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32"}
    config = {
        "num_pages": 100,
        "kv_cache_groups": [
            {"kv_cache_spec": spec, "layer_names": [f"l.{i}" for i in range(g, 120_000, 2)]}
            for g in range(2)
        ],
    }
    with pytest.raises(ValidationError, match="list 120000 layers together"):
        CacheGroupsConfig.model_validate(config)
    path = tmp_path / "many.json"
    path.write_text(json.dumps(config))
    code, out, _ = run(capsys, "validate", "-q", str(path))
    assert code == 1 and "[too_many_layers]" in out
    code, _, err = run(
        capsys, "plan", "--groups", str(path), "--memory", "800GiB", "--max-model-len", "64"
    )
    assert code == 1 and "[too_many_layers]" in err  # the same verdict, not a crash


# -- right verdicts --------------------------------------------------------------------------


def test_yaml_1_1_documents_are_refused_not_misread() -> None:
    with pytest.raises(LoadError, match=r"declares %YAML 1\.1; kvschema reads YAML 1\.2 only"):
        load_text("%YAML 1.1\n---\nflag: yes\n", "yaml")
    with pytest.raises(LoadError, match="%YAML 1.1"):
        load_text("a: 1\n---\n%YAML 1.1\n---\nb: 1\n", "yaml")  # in a later document too
    assert load_text("%YAML 1.2\n---\nflag: yes\n", "yaml")[0].data == {"flag": "yes"}


def test_keys_are_compared_as_yaml_compares_them(capsys: pytest.CaptureFixture[str]) -> None:
    (doc,) = load_text("m:\n  1: a\n  true: b\n  1.0: c\n  0: d\n  false: e\n  null: f\n", "yaml")
    assert not doc.problems
    assert sorted(map(repr, doc.data["m"])) == ["0", "1", "1.0", "False", "None", "True"]
    for twice in ("1: a\n0x1: b\n", "true: a\nTrue: b\n", "1.0: a\n1e0: b\n", "a: 1\n'a': 2\n"):
        (doc,) = load_text(twice, "yaml")
        assert [p.error_type for p in doc.problems] == ["duplicate_key"], twice
    # a section outside --path with such keys does not make the document wrong
    text = f"ports: {{1: a, true: b}}\nkv: {MAMBA}\n"
    (doc,) = load_text(text, "yaml")
    from kvschema.reading.checking import check_document

    assert check_document(doc, pointer="/kv") == ("spec", [])


def test_library_json_readers_refuse_duplicate_keys() -> None:
    from kvschema.exchange.canonical import read_config

    spec = '{"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32"}'
    config = f'{{"num_pages": 4, "num_pages": 5, "kv_cache_groups": [{{"kv_cache_spec": {spec}}}]}}'
    with pytest.raises(ValidationError) as info:
        CacheGroupsConfig.model_validate_json(config)
    assert info.value.errors()[0]["type"] == "duplicate_key"
    with pytest.raises(ValidationError, match="duplicate key 'dtype'"):
        parse_spec(spec[:-1] + ', "dtype": "fp16"}')
    with pytest.raises(KVSchemaError, match="duplicate key 'num_pages'"):
        read_config(config)
    assert (
        CacheGroupsConfig.model_validate_json(config.replace('"num_pages": 4, ', "")).num_pages == 5
    )


def test_a_layer_named_star_is_not_every_layer(capsys: pytest.CaptureFixture[str]) -> None:
    from kvschema import check_compatible

    spec = {"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32"}
    every = CacheGroupsConfig.model_validate(
        {"num_pages": 4, "kv_cache_groups": [{"kv_cache_spec": spec}]}
    )
    star = CacheGroupsConfig.model_validate(
        {"num_pages": 4, "kv_cache_groups": [{"kv_cache_spec": spec, "layer_names": ["*"]}]}
    )
    report = check_compatible(every, star)
    assert not report.compatible
    assert {(d.layer, d.a, d.b) for d in report.differences} == {
        (None, "*", None),
        ("*", None, "*"),
    }
    assert check_compatible(star, star).compatible and check_compatible(every, every).compatible


# -- exit codes and streams ------------------------------------------------------------------


def test_internal_errors_exit_3_without_a_traceback() -> None:
    prelude = (
        "import kvschema.cli.commands as commands\n"
        "def broken(args):\n    raise RuntimeError('a bug')\n"
        "commands.cmd_validate = broken"
    )
    done = console("validate", "x.yaml", prelude=prelude)
    assert done.returncode == 3
    assert done.stderr == "kvschema: internal error (RuntimeError); please report it\n"
    done = console(
        "validate", "x.yaml", prelude=prelude, env={**os.environ, "KVSCHEMA_TRACEBACK": "1"}
    )
    assert done.returncode == 3 and "Traceback" in done.stderr and "a bug" in done.stderr


def test_closed_standard_streams() -> None:
    invalid = str(EXAMPLES / "invalid" / "zero-page-size.yaml")
    valid = str(EXAMPLES / "valid" / "spec-mla.yaml")

    def closing(redirect: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """The console script started with one standard stream closed (by the shell)."""
        program = "from kvschema.cli import run\nrun()\n"
        return subprocess.run(
            ["sh", "-c", f'exec "$0" "$@" {redirect}', sys.executable, "-c", program, *argv],
            stdout=None if redirect == ">&-" else subprocess.PIPE,
            stderr=None if redirect == "2>&-" else subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    done = closing(">&-", "validate", invalid)
    assert done.returncode == 2
    assert done.stderr.startswith("kvschema: cannot write the output: standard output is closed")
    done = closing(">&-", "validate", "-q", valid)
    assert done.returncode == 0 and done.stderr == ""  # nothing to print, nothing lost
    done = closing("2>&-", "validate", invalid)
    assert done.returncode == 1 and "[greater_than_equal]" in done.stdout
    assert "1 of 1 file(s) failed" not in done.stdout  # standard error's lines are dropped
    done = closing("<&-", "validate", "-")
    assert done.returncode == 2
    assert done.stdout == "-: standard input is closed: nothing to read for '-' [load]\n"


def test_output_in_an_encoding_that_cannot_hold_the_text(tmp_path: Path) -> None:
    path = tmp_path / "caf\u00e9-\u5c64.yaml"
    path.write_text("kind: mamba\npage_size: 0\nshapes: [[4]]\ndtype: fp32\n")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = console("validate", "-v", str(path), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "caf\\u00e9-\\u5c64.yaml:2:1: $.page_size" in done.stdout
    # JSON output stays JSON: what the encoding cannot hold is a \\uXXXX escape
    layers = tmp_path / "layers.yaml"
    names = ["caf\u00e9.0", "\u5c64.1", "\U0001f600.2"]
    layers.write_text("".join(f"{name}: {MAMBA}\n" for name in names), encoding="utf-8")
    argv = ["plan", "-o", "json", "--layers", str(layers), "--memory", "1GiB"]
    done = console(*argv, "--max-model-len", "64", env=env)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["config"]["kv_cache_groups"][0]["layer_names"] == names


def test_too_many_open_files() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs resource limits")
    files = [str(p) for p in sorted((EXAMPLES / "valid").iterdir())] * 40
    # forking workers needs pipes: with room for little more than the standard streams,
    # kvschema checks everything itself
    program = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (6, 6))\n"
        "from kvschema.cli import run\nrun()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "validate", "-j", "4", *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, f"ok: {len(files)} file(s) valid\n")
    # no descriptor left at all: the files, then the lazy imports, fail with a clear message
    exhaust = (
        "import os, resource\n"
        "import kvschema.cli.commands, kvschema.reading.checking, kvschema.reading.loaders\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "held = []\n"
        "while True:\n"
        "    try:\n"
        "        held.append(os.open(os.devnull, os.O_RDONLY))\n"
        "    except OSError:\n"
        "        break\n"
    )
    done = console("validate", "-q", files[0], prelude=exhaust)
    assert done.returncode == 2
    assert "Too many open files" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lazy = exhaust.replace(  # the commands import what they use when they run
        "import kvschema.cli.commands, kvschema.reading.checking, kvschema.reading.loaders\n",
        "import kvschema.cli\n",
    )
    done = console("plan", "--layers", "x.yaml", "--memory", "1GiB", prelude=lazy)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "too many open files" in done.stderr.lower()


def test_a_pointer_that_is_no_pointer_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    valid = str(EXAMPLES / "valid" / "spec-mla.yaml")
    code, out, err = run(capsys, "validate", "--path", "kv_cache", valid)
    assert code == 2 and "is not a JSON pointer" in err
    code, out, err = run(capsys, "validate", "--path", "/nowhere", valid)
    assert code == 1 and "[path_not_found]" in out


def test_a_duplicate_key_does_not_hide_other_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name, text in {
        "d.yaml": "kind: mamba\npage_size: 0\npage_size: 0\nshapes: [[4]]\ndtype: fp32\nx: 1\n",
        "d.json": '{"kind": "mamba", "page_size": 0, "page_size": 0, "shapes": [[4]], '
        '"dtype": "fp32", "x": 1}',
    }.items():
        (tmp_path / name).write_text(text)
        code, out, _ = run(capsys, "validate", "-q", str(tmp_path / name))
        assert code == 1
        types = re.findall(r"\[(\w+)\]$", out, re.M)
        assert types == ["duplicate_key", "greater_than_equal", "extra_forbidden"], name


def test_toml_errors_carry_line_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(LoadError) as info:
        load_text("a = 1\nb = = 2\n", "toml")
    assert (info.value.fields["line"], info.value.fields["column"]) == (2, 5)
    with pytest.raises(LoadError) as info:
        load_text("a = 1\na = 2\n", "toml")
    assert info.value.fields["line"] == 2
    text = (EXAMPLES / "valid" / "llama4-chunked.toml").read_text()
    path = tmp_path / "bad.toml"
    path.write_text(
        text.replace("num_kv_heads = 8", "num_kv_heads = 0", 2).replace(
            'kind = "full_attention"', 'kind = "full_attention"\nwindow = 3'
        )
    )
    code, out, _ = run(capsys, "validate", "-q", str(path))
    assert code == 1
    assert out.splitlines() == [
        f"{path}:10:1: $.kv_cache_groups[0].kv_cache_spec.num_kv_heads: Input should be greater "
        "than or equal to 1, got 0 [greater_than_equal]",
        f"{path}:21:1: $.kv_cache_groups[1].kv_cache_spec.num_kv_heads: Input should be greater "
        "than or equal to 1, got 0 [greater_than_equal]",
        f"{path}:19:1: $.kv_cache_groups[1].kv_cache_spec.window: Extra inputs are not "
        "permitted, got 3; did you mean 'sliding_window'? [extra_forbidden]",
    ]
    code, out, _ = run(capsys, "validate", "-q", "--format", "toml", str(EXAMPLES / "missing.toml"))
    assert code == 2
    bad = tmp_path / "syntax.toml"
    bad.write_text("a = 1\nb = = 2\n")
    code, out, _ = run(capsys, "validate", "-q", str(bad))
    assert out == f"{bad}:2:5: TOML syntax error: Invalid value [load]\n"


@pytest.mark.parametrize("command", ["diff", "plan", "layers"])
def test_json_output_answers_failures_in_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    missing = str(tmp_path / "missing.yaml")
    invalid = str(EXAMPLES / "invalid" / "zero-page-size.yaml")
    plan = ["plan", "-o", "json", "--max-model-len", "4096", "--memory"]
    cases = {
        "diff": [
            (["diff", "-o", "json", missing, invalid], 2, "load"),
            (["diff", "-o", "json", invalid, invalid], 2, "greater_than_equal"),
        ],
        "plan": [
            ([*plan, "1GiB", "--groups", missing], 2, "load"),
            (
                [*plan, "1MiB", "--layers", str(EXAMPLES / "plan" / "jamba-layers.yaml")],
                1,
                "insufficient_memory",
            ),
            (["plan", "-o", "json", "--memory", "1GiB", "--layers", invalid], 2, "usage"),
        ],
        "layers": [(["layers", "-o", "json", "--hf-config", "/dev/zero"], 2, "hf_config")],
    }[command]
    for argv, expected, error_type in cases:
        code, out, err = run(capsys, *argv)
        assert code == expected, argv
        answer = json.loads(out)
        assert answer["ok"] is False and answer["errors"][0]["type"] == error_type, argv
        assert set(answer["errors"][0]) == {"file", "path", "message", "type", "line", "column"}
        assert err  # the text lines still go to standard error
