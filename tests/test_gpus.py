"""The GPU catalogue: its data, the lookup, and vLLM 0.33's batch-size defaults by GPU."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from kvschema.errors import InvalidArgumentError
from kvschema.models.interval import GIB, Interval
from kvschema.planning.gpus import GPU, UnknownGPUError, _key, batch_defaults, gpu, gpus

REQUIRED = {
    "A10G",
    "L4",
    "L40S",
    "A100-40GB",
    "A100-80GB",
    "H100-PCIe",
    "H100-SXM",
    "H200",
    "H20",
    "B200",
    "RTX-4090",
    "RTX-6000-Ada",
    "MI300X",
}


def test_the_catalogue_covers_the_gpus_people_rent() -> None:
    assert {g.name for g in gpus()} >= REQUIRED


def test_every_label_names_one_gpu() -> None:
    seen: dict[str, str] = {}
    for entry in gpus():
        for label in (entry.name, entry.device_name, *entry.aliases):
            owner = seen.setdefault(_key(label), entry.name)
            assert owner == entry.name, f"{label!r} names both {owner} and {entry.name}"


@pytest.mark.parametrize("entry", gpus(), ids=lambda g: g.name)
def test_each_entry_is_plausible_and_sourced(entry: GPU) -> None:
    advertised = entry.memory_gb * 10**9
    # what the runtime reports sits a little under the advertised size (GB or GiB marketing)
    assert 0.88 * advertised < entry.cuda_total.low <= entry.cuda_total.high < 1.08 * advertised
    if entry.nvml_total is not None:  # NVML counts what the driver reserves
        assert entry.nvml_total >= entry.cuda_total.high
    assert any(s.figure == "cuda_total" for s in entry.sources)
    for source in entry.sources:
        assert "http" in source.source or source.source.startswith(
            ("public repository file", "derived")
        ), source
    assert entry.compute_capability.count(".") == 1


def test_non_nvidia_is_marked() -> None:
    mi300x = gpu("MI300X")
    assert mi300x.vendor == "amd"
    assert mi300x.notes is not None and "NOT NVIDIA" in mi300x.notes
    assert all(g.vendor == "nvidia" for g in gpus() if g.name != "MI300X")


def test_the_h100_reports_about_79_2_gib() -> None:
    """An 80 GB H100 reports ~79.2 GiB to CUDA (the issue's example), not 80."""
    h100 = gpu("H100")
    assert h100.name == "H100-SXM"
    assert 79.1 < h100.cuda_total.low / GIB <= h100.cuda_total.high / GIB < 79.3
    assert h100.nvml_total == 81559 * 2**20


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("H100", "H100-SXM"),
        ("h100-80gb", "H100-SXM"),
        ("H100 SXM", "H100-SXM"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("h100_pcie", "H100-PCIe"),
        ("a100", "A100-80GB"),
        ("A100-SXM4-40GB", "A100-40GB"),
        ("rtx 4090", "RTX-4090"),
        ("NVIDIA GeForce RTX 4090", "RTX-4090"),
        ("rtx6000 ada", "RTX-6000-Ada"),
        ("AMD Instinct MI300X", "MI300X"),
        ("l40s", "L40S"),
    ],
)
def test_lookup_forgives_case_spaces_and_dashes(label: str, name: str) -> None:
    assert gpu(label).name == name


@pytest.mark.parametrize(
    ("typo", "suggested"),
    [("H1000", "H100-SXM"), ("L40", "L40S"), ("A10", "A10G"), ("MI300", "MI300X")],
)
def test_typos_get_a_did_you_mean(typo: str, suggested: str) -> None:
    with pytest.raises(UnknownGPUError, match="did you mean") as err:
        gpu(typo)
    assert suggested in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("bad", ["", "   ", None, 80, "TPU-v5e-xyz-qqq"])
def test_unknown_or_malformed_names_are_refused(bad: object) -> None:
    with pytest.raises(UnknownGPUError):
        gpu(bad)  # type: ignore[arg-type]


# vllm 0.33 vllm/engine/arg_utils.py EngineArgs.get_batch_defaults, tier by tier
@pytest.mark.parametrize(
    ("name", "server", "llm"),
    [
        ("H100-SXM", (8192, 1024), (16384, 1024)),
        ("H100-PCIe", (8192, 1024), (16384, 1024)),
        ("H200", (8192, 1024), (16384, 1024)),  # 140 GiB < 160 GiB
        ("H20", (8192, 1024), (16384, 1024)),
        ("B200", (16384, 1024), (16384, 1024)),
        ("MI300X", (16384, 1024), (16384, 1024)),
        ("A100-80GB", (2048, 256), (8192, 256)),  # the A100 rule (vLLM PR #17885)
        ("A100-40GB", (2048, 256), (8192, 256)),
        ("L40S", (2048, 256), (8192, 256)),
        ("L4", (2048, 256), (8192, 256)),
        ("RTX-4090", (2048, 256), (8192, 256)),
    ],
)
def test_batch_defaults_by_gpu(name: str, server: tuple[int, int], llm: tuple[int, int]) -> None:
    entry = gpu(name)
    assert entry.batch_defaults()[:2] == server
    assert entry.batch_defaults("llm")[:2] == llm
    assert entry.batch_defaults(throughput=True)[:2] == (2 * server[0], 2 * server[1])
    assert entry.a100_rule == name.startswith("A100")


def test_batch_default_thresholds() -> None:
    assert batch_defaults(70 * GIB - 1, "x").tier == "default"
    assert batch_defaults(70 * GIB, "x").tier == ">=70GiB"
    assert batch_defaults(160 * GIB - 1, "x").tier == ">=70GiB"
    assert batch_defaults(160 * GIB, "NVIDIA A100 160").tier == ">=160GiB"  # the rule stops there
    assert batch_defaults(120 * GIB, "NVIDIA GB10", compute_capability="12.1").tier == "default"
    with pytest.raises(InvalidArgumentError, match="usage must be"):
        batch_defaults(80 * GIB, "x", usage="offline")  # type: ignore[arg-type]


def test_a_gpu_straddling_a_threshold_is_refused() -> None:
    straddler = gpu("H20").model_copy(
        update={"cuda_total": Interval(low=69 * GIB, point=69 * GIB, high=69 * GIB)}
    )
    with pytest.raises(InvalidArgumentError, match="straddles a threshold"):
        straddler.batch_defaults()


def test_the_data_file_records_the_rule_and_ships_with_the_package() -> None:
    text = resources.files("kvschema.planning").joinpath("data/gpus.json").read_text("utf-8")
    data = json.loads(text)
    assert "get_batch_defaults" in data["batch_defaults_rule"]["source"]
    assert len(data["batch_defaults_rule"]["tiers"]) == 3


def test_the_catalogue_is_the_data_file_as_gpu_validates_it() -> None:
    """The catalogue is made without validation (a fit then builds no validator for it): every
    shipped entry passes GPU's validation and gives the very entry the catalogue holds."""
    from kvschema.planning.gpus import _data, _fields

    validated = [GPU.model_validate(_fields(item)) for item in _data()["gpus"]]
    assert validated == gpus()
    assert all(type(g.cuda_total) is Interval for g in gpus())
    assert [g.model_fields_set for g in validated] == [g.model_fields_set for g in gpus()]
