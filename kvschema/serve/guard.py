"""What every request passes before the web framework sees it, as plain ASGI: the host it names,
the content type and size of a body, the body read with the CLI loaders' limits, and the security
headers of every answer.

- A body is JSON (``Content-Type: application/json``, else 415), at most ``max_body`` bytes
  (else 413, before a byte of it is parsed: a declared length is refused unread, a streamed one
  as soon as it passes the cap), and parsed with the limits of ``kvschema validate`` (depth,
  number of values) and its duplicate-key rule (else 400 with the rule id).
- With ``allowed_hosts``, a request naming another host is refused (400): a page on another
  site cannot reach a server on 127.0.0.1 through DNS rebinding.
- Every answer carries a Content-Security-Policy that allows this server's own scripts, styles
  and requests only (no inline script, no eval, no frames), ``X-Content-Type-Options: nosniff``,
  no referrer, and ``Server-Timing`` (the server's time to the answer's first byte).

>>> CSP.split("; ")[:2]
["default-src 'self'", "script-src 'self'"]
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from kvschema.reading.checking import format_path
from kvschema.reading.document import Limits, LoadError
from kvschema.reading.loaders import load_bytes
from kvschema.serve.schemas import ErrorReport, Problem

__all__ = ["CSP", "SECURITY_HEADERS", "RequestGuard", "error_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The page's policy: its own files only; SVG charts are drawn inline from the server's
#: answers (presentation attributes, no style attributes, no scripts).
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]

#: The methods whose bodies the API reads (no route takes another: those get a 405 unread).
_BODY_METHODS = frozenset({"POST"})


def error_body(status: int, kind: str, message: str, problems: Sequence[Problem] = ()) -> bytes:
    """The JSON of an error answer (:class:`~kvschema.serve.schemas.ErrorReport`).

    >>> error_body(413, "body_too_large", "too large")
    b'{"status":413,"type":"body_too_large","message":"too large","problems":[],"details":{}}'
    """
    report = ErrorReport(status=status, type=kind, message=message, problems=list(problems))
    return report.model_dump_json().encode()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _is_json(content_type: bytes | None) -> bool:
    """``application/json``, with at most a UTF-8 charset parameter."""
    if content_type is None:
        return False
    media, _, params = content_type.decode("latin-1").partition(";")
    if media.strip().lower() != "application/json":
        return False
    params = params.strip().lower().replace(" ", "")
    return params in ("", "charset=utf-8")


class _Refused(Exception):
    def __init__(
        self, status: int, kind: str, message: str, problems: Sequence[Problem] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.problems = status, kind, message, problems


class RequestGuard:
    """The ASGI middleware (see the module): ``RequestGuard(app, max_body=..., limits=...)``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        limits: Limits,
        allowed_hosts: Sequence[str] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.limits = limits
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in SECURITY_HEADERS}
                ]
                headers += SECURITY_HEADERS
                headers.append((b"server-timing", f"app;dur={elapsed:.2f}".encode()))
                message["headers"] = headers
            await send(message)

        try:
            self._check_host(scope)
            if scope["method"] in _BODY_METHODS:
                body = await self._read_body(scope, receive)
                receive = _replay(body, receive)
        except _Refused as refused:
            await _answer(send_with_headers, refused)
            return
        await self.app(scope, receive, send_with_headers)

    def _check_host(self, scope: Scope) -> None:
        if self.allowed_hosts is None:
            return
        raw = (_header(scope, b"host") or b"").decode("latin-1").lower()
        host = raw.rsplit(":", 1)[0] if not raw.endswith("]") else raw
        if host not in self.allowed_hosts and raw not in self.allowed_hosts:
            raise _Refused(
                400,
                "untrusted_host",
                f"the Host header {raw[:80]!r} is not this server's: open it by its address "
                f"({', '.join(sorted(self.allowed_hosts))})",
            )

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        if not _is_json(_header(scope, b"content-type")):
            shown = (_header(scope, b"content-type") or b"none").decode("latin-1")[:80]
            raise _Refused(
                415,
                "unsupported_media_type",
                f"a request body must be JSON sent as Content-Type: application/json, got {shown}",
            )
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_body:
            raise self._too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "disconnected", "the client went away mid-request")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            (document,) = load_bytes(body, "json", self.limits)
        except LoadError as err:
            found = Problem(
                type=err.error_type,
                message=err.message,
                line=err.fields.get("line"),
                column=err.fields.get("column"),
            )
            raise _Refused(
                400, err.error_type, f"the request body: {err.message}", [found]
            ) from None
        if document.problems:
            problem = document.problems[0]
            where = format_path(problem.path)
            found = Problem(
                type=problem.error_type,
                message=problem.message,
                path=where,
                line=problem.line,
                column=problem.column,
            )
            raise _Refused(
                400, problem.error_type, f"the request body: {where}: {problem.message}", [found]
            )
        return body

    def _too_large(self, size: int) -> _Refused:
        return _Refused(
            413,
            "body_too_large",
            f"the request body is {size:,} bytes or more; at most {self.max_body:,} are read "
            "(send a safetensors index without its weight_map)",
        )


def _replay(body: bytes, then: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then the client's own messages
    (its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive


async def _answer(send: Send, refused: _Refused) -> None:
    body = error_body(refused.status, refused.kind, refused.message, refused.problems)
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
