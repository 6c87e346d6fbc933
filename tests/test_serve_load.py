"""A bounded load test of ``kvschema serve`` on loopback (``benchmarks/serve_load.py`` at a
tenth of its size): the real command in a process of its own, 8 concurrent clients, no error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='needs the serve extra: pip install ".[serve]"')
pytest.importorskip("uvicorn", reason='needs the serve extra: pip install ".[serve]"')

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import serve_load


def test_eight_clients_get_no_error() -> None:
    result = serve_load.run(requests=200, clients=8, deadline_s=120)
    assert result["requests"] == 200
    kinds = result["kinds"]
    assert kinds["all"]["errors"] == 0
    assert {name: kinds[name]["requests"] for name in ("fit", "validate", "plan", "gpus")} == {
        "fit": 120,
        "validate": 20,
        "plan": 20,
        "gpus": 20,
    }
