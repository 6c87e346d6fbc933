"""Forked workers: the same results in the same order as a serial run, whatever happens to them.

Forking is only allowed in a single-threaded process, and this test process may hold JAX's
threads, so the tests of the forked path run in a fresh interpreter of their own.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvschema.cli.fanout import ITEMS_PER_JOB, _slices, auto_jobs, can_fork, fan_out

ROOT = Path(__file__).resolve().parent.parent
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="workers are forked on Linux only"
)


def fresh(code: str) -> Any:
    """Run ``code`` (which sets ``result``) in a new interpreter; return ``result`` as JSON."""
    program = "from kvschema.cli.fanout import fan_out, can_fork\nimport os\nPARENT = os.getpid()\n"
    program += textwrap.dedent(code) + "\nimport json\nprint(json.dumps(result))\n"
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


@given(count=st.integers(0, 200), jobs=st.integers(1, 300))
def test_slices_cover_the_items_in_order_and_evenly(count: int, jobs: int) -> None:
    parts = _slices(count, jobs)
    assert [i for part in parts for i in part] == list(range(count))
    sizes = [len(part) for part in parts]
    assert len(parts) == jobs and max(sizes) - min(sizes) <= 1


@linux_only
def test_results_equal_a_serial_run_for_any_items_and_jobs() -> None:
    result = fresh(
        """
        from hypothesis import given, settings, strategies as st

        @settings(max_examples=40, deadline=None, database=None)
        @given(items=st.lists(st.integers(-10**6, 10**6) | st.text(max_size=5), max_size=40),
               jobs=st.integers(1, 5))
        def law(items, jobs):
            assert fan_out(lambda x: [x, x], items, jobs) == [[x, x] for x in items]

        law()
        result = can_fork()
        """
    )
    assert result is True  # the law above ran with forking allowed


@linux_only
def test_work_is_spread_over_processes_and_the_parent_works_the_first_slice() -> None:
    pids, parent = fresh("result = [fan_out(lambda n: os.getpid(), list(range(12)), 3), PARENT]")
    assert pids[:4] == [parent] * 4
    assert len(set(pids)) == 3


@linux_only
@pytest.mark.parametrize("failure", ["raise", "exit", "unmarshallable"])
def test_a_failing_worker_has_its_slice_worked_in_the_parent(failure: str) -> None:
    result = fresh(
        f"""
        def flaky(n):
            if os.getpid() != PARENT:
                if {failure!r} == "raise":
                    raise RuntimeError("worker trouble")
                if {failure!r} == "exit":
                    os._exit(3)
                return object()  # marshal cannot write it
            return n + 1

        result = fan_out(flaky, list(range(9)), 3)
        """
    )
    assert result == list(range(1, 10))


@linux_only
def test_an_error_in_the_parent_reaps_the_workers() -> None:
    result = fresh(
        """
        def parent_fails(n):
            if os.getpid() == PARENT and n == 0:
                raise ValueError("bad item 0")
            return n

        try:
            fan_out(parent_fails, list(range(6)), 3)
        except ValueError as err:
            raised = str(err)
        try:
            os.waitpid(-1, os.WNOHANG)
            reaped = False
        except ChildProcessError:  # no child left to wait for
            reaped = True
        result = [raised, reaped]
        """
    )
    assert result == ["bad item 0", True]


def test_serial_with_another_thread_running() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not can_fork()
        got = fan_out(lambda n: os.getpid(), list(range(8)), 4)
    finally:
        stop.set()
        thread.join()
    assert set(got) == {os.getpid()}


def test_serial_for_one_job_and_few_items() -> None:
    assert set(fan_out(lambda n: os.getpid(), list(range(5)), 1)) == {os.getpid()}
    assert auto_jobs(ITEMS_PER_JOB - 1) == 1
    assert 1 <= auto_jobs(10**6) <= (os.cpu_count() or 1)


def test_serial_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert not can_fork()
    assert set(fan_out(lambda n: os.getpid(), list(range(6)), 3)) == {os.getpid()}
