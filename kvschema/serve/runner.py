"""Serving the app with uvicorn: on the loopback interface unless told otherwise.

A server on 127.0.0.1 answers only requests that name a loopback host (no DNS rebinding); binding
any other address needs ``allow_remote`` (``--allow-remote``), and then answers any host name:
put it behind a proxy that authenticates, as nothing here does.

>>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
(True, True, True, False)
"""

from __future__ import annotations

import ipaddress

from kvschema.errors import InvalidArgumentError

__all__ = ["is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(host: str = "127.0.0.1", port: int = 8000, *, allow_remote: bool = False) -> None:
    """Run ``kvschema serve`` until interrupted (needs the ``serve`` extra)."""
    if not is_loopback(host) and not allow_remote:
        raise InvalidArgumentError(
            f"--host {host} is not a loopback address: anyone who can reach it could use the "
            "server; pass --allow-remote to bind it anyway",
            host=host,
        )
    if not 1 <= port <= 65535:
        raise InvalidArgumentError(f"--port must be in 1..65535, got {port}", port=port)
    import uvicorn

    from kvschema.serve.app import LOOPBACK_HOSTS, create_app

    hosts = (*LOOPBACK_HOSTS, host.lower()) if is_loopback(host) else None
    uvicorn.run(
        create_app(allowed_hosts=hosts),
        host=host.strip("[]"),
        port=port,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=5,
    )
