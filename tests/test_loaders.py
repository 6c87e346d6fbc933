"""Loading rules: YAML 1.2 safe loading, duplicate keys, positions, limits, hostile files."""

import io
import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema.reading.loaders import (
    Limits,
    LoadError,
    _read_bounded,
    format_for,
    load_bytes,
    load_file,
    load_text,
)


def one(text: str, fmt: str = "yaml") -> object:
    (doc,) = load_text(text, fmt)  # type: ignore[arg-type]
    return doc.data


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("017", 17),
        ("0o17", 15),
        ("0x1F", 31),
        ("-4", -4),
        ("1_000", "1_000"),
        ("1:30", "1:30"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("null", None),
        ("~", None),
        ("", None),
        ("'017'", "017"),
        ('"true"', "true"),
        ("!!str 12", "12"),
        ("!!int '12'", 12),
        ("!!float 1", 1.0),
        ("<<", "<<"),
    ],
)
def test_yaml_1_2_core_schema(text: str, value: object) -> None:
    assert one(f"v: {text}\n") == {"v": value}


def test_special_floats() -> None:
    data = one("a: .inf\nb: -.Inf\nc: .nan\n")
    assert data["a"] == math.inf  # type: ignore[index]
    assert data["b"] == -math.inf  # type: ignore[index]
    assert math.isnan(data["c"])  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object:os.system x",
        "v: !!python/object/apply:os.system ['echo hi']",
        "v: !!set {a, b}",
        "v: !!binary aGk=",
        "v: !custom 3",
    ],
)
def test_no_object_construction(text: str) -> None:
    with pytest.raises(LoadError, match="unsupported tag"):
        load_text(text, "yaml")


def test_bad_explicit_scalars() -> None:
    with pytest.raises(LoadError, match="not a valid !!int"):
        load_text("v: !!int abc", "yaml")


def test_duplicate_keys_name_the_key_and_both_lines() -> None:
    (doc,) = load_text("a: 1\nb:\n  c: 1\n  c: 2\n", "yaml")
    (problem,) = doc.problems
    assert problem.path == ("b", "c")
    assert "duplicate key 'c' (first on line 3, again on line 4)" in problem.message
    assert (problem.line, problem.column) == (4, 3)


def test_duplicate_keys_in_json() -> None:
    (doc,) = load_text('{"a": 1,\n "a": 2}', "json")
    (problem,) = doc.problems
    assert "duplicate key 'a' (first on line 1, again on line 2)" in problem.message


def test_positions_are_one_based_and_fall_back_to_parents() -> None:
    (doc,) = load_text("top:\n  - x: 1\n    y: [1, 2]\n", "yaml")
    assert doc.position(("top",)) == (1, 1)
    assert doc.position(("top", 0)) == (2, 5)
    assert doc.position(("top", 0, "y")) == (3, 5)
    assert doc.position(("top", 0, "y", 1)) == (3, 12)
    assert doc.position(("top", 0, "missing")) == (2, 5)


def test_json_positions_on_demand() -> None:
    (doc,) = load_text('{\n  "a": {\n    "b": 3\n  }\n}\n', "json")
    assert doc.position(("a", "b")) == (3, 5)


def test_multi_document_streams() -> None:
    docs = load_text("a: 1\n---\nb: 2\n---\n", "yaml")
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}, None]
    assert [d.index for d in docs] == [0, 1, 2]


def test_empty_input_has_no_document() -> None:
    assert load_text("", "yaml") == []
    assert load_text("# only a comment\n", "yaml") == []


def test_alias_bomb_ends_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 10)}]"
        for i in range(1, 10)
    ]
    start = time.perf_counter()
    with pytest.raises(LoadError, match="aliases counted as expanded"):
        load_text("\n".join(lines), "yaml")
    assert time.perf_counter() - start < 1.0


def test_alias_bomb_inside_a_valid_document() -> None:
    text = "kind: mamba\npage_size: 1\ndtype: fp32\nx: &a [1, 1, 1, 1, 1, 1, 1, 1]\n"
    text += "".join(
        f"x{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 8)}]\n" for i in range(8)
    )
    text += "shapes: [[4]]\n"
    with pytest.raises(LoadError, match="more than 1000 values"):
        load_text(text, "yaml", Limits(max_values=1000))


def test_small_aliases_are_fine() -> None:
    data = one("base: &b {page_size: 16}\nother: *b\n")
    assert data == {"base": {"page_size": 16}, "other": {"page_size": 16}}


def test_undefined_alias() -> None:
    with pytest.raises(LoadError):
        load_text("a: *nothing\n", "yaml")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_deep_nesting_is_refused(fmt: str) -> None:
    text = "[" * 10_000 + "]" * 10_000
    with pytest.raises(LoadError, match="nesting|depth"):
        load_text(text, fmt)  # type: ignore[arg-type]
    with pytest.raises(LoadError, match="deeper than 3"):
        load_text("[[[[1]]]]", fmt, Limits(max_depth=3))  # type: ignore[arg-type]


def test_toml_limits_and_errors() -> None:
    assert one("a = 1\n[b]\nc = 'x'\n", "toml") == {"a": 1, "b": {"c": "x"}}
    with pytest.raises(LoadError, match="TOML syntax error"):
        load_text("a = 1\na = 2\n", "toml")


def test_size_limit_without_reading_everything() -> None:
    with pytest.raises(LoadError, match="larger than 10 bytes"):
        load_bytes(b"a: 1\n" * 10, "yaml", Limits(max_bytes=10))

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            buffer[:] = b"a" * len(buffer)
            return len(buffer)

    with pytest.raises(LoadError, match="larger than 1000 bytes"):
        load_file("-", None, Limits(max_bytes=1000), stdin=io.BufferedReader(Endless()))


class _Trickle(io.RawIOBase):
    """A stream that hands out its data a few bytes per read, as a pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        piece, self.data = self.data[: min(self.step, len(buffer))], self.data[self.step :]
        buffer[: len(piece)] = piece
        return len(piece)


@given(
    data=st.binary(max_size=300),
    limit=st.integers(1, 400),
    hint=st.integers(0, 400),
    step=st.integers(1, 97),
)
def test_bounded_read_returns_everything_within_the_limit(
    data: bytes, limit: int, hint: int, step: int
) -> None:
    # ``hint`` is the size stat() gave, possibly stale: it may only change how reads are cut
    stream = _Trickle(data, step)
    if len(data) <= limit:
        assert _read_bounded(stream, limit, hint) == data
    else:
        with pytest.raises(LoadError, match=f"larger than {limit} bytes"):
            _read_bounded(stream, limit, hint)


def test_file_growing_after_stat_is_still_bounded(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "grows.yaml"
    path.write_text("a: 1\n")
    with path.open("rb") as handle:
        assert _read_bounded(handle, 5, 0) == b"a: 1\n"
    path.write_text("a: 1\n" * 3)  # bigger than both the size hint and the limit
    with path.open("rb") as handle, pytest.raises(LoadError, match="larger than 10"):
        _read_bounded(handle, 10, 5)


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", b"\x89PNG\r\n\x1a\n", b"a: \x00\n"])
def test_binary_garbage(raw: bytes) -> None:
    with pytest.raises(LoadError, match="UTF-8|NUL"):
        load_bytes(raw, "yaml")


def test_bom_is_allowed() -> None:
    assert load_bytes("\ufeffa: 1\n".encode(), "yaml")[0].data == {"a": 1}


def test_stdin_format_sniffing() -> None:
    assert load_bytes(b'  {"a": 1}', None)[0].data == {"a": 1}
    assert load_bytes(b"a: yes", None)[0].data == {"a": "yes"}


def test_syntax_errors_are_load_errors() -> None:
    with pytest.raises(LoadError, match="line 2, column 1: JSON syntax error"):
        load_text('{"a": 1,\n}', "json")
    with pytest.raises(LoadError, match="YAML syntax error"):
        load_text("a: [1, 2\n", "yaml")
    with pytest.raises(LoadError, match="mapping key must be a scalar"):
        load_text("? [1, 2]\n: x\n", "yaml")


def test_huge_integers() -> None:
    assert one("v: 100000000000000000000\n") == {"v": 10**20}
    with pytest.raises(LoadError, match="too long"):
        load_text("v: " + "9" * 5000, "yaml")
    with pytest.raises(LoadError, match="out of range"):
        load_text("[" + "9" * 5000 + "]", "json")


def test_files(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "a.yml").write_text("a: 1\n")
    assert load_file(str(folder / "a.yml"))[0].data == {"a": 1}
    with pytest.raises(LoadError, match="no such file"):
        load_file(str(folder / "missing.yaml"))
    with pytest.raises(LoadError, match="is a directory"):
        load_file(str(folder))
    (folder / "loop").symlink_to(folder / "loop.yaml")
    (folder / "loop.yaml").symlink_to(folder / "loop")
    with pytest.raises(LoadError, match="cannot read"):
        load_file(str(folder / "loop.yaml"))
    assert format_for("x.TOML") == "toml"
    with pytest.raises(LoadError, match="unknown extension"):
        format_for("x.txt")
