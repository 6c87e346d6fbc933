"""Canonical JSON, fingerprints, compatibility and schema versions."""

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kvschema import (
    CacheGroupsConfig,
    CacheGroupSpec,
    FullAttentionSpec,
    InvalidArgumentError,
    MambaSpec,
    SlidingWindowSpec,
    UniformTypeSpec,
    check_compatible,
    fingerprint,
    layout_fingerprint,
    parse_spec,
    to_canonical_json,
)
from kvschema.exchange.canonical import MIGRATIONS, UnsupportedVersionError, migrate, read_config
from kvschema.layout.config import SCHEMA_VERSION
from kvschema.strategies import cache_groups_configs, cache_specs

FULL = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


@given(cache_groups_configs(), st.randoms())
def test_fingerprint_survives_reserialization_and_key_order(
    config: CacheGroupsConfig, rng: random.Random
) -> None:
    document = json.loads(config.model_dump_json())
    again = CacheGroupsConfig.model_validate_json(json.dumps(shuffled(document, rng), indent=3))
    assert fingerprint(again) == fingerprint(config)
    assert to_canonical_json(again) == to_canonical_json(config)
    via_yaml = CacheGroupsConfig.model_validate(
        yaml.safe_load(yaml.safe_dump(shuffled(document, rng)))
    )
    assert fingerprint(via_yaml) == fingerprint(config)


@given(cache_specs())
def test_canonical_bytes_are_sorted_compact_utf8(spec: Any) -> None:
    raw = to_canonical_json(spec)
    data = json.loads(raw)
    assert (
        raw == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert data["type_id"] == spec.type_id
    assert data["page_size_bytes"] == spec.page_size_bytes
    assert parse_spec(data) == spec


def test_aliases_and_defaults_do_not_change_the_fingerprint() -> None:
    a = parse_spec(
        {
            "kind": "full_attention",
            "page_size": 16,
            "num_kv_heads": 8,
            "head_size": 128,
            "dtype": "bf16",
        }
    )
    b = parse_spec(
        {
            "kind": "full_attention",
            "page_size": 16,
            "num_kv_heads": 8,
            "head_size": 128,
            "dtype": "bfloat16",
            "use_mla": False,
            "sliding_window": None,
        }
    )
    assert fingerprint(a) == fingerprint(b)
    # defaults are left out: an optional field added later, at its default, changes nothing
    assert b"use_mla" not in to_canonical_json(a)
    assert b"sliding_window" not in to_canonical_json(a)


@pytest.mark.parametrize(
    "change",
    [
        {"page_size": 32},
        {"num_kv_heads": 4},
        {"head_size": 64},
        {"dtype": "fp16"},
        {"use_mla": True},
        {"sliding_window": 4096},
        {"attention_chunk_size": 8192},
        {"page_size_padded": 1 << 20},
    ],
)
def test_any_byte_relevant_change_changes_the_fingerprint(change: dict[str, Any]) -> None:
    changed = FullAttentionSpec.model_validate(
        {**FULL.model_dump(exclude={"type_id", "page_size_bytes"}), **change}
    )
    assert fingerprint(changed) != fingerprint(FULL)


def test_layout_fingerprint_ignores_num_pages_but_not_placement() -> None:
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=512
    )
    a = CacheGroupsConfig(
        num_pages=10,
        kv_cache_groups=[
            CacheGroupSpec(kv_cache_spec=FULL, layer_names=["layer.0"]),
            CacheGroupSpec(kv_cache_spec=local, layer_names=["layer.1"]),
        ],
    )
    assert layout_fingerprint(a) == layout_fingerprint(a.model_copy(update={"num_pages": 11}))
    assert fingerprint(a) != fingerprint(a.model_copy(update={"num_pages": 11}))
    moved = CacheGroupsConfig(
        num_pages=10,
        kv_cache_groups=[
            CacheGroupSpec(kv_cache_spec=FULL, layer_names=["layer.1"]),
            CacheGroupSpec(kv_cache_spec=local, layer_names=["layer.0"]),
        ],
    )
    assert layout_fingerprint(moved) != layout_fingerprint(a)


def test_canonical_json_refuses_other_values() -> None:
    with pytest.raises(InvalidArgumentError, match="takes a spec"):
        to_canonical_json({"kind": "full_attention"})
    with pytest.raises(InvalidArgumentError, match="CacheGroupsConfig"):
        layout_fingerprint(FULL)  # type: ignore[arg-type]


def config_of(spec: Any, names: list[str], pages: int = 100) -> CacheGroupsConfig:
    return CacheGroupsConfig(
        num_pages=pages, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=spec, layer_names=names)]
    )


@given(cache_groups_configs(), st.sampled_from([1, 2, 4, 8]))
def test_compatibility_is_reflexive(config: CacheGroupsConfig, tp: int) -> None:
    report = check_compatible(config, config, tp_a=tp, tp_b=tp)
    assert report.compatible, report.differences


@given(
    cache_groups_configs(max_layers=6),
    cache_groups_configs(max_layers=6),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([1, 2, 4]),
)
def test_swapping_sides_changes_the_verdict_only_through_page_sizes(
    a: CacheGroupsConfig, b: CacheGroupsConfig, tp_a: int, tp_b: int
) -> None:
    forward = check_compatible(a, b, tp_a=tp_a, tp_b=tp_b)
    backward = check_compatible(b, a, tp_a=tp_b, tp_b=tp_a)

    def rules(report: Any) -> set[tuple[Any, str]]:
        return {(d.layer, d.rule) for d in report.differences if d.rule != "page_size"}

    assert rules(forward) == rules(backward)
    if forward.compatible != backward.compatible:
        assert any(d.rule == "page_size" for d in (forward.differences + backward.differences))


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"head_size": 64}, "head_size"),
        ({"dtype": "fp8"}, "dtype"),
        ({"num_kv_heads": 4}, "kv_heads"),
        ({"use_mla": True, "num_kv_heads": 1}, "mla"),
        ({"sliding_window": 4096}, "window"),
        ({"page_size": 8}, "page_size"),
    ],
)
def test_changing_a_byte_relevant_field_flips_the_verdict(
    change: dict[str, Any], rule: str
) -> None:
    a = config_of(FULL, ["layer.0", "layer.1"])
    changed = FullAttentionSpec.model_validate(
        {**FULL.model_dump(exclude={"type_id", "page_size_bytes"}), **change}
    )
    report = check_compatible(a, config_of(changed, ["layer.0", "layer.1"]))
    assert not report.compatible
    assert {d.rule for d in report.differences} == {rule}
    assert report.differences[0].path == "$.kv_cache_groups[0].kv_cache_spec." + next(iter(change))


def test_kind_difference_names_the_layer() -> None:
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=512
    )
    report = check_compatible(config_of(local, ["layer.7"]), config_of(FULL, ["layer.7"]))
    (difference,) = report.differences
    assert difference.reason == "layer.7 is sliding_window in a and full_attention in b"


def test_layer_sets_must_match_but_placement_may_differ() -> None:
    local = SlidingWindowSpec(
        page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=512
    )
    split = CacheGroupsConfig(
        num_pages=5,
        kv_cache_groups=[
            CacheGroupSpec(kv_cache_spec=local, layer_names=["a"]),
            CacheGroupSpec(kv_cache_spec=local, layer_names=["b"]),
        ],
    )
    joined = config_of(local, ["b", "a"], pages=7)
    report = check_compatible(split, joined)
    assert report.compatible
    assert [d.rule for d in report.info] == ["num_pages"]
    report = check_compatible(split, config_of(local, ["a"]))
    assert [(d.rule, d.reason) for d in report.differences] == [("layer_names", "b is in a only")]


def test_tensor_parallel_rules() -> None:
    a = config_of(FULL.model_copy(update={"num_kv_heads": 4}), ["x"])  # 8 heads over tp 2
    assert check_compatible(
        a, config_of(FULL.model_copy(update={"num_kv_heads": 2}), ["x"]), tp_a=2, tp_b=4
    ).compatible
    report = check_compatible(
        a, config_of(FULL.model_copy(update={"num_kv_heads": 2}), ["x"]), tp_a=2, tp_b=3
    )
    assert {d.rule for d in report.differences} == {"tensor_parallel", "kv_heads"}
    # 4 heads replicated over tp 8 (1 per rank) and 4 heads over tp 4 (1 per rank)
    one = config_of(FULL.model_copy(update={"num_kv_heads": 1}), ["x"])
    assert check_compatible(one, one, tp_a=8, tp_b=4).compatible
    # MLA latents must match per rank whatever tp
    mla = FullAttentionSpec(page_size=16, num_kv_heads=1, head_size=576, dtype="bf16", use_mla=True)
    assert check_compatible(config_of(mla, ["x"]), config_of(mla, ["x"]), tp_a=1, tp_b=8).compatible
    state = MambaSpec(page_size=1, shapes=[[4, 4]], dtype="fp32")
    report = check_compatible(config_of(state, ["m"]), config_of(state, ["m"]), tp_a=1, tp_b=2)
    assert [d.rule for d in report.differences] == ["state_shapes"]


def test_current_version_reads_unchanged() -> None:
    document = {
        "schema_version": 2,
        "num_pages": 3,
        "kv_cache_groups": [{"kv_cache_spec": FULL.model_dump(mode="json")}],
    }
    assert migrate(document) == document
    assert read_config(json.dumps(document)).num_pages == 3


def test_version_1_is_read_as_version_2_unchanged() -> None:
    """Version 2 only added optional fields: a version-1 document migrates as it is."""
    document = {
        "schema_version": 1,
        "num_pages": 3,
        "kv_cache_groups": [{"kv_cache_spec": FULL.model_dump(mode="json")}],
    }
    assert migrate(document) == {**document, "schema_version": 2}
    config = read_config(json.dumps(document))
    assert (config.schema_version, config.num_pages, config.content_version) == (2, 3, 1)
    del document["schema_version"]  # absent means version 1
    assert read_config(document).schema_version == 2


def test_newer_version_is_refused_naming_both() -> None:
    with pytest.raises(
        UnsupportedVersionError,
        match=f"schema_version 3; this kvschema reads up to {SCHEMA_VERSION}",
    ):
        read_config({"schema_version": 3, "num_pages": 1, "kv_cache_groups": []})


def test_older_version_is_migrated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this kvschema writes version 3, where version 2's `pages` became `num_pages`:
    a version-1 document goes through the real 1 -> 2 step, then the pretend 2 -> 3 one."""
    import kvschema.exchange.canonical as exchange

    monkeypatch.setattr(exchange, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(
        MIGRATIONS,
        2,
        lambda doc: {**{k: v for k, v in doc.items() if k != "pages"}, "num_pages": doc["pages"]},
    )
    migrated = migrate({"schema_version": 1, "pages": 9, "kv_cache_groups": []})
    assert migrated == {"schema_version": 3, "num_pages": 9, "kv_cache_groups": []}
    monkeypatch.delitem(MIGRATIONS, 2)
    with pytest.raises(UnsupportedVersionError, match="no migration from schema_version 2 to 3"):
        migrate({"schema_version": 1})


@pytest.mark.parametrize("version", [0, -1, "1", True, 1.0])
def test_bad_versions(version: Any) -> None:
    with pytest.raises(UnsupportedVersionError):
        migrate({"schema_version": version})


# Fingerprints kvschema wrote with SCHEMA_VERSION 1 (computed from the version-1 code): schema
# version 2 only added optional fields, so a layout that uses none of them keeps its bytes.
VERSION_1_FINGERPRINTS = {
    "examples/exchange/prefill-tp2.yaml": (
        "sha256:f24e41c3816c7ac53f0c4137fe817b52a5f686797617b6365142fb922dcf5605",
        "sha256:435c948478cc546ce9700357877fece3217178ab130c34a1963cf056eca90eeb",
    ),
    "examples/valid/gemma3-sliding-hybrid.yaml": (
        "sha256:41b4b37cd7510bb39141753c8c6358deb8a0aa16b0e1ec765be382fe862c9be2",
        "sha256:435c948478cc546ce9700357877fece3217178ab130c34a1963cf056eca90eeb",
    ),
    "examples/valid/jamba-mamba-hybrid.json": (
        "sha256:b394c8aa704fe8e27f4e1145b0f4e4e07b996aa77402f3f4d5d5f8df9e85776f",
        "sha256:d3808ac5347fb86fdec058285a242e2e18f10bf01b10424a3eecb84ff54795eb",
    ),
}


@pytest.mark.parametrize("path", sorted(VERSION_1_FINGERPRINTS))
def test_version_1_fingerprints_are_stable(path: str) -> None:
    from kvschema.reading.loaders import load_file

    (document,) = load_file(str(Path(__file__).resolve().parent.parent / path))
    assert document.data["schema_version"] == 1
    written, layout = VERSION_1_FINGERPRINTS[path]
    for config in (
        CacheGroupsConfig.model_validate(document.data),  # read as version 1
        read_config(document.data),  # migrated to version 2
        CacheGroupsConfig.model_validate({**document.data, "schema_version": 2}),
    ):
        assert (fingerprint(config), layout_fingerprint(config)) == (written, layout)
        assert config.content_version == 1
    mla = FullAttentionSpec(page_size=64, num_kv_heads=1, head_size=576, dtype="bf16", use_mla=True)
    assert fingerprint(FULL) == (
        "sha256:59a699e515f74b992a920d236120dcfc59f04ffc2d744bf25ffd81c10dcd01b8"
    )
    assert fingerprint(mla) == (
        "sha256:ecdce9b55032aac9f6be4c0a440d73f2b834f2a637d1a828e4df4f544805b816"
    )


@given(cache_groups_configs())
def test_canonical_version_is_the_newest_field_used(config: CacheGroupsConfig) -> None:
    uses_new = config.parallelism is not None or any(
        group.kv_sharing is not None
        or any(
            getattr(spec, "head_size_v", None) is not None
            or getattr(spec, "cache_dtype_str", None) is not None
            or getattr(spec, "mamba_cache_mode", "none") != "none"
            or getattr(spec, "num_speculative_blocks", 0) != 0
            or getattr(spec, "num_prefill_checkpoint_blocks", 0) != 0
            for spec in (
                group.kv_cache_spec.kv_cache_specs.values()
                if isinstance(group.kv_cache_spec, UniformTypeSpec)
                else [group.kv_cache_spec]
            )
        )
        for group in config.kv_cache_groups
    )
    assert config.content_version == (2 if uses_new else 1)
    assert json.loads(to_canonical_json(config))["schema_version"] == config.content_version
    document = json.loads(config.model_dump_json())
    assert document["schema_version"] == SCHEMA_VERSION == 2
    as_version_1 = {**document, "schema_version": 1}
    if uses_new:  # a version-1 reader would refuse it: so does this one, told it is version 1
        with pytest.raises(ValidationError, match="added in schema_version 2"):
            CacheGroupsConfig.model_validate(as_version_1)
    else:  # read as version 1 or as 2, the same layout and fingerprint
        assert fingerprint(CacheGroupsConfig.model_validate(as_version_1)) == fingerprint(config)
    if uses_new:
        with pytest.raises(UnsupportedVersionError, match="says schema_version 1 but sets"):
            read_config(as_version_1)
    else:
        assert read_config(as_version_1) == config  # migrated to version 2
