"""The API's OpenAPI document (/openapi.json): problem responses, security schemes, tags, operation ids.

FastAPI writes the paths and schemas from the routes; :func:`install_openapi` then

* documents errors as ``application/problem+json`` (the ``Problem`` schema) and drops FastAPI's 422,
  which this API never answers (a request that fails validation is a 400 problem);
* documents the OAuth endpoints' errors in RFC 6749's shape instead;
* names the security schemes (a bearer JWT; a session cookie with its CSRF header for unsafe methods)
  and marks the public operations (health, discovery, keys, OAuth, sign-in) as needing none;
* tags operations that have no tag by their path.

Operation ids are the route functions' names (``list_events``; ``oauth_token``, ``auth_signin`` under /oauth/ and
/auth/), unique across the app (a test checks).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from cloud.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES, Problem, type_for

PROBLEM_REF = "#/components/schemas/Problem"
OAUTH_ERROR_REF = "#/components/schemas/OAuthError"
BEARER = "bearerAuth"
SESSION = "sessionCookie"
CSRF = "csrfHeader"
SAFE_METHODS = frozenset({"get", "head", "options"})
_NOT_WORD = re.compile(r"[^a-z0-9]+")

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/jwks.json",
        "/auth/signin",
        "/auth/signout",
        "/oauth/device_authorization",
        "/oauth/token",
        "/oauth/revoke",
        "/oauth/introspect",
    }
)
"""Operations anyone may call (the OAuth endpoints authenticate their clients themselves)."""

OAUTH_PATHS = frozenset({"/oauth/device_authorization", "/oauth/token", "/oauth/revoke", "/oauth/introspect"})
"""RFC 6749 error answers (``error``, ``error_description``), not problem details."""

_TAGS: tuple[tuple[str, str, str], ...] = (
    # (path prefix, tag, its description); the first prefix that fits wins
    ("/api/v1/readings", "readings", "Sensor readings, paged by time"),
    ("/api/v1/gateways/{gateway}/commands", "commands", "Commands to one gateway and their results"),
    ("/api/v1/gateways/{gateway}/", "fleet", "The fleet: registry view, tags, desired state, bulk commands, audit"),
    ("/api/v1/gateways", "gateways", "Gateways: presence, last contact, health, ingest counters"),
    ("/api/v1/fleet", "fleet", ""),
    ("/api/v1/events", "events", "Events and alerts"),
    ("/api/v1/alerts", "events", ""),
    ("/api/v1/bundles", "updates", "Update bundles and campaigns (docs/ota.md)"),
    ("/api/v1/campaigns", "updates", ""),
    ("/api/v1/policies", "policies", "The Cedar policy set: read, replace, history"),
    ("/api/v1/enrollments", "enrollments", "Approving and denying gateways' enrollment codes"),
    ("/api/v1/stats", "operations", "Health, counters and discovery"),
    ("/healthz", "operations", ""),
    ("/.well-known/roost", "operations", ""),
    ("/oauth/", "oauth", "The OAuth 2.0 authorization server (RFC 6749, 8628, 7009, 7662)"),
    ("/.well-known/oauth-authorization-server", "oauth", ""),
    ("/.well-known/openid-configuration", "oauth", ""),
    ("/jwks.json", "oauth", ""),
    ("/auth/", "sessions", "Operators' dashboard sign-in, sessions and tokens"),
)


def problem_responses(*statuses: int | str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status answered with a problem (``"default"`` for any other)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if status == "default":
            description = "Any other error, as problem details"
        else:
            kind = type_for(int(status))
            description = f"{kind.title} ({kind.uri})"
        out[status] = {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}}
    return out


APP_PROBLEMS = problem_responses(400, 401, 403, 429, 500)
"""What every route may answer (FastAPI(responses=...)): routes add their own 404, 409, ... (no "default": a
status a route does not list is a documentation bug, which the fuzz test finds)."""

FILE_RESPONSE: dict[str, Any] = {
    "description": "The file",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
"""A route that answers a file: ``responses={200: FILE_RESPONSE}`` (with ``response_class=FileResponse``)."""


OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/readings"): "list_readings",
    ("GET", "/api/v1/gateways"): "list_gateways",
    ("GET", "/api/v1/stats"): "get_stats",
    ("GET", "/api/v1/policies"): "get_policies",
    ("GET", "/api/v1/policies/history"): "list_policy_versions",
    ("GET", "/healthz"): "get_health",
    ("GET", "/.well-known/roost"): "get_discovery",
    ("GET", "/.well-known/oauth-authorization-server"): "get_oauth_metadata",
    ("GET", "/.well-known/openid-configuration"): "get_openid_configuration",
    ("GET", "/jwks.json"): "get_jwks",
    ("POST", "/api/v1/enrollments/approve"): "approve_enrollment",
    ("POST", "/api/v1/enrollments/deny"): "deny_enrollment",
    ("GET", "/api/v1/fleet/gateways"): "list_fleet_gateways",
    ("PUT", "/api/v1/gateways/{gateway}/tags"): "set_gateway_tags",
    ("GET", "/api/v1/gateways/{gateway}/state"): "get_gateway_state",
    ("PUT", "/api/v1/gateways/{gateway}/desired"): "set_desired_state",
    ("POST", "/api/v1/fleet/commands"): "send_bulk_command",
    ("POST", "/api/v1/gateways/{gateway}/revoke"): "revoke_gateway",
    ("GET", "/api/v1/fleet/audit"): "list_audit_entries",
    ("POST", "/api/v1/bundles"): "upload_bundle",
    ("GET", "/api/v1/bundles/{name}"): "download_bundle",
    ("POST", "/api/v1/campaigns"): "create_campaign",
    ("POST", "/api/v1/campaigns/{cid}/halt"): "halt_campaign",
    ("POST", "/api/v1/campaigns/{cid}/resume"): "resume_campaign",
}
"""Operation ids where the route function's name alone does not say what it does (``create``, ``bulk``)."""


def operation_ids() -> Callable[[APIRoute], str]:
    """An app's ``generate_unique_id_function``: stable, readable operation ids.

    :data:`OPERATION_IDS`' name for the route, else the route function's name (prefixed by ``oauth_`` or
    ``auth_`` under /oauth/ and /auth/); a name taken already by an earlier route gets its path appended.
    """
    taken: dict[str, str] = {}

    def operation_id(route: APIRoute) -> str:
        key = f"{sorted(route.methods or ())} {route.path}"
        first = route.path.lstrip("/").split("/", 1)[0]
        methods = sorted(route.methods or ())
        name = OPERATION_IDS.get((methods[0], route.path), route.name) if len(methods) == 1 else route.name
        if first in {"oauth", "auth"} and not name.startswith(first + "_"):
            name = f"{first}_{name}"
        if taken.setdefault(name, key) != key:
            name = f"{name}_{_NOT_WORD.sub('_', route.path.lower()).strip('_')}"
            taken.setdefault(name, key)
        return name

    return operation_id


def _tag_for(path: str) -> str | None:
    for prefix, tag, _ in _TAGS:
        if path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return tag
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"] and len(parts) > 2:
        return parts[2]  # /api/v1/plans/... -> plans
    if not parts:
        return None
    return _NOT_WORD.sub("-", parts[0].lower()).strip("-") or None  # /portal/... -> portal


def _oauth_responses(responses: dict[str, Any]) -> None:
    oauth = {"content": {"application/json": {"schema": {"$ref": OAUTH_ERROR_REF}}}}
    for status, description in (
        ("400", "An OAuth error (RFC 6749 §5.2, RFC 8628 §3.5)"),
        ("401", "invalid_client"),
        ("429", "slow_down: too many attempts from this address or client"),
        ("503", "temporarily_unavailable"),
    ):
        responses[status] = {"description": description, **oauth}
    responses.pop("403", None)


def _security(path: str, method: str) -> list[dict[str, list[str]]]:
    if path in PUBLIC_PATHS or path.startswith("/.well-known/"):
        return []
    session: dict[str, list[str]] = {SESSION: []} if method in SAFE_METHODS else {SESSION: [], CSRF: []}
    return [{BEARER: []}, session]


def _schemas() -> dict[str, Any]:
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    problem["description"] = "RFC 9457 problem details. type is one of: " + ", ".join(
        t.uri for t in PROBLEM_TYPES.values()
    )
    oauth_error = {
        "title": "OAuthError",
        "type": "object",
        "description": "RFC 6749 §5.2 error answer",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "invalid_request, invalid_grant, slow_down, ..."},
            "error_description": {"type": "string"},
        },
    }
    return {"Problem": problem, "OAuthError": oauth_error}


def _walk_refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _walk_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_refs(value)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document (see the module's docstring)."""
    with warnings.catch_warnings():  # a route taking several methods has one id for all: made unique below
        warnings.filterwarnings("ignore", message="Duplicate Operation ID", category=UserWarning)
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=[{"name": tag, "description": text} for _, tag, text in _TAGS if text],
        )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_schemas())
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from /oauth/token (API clients, operators) or /auth/token",
        },
        SESSION: {
            "type": "apiKey",
            "in": "cookie",
            "name": "roost_session",
            "description": "An operator's dashboard session (POST /auth/signin)",
        },
        CSRF: {
            "type": "apiKey",
            "in": "header",
            "name": "X-Roost-CSRF",
            "description": "The session's CSRF token, needed with the session cookie for unsafe methods",
        },
    }
    seen_ids: set[str] = set()
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if op.get("operationId") in seen_ids:
                op["operationId"] = f"{op['operationId']}_{method}"
            seen_ids.add(op.get("operationId", ""))
            responses: dict[str, Any] = op["responses"]
            responses.pop("422", None)
            if path in OAUTH_PATHS:
                _oauth_responses(responses)
            if "security" not in op:
                op["security"] = _security(path, method)
            if not op.get("tags"):
                tag = _tag_for(path)
                if tag is not None:
                    op["tags"] = [tag]
    for name in ("HTTPValidationError", "ValidationError"):  # only the 422s used them
        rest = {k: v for k, v in doc.items() if k != "components"}, {k: v for k, v in schemas.items() if k != name}
        if f"#/components/schemas/{name}" not in set(_walk_refs(rest)):
            schemas.pop(name, None)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi`'s document at ``app.openapi_url`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
