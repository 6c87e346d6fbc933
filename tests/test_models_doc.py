"""docs/models.md shows the fixtures' numbers as kvschema computes them."""

from pathlib import Path

from kvschema.hf import HFConfigError, HFLayers, layers_from_hf_config
from kvschema.models.catalog import families_markdown
from kvschema.models.families import FAMILY_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "hf"
BEGIN, END = "<!-- fixtures table: begin -->", "<!-- fixtures table: end -->"
DEFAULTS_BEGIN, DEFAULTS_END = "<!-- defaults table: begin -->", "<!-- defaults table: end -->"
FAMILIES_BEGIN, FAMILIES_END = "<!-- families table: begin -->", "<!-- families table: end -->"


def decoder_layers(layers: HFLayers) -> int:
    """Decoder layers: a Falcon-H1 layer keeps two specs (``layer.i.attn``, ``layer.i.mamba``)."""
    return len({name.split(".")[1] for name in layers.layer_names})


def fixtures_table() -> str:
    rows = [
        "| fixture | model_type | layers | full | sliding | chunked | state | no cache | shared | dtype | KV bytes / token | state bytes / request |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(FIXTURES.glob("*.json")):
        try:
            layers = layers_from_hf_config(path)
        except HFConfigError:  # refused fixtures: tests/test_hf.py pins why
            continue
        kinds = [spec.kind for spec in layers.values()]
        rows.append(
            f"| `{path.stem}` | {layers.model_type} | {decoder_layers(layers)} | "
            f"{kinds.count('full_attention')} | {kinds.count('sliding_window')} | "
            f"{kinds.count('local_attention')} | {kinds.count('mamba')} | {len(layers.no_cache)} | "
            f"{len(layers.kv_sharing)} | "
            f"{layers.dtype} | {layers.kv_bytes_per_token():,} | {layers.state_bytes_per_request():,} |"
        )
    return "\n".join(rows)


def defaults_table() -> str:
    rows = ["| model_type | defaults kvschema relies on |", "|---|---|"]
    for family, defaults in sorted(FAMILY_DEFAULTS.items()):
        listed = ", ".join(f"`{k}` {v}" for k, v in defaults.items())
        rows.append(f"| `{family}` | {listed} |")
    return "\n".join(rows)


def section(text: str, begin: str, end: str) -> str:
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def test_fixtures_table_is_current() -> None:
    text = (ROOT / "docs" / "models.md").read_text()
    assert section(text, BEGIN, END) == fixtures_table(), (
        "regenerate docs/models.md's fixtures table"
    )


def test_families_table_is_current() -> None:
    """docs/models.md's family table is kvschema.models.catalog's, rendered."""
    text = (ROOT / "docs" / "models.md").read_text()
    assert section(text, FAMILIES_BEGIN, FAMILIES_END) == families_markdown(), (
        "regenerate docs/models.md's families table (kvschema models -o markdown)"
    )


def test_defaults_table_is_current() -> None:
    text = (ROOT / "docs" / "models.md").read_text()
    assert section(text, DEFAULTS_BEGIN, DEFAULTS_END) == defaults_table()
