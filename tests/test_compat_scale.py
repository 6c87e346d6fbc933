"""Compatibility work is O(1) in the tensor-parallel sizes (issue 17): ``check_compatible`` decides
whether two peers' KV-head totals can agree by arithmetic, never by listing TP's divisors.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema import CacheGroupsConfig, CacheGroupSpec, FullAttentionSpec, check_compatible
from kvschema.exchange.compat import _totals_agree


def _layout(heads: int) -> CacheGroupsConfig:
    spec = FullAttentionSpec(page_size=16, num_kv_heads=heads, head_size=128, dtype="bf16")
    return CacheGroupsConfig(
        num_pages=64, kv_cache_groups=[CacheGroupSpec(kv_cache_spec=spec, layer_names=["l0"])]
    )


@pytest.mark.parametrize("tp", [10**6, 2**40, 2**53 - 1])
def test_compatibility_does_not_loop_over_the_tp_size(tp: int) -> None:
    started = time.perf_counter()
    report = check_compatible(_layout(1), _layout(1), tp_a=tp, tp_b=1)
    assert time.perf_counter() - started < 0.5
    assert report.compatible  # one head in all, replicated over every rank, fits one rank of 1


def _divisors(n: int) -> set[int]:
    return {d for d in range(1, n + 1) if n % d == 0}


def _totals(heads: int, tp: int) -> set[int]:
    """The reference: every total a rank of ``heads`` at ``tp`` may stand for, listed."""
    return _divisors(tp) if heads == 1 and tp > 1 else {heads * tp}


@given(
    heads_a=st.integers(1, 8),
    tp_a=st.integers(1, 64),
    heads_b=st.integers(1, 8),
    tp_b=st.integers(1, 64),
)
def test_totals_agree_as_the_listed_totals_do(
    heads_a: int, tp_a: int, heads_b: int, tp_b: int
) -> None:
    expected = bool(_totals(heads_a, tp_a) & _totals(heads_b, tp_b))
    assert _totals_agree(heads_a, tp_a, heads_b, tp_b) is expected
