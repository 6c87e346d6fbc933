"""A bounded load test of `kvschema serve` on loopback: N requests over C concurrent clients.

Starts `python -m kvschema serve` on a free port of 127.0.0.1 (a process of its own, as a user
runs it), sends the page's traffic — mostly `POST /api/fit` with a changed input each time (the
chart included, a sweep of the whole catalogue every tenth), and some validate, plan and
catalogue requests — from C threads with one keep-alive connection each, and stops by itself:
after N requests, or after the deadline, whichever comes first.  It reports errors (any answer
that is not 200, any failed connection), the latency each client saw and the server's own time
(`Server-Timing`), and exits 1 on any error.

Target: no error; a changed input re-planned (`/api/fit`) in <= 50 ms of server time.
Run: python benchmarks/serve_load.py [--requests 2000] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, table

TARGET_MS = 50.0
MODELS = ["llama3-8b", "qwen3-8b", "gpt-oss-20b", "qwen3-next-80b", "gemma2-9b", "mixtral-8x7b"]
GPUS = ["H100", "A100-80GB", "L40S", "H200"]
VALIDATE = (ROOT / "examples" / "valid" / "gemma3-sliding-hybrid.yaml").read_text()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def served(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``kvschema serve`` in a process of its own, until the block ends."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kvschema", "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            _wait_until_up(port, process, log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(port: int, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/api/gpus")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise SystemExit(f"kvschema serve did not start: {log.read().decode()[-2000:]}")
        time.sleep(0.1)


def request_for(number: int) -> tuple[str, str, dict[str, Any] | None]:
    """The ``number``-th request of the mix: (name, path, JSON body or None for a GET)."""
    kind = number % 10
    if kind == 7:
        return "validate", "/api/validate", {"text": VALIDATE, "format": "yaml"}
    if kind == 8:
        body = {"model": MODELS[number % len(MODELS)], "memory": (8 + number % 32) << 30}
        return "plan", "/api/plan", {**body, "max_model_len": 4096 + number}
    if kind == 9:
        return "gpus", "/api/gpus", None
    body = {
        "model": MODELS[number % len(MODELS)],
        "gpu": GPUS[(number // 7) % len(GPUS)],
        "gpus": (1, 2, 4)[(number // 3) % 3],
        "max_model_len": 2048 + number % 6000,  # a changed input: not answered before
        "chart": True,
    }
    if kind == 0:
        return "fit+sweep", "/api/fit", {**body, "sweep": {}}
    return "fit", "/api/fit", body


def _client(
    port: int, numbers: list[int], deadline: float, out: list[tuple[str, float, float, int]]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for number in numbers:
        if time.monotonic() > deadline:
            return
        name, path, body = request_for(number)
        started = time.perf_counter()
        try:
            if body is None:
                connection.request("GET", path)
            else:
                connection.request(
                    "POST",
                    path,
                    body=json.dumps(body).encode(),
                    headers={"content-type": "application/json"},
                )
            response = connection.getresponse()
            response.read()
            status = response.status
            timing = response.getheader("server-timing") or "dur=nan"
            server = float(timing.split("dur=")[1])
        except (OSError, http.client.HTTPException, ValueError):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            status, server = 0, float("nan")
        out.append((name, (time.perf_counter() - started) * 1000, server, status))
    connection.close()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def run(requests: int = 2000, clients: int = 8, deadline_s: float = 300.0) -> dict[str, Any]:
    """Serve, send the load, stop; the results by request kind."""
    port = _free_port()
    results: list[tuple[str, float, float, int]] = []
    with served(port):
        deadline = time.monotonic() + deadline_s
        shares = [list(range(i, requests, clients)) for i in range(clients)]
        threads = [
            threading.Thread(target=_client, args=(port, share, deadline, results))
            for share in shares
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    kinds: dict[str, Any] = {}
    for name in ("all", "fit", "fit+sweep", "validate", "plan", "gpus"):
        picked = [r for r in results if name == "all" or r[0] == name]
        kinds[name] = {
            "requests": len(picked),
            "errors": sum(1 for r in picked if r[3] != 200),
            "client_p50": _percentile([r[1] for r in picked], 0.50),
            "client_p99": _percentile([r[1] for r in picked], 0.99),
            "client_max": max((r[1] for r in picked), default=float("nan")),
            "server_p50": _percentile([r[2] for r in picked], 0.50),
            "server_p99": _percentile([r[2] for r in picked], 0.99),
        }
    return {"requests": len(results), "clients": clients, "wall_s": wall, "kinds": kinds}


def main(requests: int = 2000, clients: int = 8) -> list[list[str]]:
    result = run(requests, clients)
    rows = [
        [
            "requests",
            "n",
            "errors",
            "client p50 ms",
            "client p99 ms",
            "client max ms",
            "server p50 ms",
            "server p99 ms",
        ]
    ]
    for name, k in result["kinds"].items():
        rows.append(
            [
                name,
                str(k["requests"]),
                str(k["errors"]),
                f"{k['client_p50']:.1f}",
                f"{k['client_p99']:.1f}",
                f"{k['client_max']:.1f}",
                f"{k['server_p50']:.1f}",
                f"{k['server_p99']:.1f}",
            ]
        )
    throughput = result["requests"] / result["wall_s"]
    rows.append(
        [f"{result['requests']} in {result['wall_s']:.1f} s", f"{throughput:.0f}/s"] + [""] * 6
    )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    rows = main(args.requests, args.clients)
    print(table(rows))
    errors = int(rows[1][2])
    fit_p50 = float(rows[2][6])
    print(f"\nerrors: {errors}; /api/fit server p50 {fit_p50:.1f} ms (target <= {TARGET_MS} ms)")
    sys.exit(1 if errors else 0)
