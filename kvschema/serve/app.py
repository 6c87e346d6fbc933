"""The FastAPI application of ``kvschema serve``: the page, the JSON API and its OpenAPI document.

The routes hand requests to :mod:`kvschema.serve.service` and :mod:`kvschema.serve.layouts`;
:class:`~kvschema.serve.guard.RequestGuard` runs before them.  Every error is an
:class:`~kvschema.serve.schemas.ErrorReport` with the rule id — never a traceback.  The page is
three files shipped in the package, read once; no request reads a file or fetches a URL.

>>> app = create_app()
>>> sorted(r.path for r in app.routes if r.path.startswith("/api/") and "{" not in r.path)[:4]
['/api/compat', '/api/fingerprint', '/api/fit', '/api/gpus']
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

import kvschema.serve.layouts as layouts
import kvschema.serve.service as service
from kvschema._version import __version__
from kvschema.errors import KVSchemaError
from kvschema.exchange.compat import CompatibilityReport
from kvschema.exchange.schema import SCHEMA_NAMES
from kvschema.planning.gpus import GPU
from kvschema.planning.gpus import gpus as catalogue
from kvschema.planning.plan import CachePlan
from kvschema.reading.checking import format_path
from kvschema.reading.document import LoadError
from kvschema.serve.bundled import UnknownModelError, bundled_config
from kvschema.serve.guard import SECURITY_HEADERS, RequestGuard, error_body
from kvschema.serve.layouts import UnknownSchemaError
from kvschema.serve.schemas import (
    BundledModel,
    CompatRequest,
    ErrorReport,
    FingerprintRequest,
    FingerprintResponse,
    FitRequest,
    FitResponse,
    PlanRequest,
    Problem,
    ValidateRequest,
    ValidateResponse,
)

__all__ = ["LOOPBACK_HOSTS", "PAGE_FILES", "create_app"]

#: The page's files and their content types.
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
#: The Host names a server on the loopback interface answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorReport, "description": text}
    for code, text in (
        (400, "A body that is not JSON, or breaks the reading limits"),
        (413, "A body over the size cap"),
        (415, "A body that is not application/json"),
        (422, "A request kvschema refuses, with the rule id"),
    )
}
_GPUS = TypeAdapter(list[GPU])
_MODELS = TypeAdapter(list[BundledModel])
_log = logging.getLogger("kvschema.serve")


def _json(value: BaseModel | bytes, status: int = 200, caught: Sequence[Any] = ()) -> Response:
    body = value if isinstance(value, bytes) else value.model_dump_json().encode()
    headers = {"cache-control": "no-store"}
    said = list(dict.fromkeys(str(w.message) for w in caught))
    if said:  # what kvschema assumed (the fit's answer carries it in its body)
        headers["x-kvschema-warning"] = " | ".join(said).encode("ascii", "replace").decode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _plain(value: Any) -> Any:
    """A field's value as JSON holds it (anything else as its text)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return str(value)


def _error(
    status: int,
    kind: str,
    message: str,
    problems: Sequence[Problem] = (),
    details: dict[str, Any] | None = None,
) -> Response:
    report = ErrorReport(
        status=status,
        type=kind,
        message=message,
        problems=list(problems),
        details={key: _plain(value) for key, value in (details or {}).items()},
    )
    return _json(report, status)


#: The names pydantic gives a union's members in an error's location (not keys of the data).
_UNION_TAG = re.compile(r"[a-z_-]+\[.*\]|constrained-[a-z]+|int|str|float|bool|none")


def _validation_problems(errors: Sequence[Any], skip: int = 0) -> list[Problem]:
    problems = []
    for e in errors:
        loc = [
            part
            for index, part in enumerate(tuple(e["loc"])[skip:])
            if index == 0 or not (isinstance(part, str) and _UNION_TAG.fullmatch(part))
        ]
        problems.append(Problem(type=e["type"], message=e["msg"], path=format_path(tuple(loc))))
    return problems


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(KVSchemaError)
    async def kvschema_error(request: Request, err: KVSchemaError) -> Response:
        status = 422
        if isinstance(err, (UnknownModelError, UnknownSchemaError)):
            status = 404
        elif isinstance(err, LoadError):
            status = 400
        fields = dict(err.fields)
        problems = fields.pop("problems", [])
        return _error(status, err.error_type, err.message, problems, fields)

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, err: RequestValidationError) -> Response:
        problems = _validation_problems(err.errors(), skip=1)  # loc starts with "body"
        first = f"{problems[0].path}: {problems[0].message}" if problems else "invalid"
        return _error(
            422, "request_validation", f"the request does not fit its schema: {first}", problems
        )

    @app.exception_handler(ValidationError)
    async def model_error(request: Request, err: ValidationError) -> Response:
        problems = _validation_problems(err.errors())
        first = f"{problems[0].path}: {problems[0].message}" if problems else "invalid"
        return _error(422, "validation", f"{err.title}: {first}", problems)

    @app.exception_handler(ValueError)
    async def value_error(request: Request, err: ValueError) -> Response:
        return _error(422, "invalid_argument", str(err))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        kind = kinds.get(err.status_code, "http_error")
        return _error(err.status_code, kind, f"{request.method} {request.url.path}: {err.detail}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> Response:
        _log.exception("kvschema serve: %s %s failed", request.method, request.url.path)
        # this answer leaves from outside the guard (Starlette's outermost layer): its headers too
        answer = _json(
            error_body(
                500,
                "internal_error",
                f"kvschema failed on this request ({type(err).__name__}); this is a bug: "
                "please report it with the request",
            ),
            500,
        )
        for name, value in SECURITY_HEADERS:
            answer.headers[name.decode()] = value.decode()
        return answer


def _page(app: FastAPI) -> None:
    folder = resources.files("kvschema.serve").joinpath("static")
    files = {name: folder.joinpath(name).read_bytes() for name in PAGE_FILES}

    def serve(name: str) -> Response:
        return Response(
            files[name], media_type=PAGE_FILES[name], headers={"cache-control": "no-cache"}
        )

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return serve("index.html")

    @app.get("/app.js", include_in_schema=False)
    def script() -> Response:
        return serve("app.js")

    @app.get("/style.css", include_in_schema=False)
    def style() -> Response:
        return serve("style.css")


def _api(app: FastAPI) -> None:
    @app.get("/api/gpus", response_model=list[GPU], tags=["catalogue"])
    def gpus() -> Response:
        """The GPU catalogue: each device's memory as CUDA reports it, with sources."""
        return _json(_GPUS.dump_json(catalogue()))

    @app.get("/api/models", response_model=list[BundledModel], tags=["catalogue"])
    def models() -> Response:
        """The example model configs shipped with kvschema."""
        return _json(_MODELS.dump_json(service.bundled_models()))

    @app.get("/api/models/{name}", tags=["catalogue"], responses={404: _ERRORS[422]})
    def model(name: str) -> dict[str, Any]:
        """A bundled model's config.json."""
        return bundled_config(name)

    @app.get("/api/schemas", tags=["schemas"])
    def schemas() -> list[str]:
        """The names of the published JSON Schemas."""
        return list(SCHEMA_NAMES)

    @app.get("/api/schemas/{name}", tags=["schemas"], responses={404: _ERRORS[422]})
    def schema(name: str) -> dict[str, Any]:
        """A published JSON Schema (draft 2020-12)."""
        return layouts.schema(name)

    @app.post("/api/validate", response_model=ValidateResponse, responses=_ERRORS, tags=["layouts"])
    def validate(request: ValidateRequest) -> Response:
        """Check a deploy document as ``kvschema validate`` does: ok, or every error with its
        rule id and the line the CLI prints."""
        with service.computing() as caught:
            answer = service.run_validate(request)
        return _json(answer, caught=caught)

    @app.post("/api/plan", response_model=CachePlan, responses=_ERRORS, tags=["layouts"])
    def plan(request: PlanRequest) -> Response:
        """Plan a cache for a budget per rank, as ``kvschema plan -o json``."""
        with service.computing() as caught:
            answer = layouts.run_plan(request)
        return _json(answer, caught=caught)

    @app.post("/api/fit", response_model=FitResponse, responses=_ERRORS, tags=["fit"])
    def fit(request: FitRequest) -> Response:
        """Will the model fit, and what will vLLM print: ``kvschema fit -o json`` as ``report``,
        a searched setting, a sweep, the plan, its chart and the reproducing commands."""
        return _json(service.run_fit(request))

    @app.post(
        "/api/compat", response_model=CompatibilityReport, responses=_ERRORS, tags=["layouts"]
    )
    def compat(request: CompatRequest) -> Response:
        """Can layout a move pages to layout b (``kvschema diff -o json``)?"""
        with service.computing() as caught:
            answer = layouts.run_compat(request)
        return _json(answer, caught=caught)

    @app.post(
        "/api/fingerprint", response_model=FingerprintResponse, responses=_ERRORS, tags=["layouts"]
    )
    def fingerprint(request: FingerprintRequest) -> Response:
        """The canonical JSON of a spec, group or config, and its fingerprints."""
        with service.computing() as caught:
            answer = layouts.run_fingerprint(request)
        return _json(answer, caught=caught)


def create_app(*, allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """The application; ``allowed_hosts`` (:data:`LOOPBACK_HOSTS` when served on loopback)
    refuses requests naming any other host."""
    app = FastAPI(
        title="kvschema",
        version=__version__,
        summary="The KV-cache layout of LLM inference engines: validate, plan, fit, compare.",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: the OpenAPI JSON only
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    _handlers(app)
    _page(app)
    _api(app)
    app.add_middleware(
        RequestGuard,
        max_body=service.API_LIMITS.max_bytes,
        limits=service.API_LIMITS,
        allowed_hosts=allowed_hosts,
    )
    return app
