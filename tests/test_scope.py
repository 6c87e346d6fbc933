"""The parallel scope of a document: specs are the whole model's, or one rank's, and TP applies once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kvschema import (
    CacheGroupsConfig,
    FullAttentionSpec,
    InvalidArgumentError,
    SlidingWindowSpec,
    plan_cache,
    vllm_layers_from_hf_config,
)
from kvschema.cli import main
from kvschema.layout.layer_map import LayerMap, is_wrapped_layer_map
from kvschema.layout.parallel import Parallelism
from kvschema.models.hf import layers_from_hf_config

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "hf"
GiB = 1024**3
FULL = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
LOCAL = SlidingWindowSpec(
    page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", sliding_window=1024
)
LAYERS = {f"layer.{i}": FULL if i % 4 == 3 else LOCAL for i in range(16)}
PLAN = {"available_bytes": 8 * GiB, "max_model_len": 16384, "max_num_batched_tokens": 2048}


def test_parallelism_rules() -> None:
    assert Parallelism().describe() == "one rank of tensor_parallel_size=1"
    with pytest.raises(ValidationError, match="pipeline_stage 2 is not a stage"):
        Parallelism(pipeline_parallel_size=2, pipeline_stage=2)
    with pytest.raises(ValidationError):
        Parallelism(tensor_parallel_size=0)
    with pytest.raises(ValidationError):
        Parallelism(tensor_parallel_size=True)  # type: ignore[arg-type]


def test_layer_map_forms() -> None:
    spec = FULL.model_dump(mode="json")
    flat = LayerMap.model_validate({"a": spec, "b": spec})
    assert flat.parallelism is None and list(flat.layers) == ["a", "b"]
    # a layer literally named "layers" is a flat map: its value is a spec, with a kind
    assert list(LayerMap.model_validate({"layers": spec}).layers) == ["layers"]
    assert not is_wrapped_layer_map({"layers": spec})
    wrapped = LayerMap.model_validate(
        {"layers": {"a": spec}, "parallelism": {"tensor_parallel_size": 2}}
    )
    assert wrapped.parallelism == Parallelism(tensor_parallel_size=2)
    # what `kvschema layers -o json` writes: its tensor_parallel_size is the scope
    written = {"model_type": "llama", "tensor_parallel_size": 4, "layers": {"a": spec}}
    assert LayerMap.model_validate(written).parallelism == Parallelism(tensor_parallel_size=4)
    with pytest.raises(ValidationError, match="one document describes one scope"):
        LayerMap.model_validate({**written, "parallelism": {"tensor_parallel_size": 2}})
    with pytest.raises(ValidationError):
        LayerMap.model_validate({"layers": {"a": spec}, "unknown": 1, "more": 2})


def test_config_records_its_scope_and_round_trips() -> None:
    plan = plan_cache(LAYERS, **PLAN, tensor_parallel_size=2, pipeline_parallel_size=2)
    scope = plan.config.parallelism
    assert scope == Parallelism(tensor_parallel_size=2, pipeline_parallel_size=2)
    assert CacheGroupsConfig.model_validate_json(plan.config.model_dump_json()) == plan.config
    # one GPU: the specs are the whole model's, and the document says nothing
    assert plan_cache(LAYERS, **PLAN).config.parallelism is None


@settings(max_examples=40, deadline=None)
@given(
    tp=st.sampled_from([1, 2, 4, 8, 16]),
    heads=st.sampled_from([1, 2, 4, 8, 16]),
    budget=st.integers(2 * GiB, 64 * GiB),
    pp=st.sampled_from([1, 2]),
)
def test_tp_applies_once_whatever_the_path(tp: int, heads: int, budget: int, pp: int) -> None:
    """Planning the whole model at TP=t equals planning its per-rank document, fed back."""
    if heads < tp and tp % heads:
        return
    full = FULL.model_copy(update={"num_kv_heads": heads})
    local = LOCAL.model_copy(update={"num_kv_heads": heads})
    layers = {f"layer.{i}": full if i % 4 == 3 else local for i in range(16)}
    args = {**PLAN, "available_bytes": budget}
    whole = plan_cache(layers, **args, tensor_parallel_size=tp, pipeline_parallel_size=pp)
    again = plan_cache(whole.config, **args)  # TP and PP come from the document
    also = plan_cache(whole.config.kv_cache_groups, **args, tensor_parallel_size=tp,
                      pipeline_parallel_size=pp, specs_per_rank=True)  # fmt: skip
    assert again.num_pages == whole.num_pages == also.num_pages
    assert again.config == whole.config
    assert again.inputs == whole.inputs
    if tp > 1:
        with pytest.raises(InvalidArgumentError, match="cannot be planned for"):
            plan_cache(whole.config, **args, tensor_parallel_size=tp * 2)


def test_scope_conflicts_are_refused() -> None:
    per_rank = plan_cache(LAYERS, **PLAN, tensor_parallel_size=2).config
    with pytest.raises(InvalidArgumentError, match="give one scope"):
        plan_cache(per_rank, **PLAN, parallelism=Parallelism(tensor_parallel_size=4))
    with pytest.raises(InvalidArgumentError, match="cannot be planned for"):
        plan_cache(per_rank, **PLAN, tensor_parallel_size=4, specs_per_rank=True)
    stage = Parallelism(pipeline_parallel_size=2, pipeline_stage=0)
    with pytest.raises(InvalidArgumentError, match="one stage's layers"):
        plan_cache(LAYERS, **PLAN, parallelism=stage)
    with pytest.raises(InvalidArgumentError, match="parallelism must be a Parallelism"):
        plan_cache(LAYERS, **PLAN, parallelism={"tensor_parallel_size": 2})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="specs_per_rank must be a bool"):
        plan_cache(LAYERS, **PLAN, specs_per_rank=1)  # type: ignore[arg-type]
    # a whole model's specs (scope TP=1) shard for any TP
    whole = LayerMap(layers=LAYERS, parallelism=Parallelism())
    assert plan_cache(whole, **PLAN, tensor_parallel_size=4).config.parallelism == Parallelism(
        tensor_parallel_size=4
    )


def test_hf_layers_carry_their_scope() -> None:
    config = FIXTURES / "llama3-8b.json"
    per_rank = layers_from_hf_config(config, tensor_parallel_size=2)
    assert per_rank.parallelism == Parallelism(tensor_parallel_size=2)
    assert layers_from_hf_config(config).parallelism is None
    direct = plan_cache(per_rank, **PLAN)  # TP=2 from the layers
    assert direct.inputs.tensor_parallel_size == 2
    assert direct.num_pages == plan_cache(layers_from_hf_config(config), **PLAN,
                                          tensor_parallel_size=2).num_pages  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="one rank of tensor_parallel_size=2"):
        plan_cache(per_rank, **PLAN, tensor_parallel_size=4)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# a dense model, one whose layers share others' caches (Gemma 3n), and a Mamba hybrid
@pytest.mark.parametrize("model", ["llama3-8b", "gemma-3n-e4b", "nemotron-h-8b"])
def test_every_cli_path_gives_the_same_plan(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--hf-config, --layers (what `layers -o json` writes), --groups (what `plan -o json` writes,
    whole or its layout, or a --path into a deploy file) and Python agree, TP applied once."""
    config = str(FIXTURES / f"{model}.json")
    common = ["--memory", "20GiB", "--max-model-len", "8192", "-o", "json"]
    code, out, _ = _run(capsys, "plan", "--hf-config", config, "--tp", "2", *common)
    assert code == 0
    reference = json.loads(out)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(out)
    code, out, _ = _run(capsys, "layers", "--hf-config", config, "--tp", "2", "-o", "json")
    layers_file = tmp_path / "layers.json"
    layers_file.write_text(out)
    layout_file = tmp_path / "layout.json"
    layout_file.write_text(json.dumps(reference["config"]))
    deploy_file = tmp_path / "deploy.json"
    deploy_file.write_text(json.dumps({"service": {"kv_cache": reference["config"]}}))
    for argv in (
        ["--groups", str(plan_file)],
        ["--groups", str(layout_file)],
        ["--groups", str(layout_file), "--tp", "2"],
        ["--groups", str(deploy_file), "--path", "/service/kv_cache"],
        ["--layers", str(layers_file)],
    ):
        code, out, err = _run(capsys, "plan", *argv, *common)
        assert (code, err) == (0, ""), argv
        assert json.loads(out)["config"] == reference["config"], argv
    python = plan_cache(vllm_layers_from_hf_config(config, tensor_parallel_size=2),
                        available_bytes=20 * GiB, max_model_len=8192,
                        max_num_batched_tokens=8192)  # fmt: skip
    assert python.config.model_dump(mode="json") == reference["config"]
    code, _, err = _run(capsys, "plan", "--groups", str(plan_file), "--tp", "4", *common)
    assert code == 1
    assert "one rank of tensor_parallel_size=2" in err


def test_cli_max_model_len_defaults_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(FIXTURES / "llama3-8b.json")
    code, out, _ = _run(capsys, "plan", "--hf-config", config, "--memory", "40GiB", "-o", "json")
    assert code == 0
    assert json.loads(out)["inputs"]["max_model_len"] == 131072  # the model's own
    code, _, err = _run(
        capsys, "plan", "--hf-config", config, "--memory", "80GiB", "--max-model-len", "200000"
    )
    assert code == 1
    assert "VLLM_ALLOW_LONG_MAX_MODEL_LEN" in err
    code, _, _ = _run(capsys, "plan", "--hf-config", config, "--memory", "80GiB",
                      "--max-model-len", "200000", "--allow-long-max-model-len")  # fmt: skip
    assert code == 0
    layers = str(ROOT / "examples" / "plan" / "gemma3-27b-layers.yaml")
    code, _, err = _run(capsys, "plan", "--layers", layers, "--memory", "20GiB")
    assert code == 2
    assert "--max-model-len is required" in err
    code, _, err = _run(capsys, "plan", "--hf-config", config, "--memory", "20GiB", "--path", "/a")
    assert code == 2


def test_layer_map_sharing_names_listed_layers() -> None:
    spec = FULL.model_dump(mode="json")
    doc = {"layers": {"a": spec, "b": spec}, "kv_sharing": {"c": "a"}}
    assert LayerMap.model_validate(doc).kv_sharing == {"c": "a"}
    assert plan_cache(LayerMap.model_validate(doc), **PLAN).config.kv_cache_groups[0].kv_sharing
    with pytest.raises(ValidationError) as caught:
        LayerMap.model_validate({**doc, "kv_sharing": {"c": "z", "b": "a"}})
    errors = {(e["loc"], e["type"]) for e in caught.value.errors()}
    assert errors == {
        (("kv_sharing", "c"), "kv_sharing_target_elsewhere"),
        (("kv_sharing", "b"), "kv_sharing_layer_listed"),
    }
    assert "layer c shares z, which is not one of layers" in str(caught.value)
    with pytest.raises(InvalidArgumentError, match="in the groups given"):  # two answers
        plan_cache(LayerMap.model_validate(doc), **PLAN, kv_sharing={"c": "b"})
