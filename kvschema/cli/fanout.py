"""Spread independent work over forked worker processes, keeping the order of the results.

``kvschema validate`` checks each file on its own, and after start-up (importing pydantic,
building the models) most of a many-file run is parsing YAML: work that several cores share.
:func:`fan_out` forks workers *after* the imports, so each starts with the models built, works a
contiguous slice of the items, and sends its results back through a pipe as ``marshal`` data.
The parent works the first slice itself, then reads the others in order.

The results are the same as a serial run's, in the same order: a worker that fails in any way
(killed, a result that does not marshal) has its slice worked again in the parent.  Forking is
safe only in a process with one thread, so workers are forked only on Linux, where
``/proc/self/task`` counts every thread (those of native libraries such as JAX's included), and
only when that count is one; elsewhere, and for few items, the work runs serially.

>>> fan_out(lambda n: n * n, list(range(5)), jobs=1)
[0, 1, 4, 9, 16]
"""

from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["ITEMS_PER_JOB", "auto_jobs", "can_fork", "fan_out"]

T = TypeVar("T")

#: Fewest items worth a worker: a fork and a pipe cost about as much as parsing a dozen files.
ITEMS_PER_JOB = 32


def auto_jobs(items: int) -> int:
    """Workers for ``items`` items: one per usable core, each with ``ITEMS_PER_JOB`` items or more.

    >>> auto_jobs(1)
    1
    """
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return max(1, min(cores, items // ITEMS_PER_JOB))


def can_fork() -> bool:
    """Whether this process may fork workers: Linux, and no thread but this one.

    >>> isinstance(can_fork(), bool)
    True
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _slices(count: int, jobs: int) -> list[range]:
    size, extra = divmod(count, jobs)
    out, start = [], 0
    for job in range(jobs):
        end = start + size + (job < extra)
        out.append(range(start, end))
        start = end
    return out


def _read_all(fd: int) -> bytes:
    pieces = []
    while chunk := os.read(fd, 1 << 20):
        pieces.append(chunk)
    return b"".join(pieces)


def _worker(func: Callable[[Any], Any], items: Sequence[Any], fd: int) -> None:
    """In the child: work the slice, write the marshalled results, and end without cleanup."""
    code = 1
    try:
        data = marshal.dumps([func(item) for item in items])
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        code = 0
    except BaseException:  # the parent works the slice again; nothing may escape a fork
        pass
    finally:
        os._exit(code)


def fan_out(func: Callable[[Any], T], items: Sequence[Any], jobs: int = 0) -> list[T]:
    """``[func(item) for item in items]``, worked by up to ``jobs`` processes (0: automatic).

    ``func`` must not print, and return plain data that ``marshal`` writes (dicts, lists,
    strings, numbers, None).  Import what it needs before calling, so that the workers share it.
    """
    if jobs <= 0:
        jobs = auto_jobs(len(items))
    jobs = min(jobs, len(items))
    if jobs <= 1 or not can_fork():
        return [func(item) for item in items]
    slices = _slices(len(items), jobs)
    sys.stdout.flush()
    sys.stderr.flush()
    workers: list[tuple[int, int, range]] = []
    rest = slices[1:]  # what no worker took: worked here, after the workers' slices
    try:
        while rest:
            started = _start(func, items, rest[0])
            if started is None:  # out of descriptors or processes
                break
            workers.append(started)
            rest.pop(0)
        results = [func(items[i]) for i in slices[0]]
        while workers:
            pid, read_fd, part = workers.pop(0)  # _collect closes and reaps it, come what may
            results.extend(_collect(func, items, pid, read_fd, part))
        for part in rest:
            results.extend(func(items[i]) for i in part)
    finally:
        for pid, read_fd, _ in workers:  # an error or an interrupt in the parent: reap them
            os.close(read_fd)
            os.waitpid(pid, 0)
    return results


def _start(func: Callable[[Any], Any], items: Sequence[Any], part: range) -> Any:
    """A worker forked for ``part``: (pid, read end of its pipe, part), or None when it can't be."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError:  # too many open files
        return None
    try:
        pid = os.fork()
    except OSError:  # too many processes, or no memory
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # pragma: no cover - the child's lines run in another process
        os.close(read_fd)
        _worker(func, [items[i] for i in part], write_fd)
    os.close(write_fd)
    return pid, read_fd, part


def _collect(func: Callable[[Any], T], items: Sequence[Any], pid: int, fd: int, part: range) -> Any:
    """A worker's results, or its slice worked here when the worker failed."""
    try:
        data = _read_all(fd)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    got: Any = None
    if status == 0:
        try:
            got = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            got = None
    if not isinstance(got, list) or len(got) != len(part):
        got = [func(items[i]) for i in part]
    return got
