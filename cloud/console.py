"""The console (the operators' web app) as the cloud serves it: ``/`` leads to ``/console/``, and the device
flow's verification URI ``/enroll?user_code=...`` to its enrollment page with the code filled in.

The files are what ``make console`` builds from ``console/`` (npm, esbuild) into ``cloud/console_dist``:
``index.html``, hashed scripts and styles under ``assets/`` (each with a gzip copy, sent to browsers that
accept gzip), and ``manifest.json``. Hashed files are cached for a year; ``index.html`` never is. Every
answer carries a Content-Security-Policy that lets the page load nothing from anywhere but this server.
Without a build, ``/console/`` answers 503 with a page that says how to build it.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from cloud.errors import ApiError

DIST = Path(__file__).resolve().parent / "console_dist"
PREFIX = "/console"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_USER_CODE = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Roost console</title></head>
<body><main><h1>The console is not built</h1>
<p>This cloud has no console files. Build them with <code>make console</code> (it needs Node.js and npm),
then reload this page. The API works without them.</p></main></body></html>
"""


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


def console_router(dist: Path = DIST) -> APIRouter:
    """The console's routes over the built files in ``dist``."""
    router = APIRouter(include_in_schema=False)

    def index() -> Response:
        page = dist / "index.html"
        if not page.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503, headers={**_SECURITY, "Cache-Control": "no-store"})
        return FileResponse(
            page, media_type="text/html; charset=utf-8", headers={**_SECURITY, "Cache-Control": "no-cache"}
        )

    @router.get("/")
    async def root() -> RedirectResponse:
        """The console."""
        return RedirectResponse(f"{PREFIX}/", status_code=302)

    @router.get("/enroll")
    async def enroll(user_code: str | None = None) -> RedirectResponse:
        """The device flow's verification URI: the console's enrollment page, with the gateway's code filled in."""
        code = f"/{user_code.upper()}" if user_code and _USER_CODE.fullmatch(user_code) else ""
        return RedirectResponse(f"{PREFIX}/#/enroll{code}", status_code=302)

    @router.get(PREFIX)
    async def console_bare() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=302)

    @router.get(f"{PREFIX}/")
    async def console_index() -> Response:
        return index()

    @router.get(f"{PREFIX}/assets/{{name}}")
    async def asset(name: str, request: Request) -> Response:
        """A built file (hashed name: cached for a year), gzip-compressed when the browser accepts it."""
        if not _ASSET_NAME.fullmatch(name) or name.endswith(".gz"):
            raise ApiError(404, f"no console file {name!r}")
        path = dist / "assets" / name
        if not path.is_file():
            raise ApiError(404, f"no console file {name!r}: the console may have been rebuilt, reload the page")
        media = _TYPES.get(path.suffix, "application/octet-stream")
        headers = {**_SECURITY, "Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
        packed = path.with_name(name + ".gz")
        if _accepts_gzip(request) and packed.is_file():
            return FileResponse(packed, media_type=media, headers={**headers, "Content-Encoding": "gzip"})
        return FileResponse(path, media_type=media, headers=headers)

    @router.get(PREFIX + "/{rest:path}")
    async def console_page(rest: str) -> Response:
        """Any other path under the console is the app itself (it routes in the page)."""
        return index()

    return router
