"""``kvschema fit --sweep``: a sweep's rows are the single fits of its choices, lengths included.

The sweep shares everything that does not depend on the choice (the model's layers, weights,
layouts and overheads, memoized on one :class:`FitModel`); each row must still be what
:func:`kvschema.fit` answers for that choice alone, on a model read afresh.
"""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from fit_models import QWEN3_8B
from hypothesis import given, settings
from hypothesis import strategies as st

from kvschema import fit
from kvschema.cli.app import main
from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.planning.fitmodel import FitModel
from kvschema.planning.solvers import Sweep, SweepRow, _failed_row, _row, sweep

HF = Path(__file__).parent / "fixtures" / "hf"
NEXT = json.loads((HF / "qwen3-next-80b.json").read_text())

#: (config, weight bytes): a gated delta-net hybrid and a plain GQA model.
MODELS = [(NEXT, 160 * 10**9), (QWEN3_8B, None)]
_MODELS: dict[int, FitModel] = {}


def _model(index: int) -> FitModel:
    """One FitModel per config for every example: its memos carry over, as a page's do."""
    if index not in _MODELS:
        config, weights = MODELS[index]
        _MODELS[index] = FitModel(config, weights_bytes=weights)
    return _MODELS[index]


def _alone(config: dict[str, Any], weights: int | None, **choice: Any) -> SweepRow:
    """The row of one choice, fitted alone on a model read afresh."""
    asked = choice["max_model_len"]
    shown = "auto" if asked == -1 else asked
    try:
        report = fit(config, weights_bytes=weights, **choice)
    except KVSchemaError as err:
        return _failed_row(
            choice["gpu"],
            choice["tensor_parallel_size"],
            choice["pipeline_parallel_size"],
            choice["kv_cache_dtype"],
            shown,
            err.message,
        )
    row = _row(
        report.hardware.gpu if report.hardware and report.hardware.gpu else choice["gpu"],
        choice["tensor_parallel_size"],
        choice["pipeline_parallel_size"],
        shown,
        report,
    )
    assert row.verdict == report.verdict and row.max_model_len == report.plan.max_model_len
    assert row.available_kv_gib == report.available_kv_bytes.gib()
    return row


def _key(row: SweepRow) -> str:
    return row.model_dump_json()


@settings(max_examples=40, deadline=None)
@given(
    index=st.sampled_from(range(len(MODELS))),
    gpus=st.lists(
        st.sampled_from(["H100", "L40S", "A100-40GB", "L4", "MI300X", "B200"]),
        min_size=1,
        max_size=2,
        unique=True,
    ),
    tps=st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=2, unique=True),
    pps=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=2, unique=True),
    dtypes=st.lists(st.sampled_from(["auto", "fp8", "bfloat16"]), min_size=1, max_size=2),
    lengths=st.lists(
        st.sampled_from([None, "auto", -1, 1, 4096, 40960, 100_000, 262_144, 300_000]),
        min_size=1,
        max_size=2,
    ),
    seqs=st.sampled_from([None, 64]),
)
def test_a_sweeps_rows_are_the_single_fits_of_its_choices(
    index: int,
    gpus: list[str],
    tps: list[int],
    pps: list[int],
    dtypes: list[str],
    lengths: list[Any],
    seqs: int | None,
) -> None:
    config, weights = MODELS[index]
    result = sweep(
        _model(index),
        gpus=gpus,
        tensor_parallel_sizes=tps,
        pipeline_parallel_sizes=pps,
        kv_cache_dtypes=dtypes,
        max_model_lens=lengths,
        max_num_seqs=seqs,
        gdn_prefill_backend="triton",
    )
    alone = [
        _alone(
            config,
            weights,
            gpu=gpu,
            tensor_parallel_size=tp,
            pipeline_parallel_size=pp,
            kv_cache_dtype=dtype,
            max_model_len=length,
            max_num_seqs=seqs,
            gdn_prefill_backend="triton",
        )
        for gpu, tp, pp, dtype, length in product(gpus, tps, pps, dtypes, lengths)
    ]
    assert len(result.rows) == len(alone)
    assert sorted(map(_key, result.rows)) == sorted(map(_key, alone))


def test_one_length_is_the_sweep_it_always_was() -> None:
    """max_model_len in the settings is a sweep of that one length."""
    model = FitModel(QWEN3_8B)
    one = sweep(model, gpus=["H100", "L4"], tensor_parallel_sizes=[1, 2], max_model_len=8192)
    listed = sweep(model, gpus=["H100", "L4"], tensor_parallel_sizes=[1, 2], max_model_lens=[8192])
    assert one == listed and {row.asked_max_model_len for row in one.rows} == {8192}
    default = sweep(model, gpus=["H100"], tensor_parallel_sizes=[1])
    assert default.rows[0].asked_max_model_len is None
    assert default.rows[0].max_model_len == model.model_length.default


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_model_lens": [8192], "max_model_len": 8192}, "not both"),
        ({"max_model_lens": []}, "empty"),
        ({"max_model_lens": "8192"}, "a list of lengths"),
        ({"max_model_lens": [0]}, "max_model_len must be an int >= 1, got 0"),
        ({"max_model_lens": ["32k"]}, "'32k'"),
    ],
)
def test_bad_lengths_are_refused_naming_them(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        sweep(FitModel(QWEN3_8B), gpus=["H100"], **kwargs)


def _run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_sweeps_a_list_of_lengths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(QWEN3_8B))
    args = ["fit", "--hf-config", str(path), "--sweep", "--gpu", "H100,L4", "--tp", "1,2"]
    code, out, _ = _run(*args, "--max-model-len", "8k,auto,40960", "-o", "json", capsys=capsys)
    result = Sweep.model_validate_json(out)
    assert code == 0 and len(result.rows) == 12
    assert sorted({str(row.asked_max_model_len) for row in result.rows}) == [
        "40960",
        "8000",
        "auto",
    ]
    api = sweep(
        FitModel(QWEN3_8B),
        gpus=["H100", "L4"],
        tensor_parallel_sizes=[1, 2],
        max_model_lens=[8000, "auto", 40960],
    )
    assert result == api
    code, text, _ = _run(*args, "--max-model-len", "8192,auto", capsys=capsys)
    header = text.splitlines()[2].split()
    assert code == 0 and header[header.index("asked") + 1] == "max_model_len"
    assert len(text.splitlines()) == 3 + 8  # the title, a blank line, the header, a line a row
    code, text, _ = _run(*args, "--max-model-len", "8192", capsys=capsys)
    assert code == 0 and "asked" not in text.splitlines()[2]
    code, _, err = _run(
        "fit", "--hf-config", str(path), "--gpu", "H100", "--max-model-len", "8192,auto",
        capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "--max-model-len takes one value (a list only with --sweep)" in err
    with pytest.raises(SystemExit) as exited:
        main([*args, "--max-model-len", "8192,0"])
    assert exited.value.code == 2
    assert "--max-model-len: expected a size of at least one byte, got '0'" in (
        capsys.readouterr().err
    )
