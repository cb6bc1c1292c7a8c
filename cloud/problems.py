"""Error answers of the HTTP API as RFC 9457 problem details (``application/problem+json``).

Every error of the API (an :class:`~cloud.errors.ApiError`, a request that fails validation, a path or a
method the router does not know, an unexpected exception) answers with one JSON object::

    {"type": "https://roost.dev/problems/not-found", "title": "Not found", "status": 404,
     "detail": "no campaign 'c1' in tenant 'acme'", "instance": "/api/v1/campaigns/c1",
     "message": "no campaign 'c1' in tenant 'acme'", "parameter": "id",
     "error": {"status": 404, "message": "...", "parameter": "id"}}

``type`` names one of :data:`PROBLEM_TYPES` (each documented in docs/api.md); ``message`` (the same as
``detail``), ``parameter`` (the request parameter at fault, when one is) and ``error`` (the answer's shape
before problem details) are kept for existing clients. The OAuth endpoints answer RFC 6749's
``{"error", "error_description"}`` instead and never come here.

A router raises a problem with ``ApiError(status, message, parameter=..., problem="conflict")``: without
``problem`` the type follows from the status (:data:`BY_STATUS`). A new type is added to
:data:`PROBLEM_TYPES` and to the table in docs/api.md (a test checks that they match). Routes document
their errors with ``responses=problem_responses(404, 409)`` (the app adds 400, 401, 403, 500 and a default
to every route already).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.errors import ApiError

_LOGGER = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://roost.dev/problems/"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of problem: its URI's last segment, a short title that never changes, when it happens."""

    slug: str
    title: str
    status: int
    when: str

    @property
    def uri(self) -> str:
        return TYPE_BASE + self.slug


_TYPES = (
    ProblemType("invalid-request", "The request is not valid", 400, "A parameter or the body is malformed, "
                "out of range or missing; `parameter` names it."),
    ProblemType("policy-invalid", "The policy set is not valid", 400, "`PUT /api/v1/policies` with Cedar text "
                "that does not parse or validate; `problems` lists each policy and what is wrong with it."),
    ProblemType("unauthenticated", "Authentication needed", 401, "No bearer token or session cookie, or one "
                "that is unknown, expired, revoked or forged. The answer carries `WWW-Authenticate: Bearer`."),
    ProblemType("forbidden", "Not allowed", 403, "The caller is known but may not do this (a missing CSRF "
                "header, a cross-origin request, a grant that does not fit, a role that is not enough)."),
    ProblemType("policy-denied", "Denied by policy", 403, "The policy decision point refused the action in "
                "the tenant; `detail` names the deciding policies, `action` and `tenant` the request."),
    ProblemType("not-found", "Not found", 404, "No such endpoint, or no such object (gateway, command, "
                "bundle, campaign, alert, user code) in the tenant."),
    ProblemType("method-not-allowed", "Method not allowed", 405, "The path exists but not with this method; "
                "the `Allow` header lists the methods it takes."),
    ProblemType("conflict", "Conflict", 409, "The request does not fit the object's current state (a user "
                "code already decided, a bundle with the same name and other content, an alert on several "
                "gateways)."),
    ProblemType("too-large", "Request too large", 413, "The body is over the endpoint's limit."),
    ProblemType("too-many-requests", "Too many requests", 429, "Too many attempts or requests from this "
                "address, client or account; `Retry-After` says when to try again."),
    ProblemType("internal-error", "Internal error", 500, "Something failed inside the cloud. The answer says "
                "nothing more; the cloud's log has the details."),
    ProblemType("unavailable", "Service unavailable", 503, "A part the request needs is down or busy; retry "
                "later (`Retry-After` when known)."),
)  # fmt: skip
PROBLEM_TYPES: dict[str, ProblemType] = {t.slug: t for t in _TYPES}
"""Every problem type the API answers with, by slug."""

BY_STATUS: dict[int, str] = {
    400: "invalid-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}
"""The type of an error raised without one, by its HTTP status."""


def register(problem: ProblemType) -> ProblemType:
    """Add a problem type (a router's own); the same slug twice must be the same type."""
    known = PROBLEM_TYPES.setdefault(problem.slug, problem)
    if known != problem:
        raise ValueError(f"problem type {problem.slug!r} is already registered differently")
    return problem


def type_for(status: int, slug: str | None = None) -> ProblemType:
    """The type named by ``slug``, else the one for ``status`` (a generic one for statuses without)."""
    if slug is not None:
        try:
            return PROBLEM_TYPES[slug]
        except KeyError:
            raise ValueError(f"unknown problem type {slug!r}: add it to cloud.problems.PROBLEM_TYPES") from None
    if status in BY_STATUS:
        return PROBLEM_TYPES[BY_STATUS[status]]
    return PROBLEM_TYPES["internal-error" if status >= 500 else "invalid-request"]


class Problem(BaseModel):
    """An RFC 9457 problem details object, with Roost's extension members."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="A URI naming the kind of problem (see docs/api.md)")
    title: str = Field(description="A short summary of the kind of problem; the same for every occurrence")
    status: int = Field(ge=100, le=599, description="The HTTP status code")
    detail: str = Field(description="What went wrong with this request, for a person")
    instance: str = Field(description="The request's path")
    message: str = Field(description="The same as detail (kept for existing clients)")
    parameter: str | None = Field(default=None, description="The request parameter or body member at fault")
    error: dict[str, Any] = Field(description="status, message, parameter: the answer's shape before RFC 9457")


def problem_body(
    status: int,
    detail: str,
    instance: str,
    *,
    parameter: str | None = None,
    problem: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem details object (see the module's docstring)."""
    kind = type_for(status, problem)
    legacy: dict[str, Any] = {"status": status, "message": detail}
    if parameter is not None:
        legacy["parameter"] = parameter
    legacy.update(extensions or {})
    body: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "message": detail,
    }
    if parameter is not None:
        body["parameter"] = parameter
    for key, value in (extensions or {}).items():
        body.setdefault(key, value)
    body["error"] = legacy
    return body


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    parameter: str | None = None,
    problem: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The ``application/problem+json`` answer (a 401 also says ``WWW-Authenticate: Bearer``)."""
    body = problem_body(status, detail, request.url.path, parameter=parameter, problem=problem, extensions=extensions)
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, headers=all_headers, media_type=PROBLEM_MEDIA_TYPE)


def _validation_detail(exc: RequestValidationError) -> tuple[str, str | None, list[dict[str, Any]]]:
    """The first error as detail, the parameter it names, and every error as ``errors``."""
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        where = str(loc[0]) if loc else "request"
        names = [part for part in loc[1:] if isinstance(part, str)]  # not list positions
        name = names[-1] if names else (where if loc else None)
        problem = str(err.get("msg", "not valid")).removeprefix("Value error, ")
        errors.append({"location": where, "parameter": name, "problem": problem})
    if not errors:
        return "the request is not valid", None, errors
    first = errors[0]
    parameter = first["parameter"]
    if first["location"] == "body" and parameter == "body":
        return f"body: {first['problem']}", "body", errors
    return f"{parameter}: {first['problem']}", parameter, errors


def _router_detail(request: Request, exc: StarletteHTTPException) -> str:
    if exc.status_code == 404 and exc.detail == "Not Found":
        return f"{request.url.path} is not an endpoint of this API (see /openapi.json)"
    if exc.status_code == 405 and exc.detail == "Method Not Allowed":
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        takes = f"; it takes {allowed}" if allowed else ""
        return f"{request.url.path} does not take {request.method}{takes}"
    return str(exc.detail)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return problem_response(
            request,
            exc.status,
            exc.message,
            parameter=exc.parameter,
            problem=exc.problem,
            extensions=exc.extensions,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, parameter, errors = _validation_detail(exc)
        return problem_response(request, 400, detail, parameter=parameter, extensions={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(request, exc.status_code, _router_detail(request, exc), headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's outermost middleware sends this answer, then re-raises: the server logs the traceback.
        _LOGGER.error("%s %s failed unexpectedly: %s", request.method, request.url.path, type(exc).__name__)
        return problem_response(request, 500, "the cloud could not answer this request; its log says why")
