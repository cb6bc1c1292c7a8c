"""How the cloud serves the console's built files (cloud/console.py), on a made-up build: redirects, the
page, hashed files (gzip when accepted, cached for good), the security headers, and no way out of the folder.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cloud.console import CSP, console_router
from cloud.errors import ApiError

SCRIPT = b"console.log('roost');\n" * 50


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": {"status": exc.status, "message": exc.message}}, status_code=exc.status)


def _client(dist: Path) -> httpx.AsyncClient:
    app = FastAPI()
    app.add_exception_handler(ApiError, _api_error)  # as the cloud's app answers ApiError
    app.include_router(console_router(dist))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080")


def _build(tmp: Path) -> Path:
    dist = tmp / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>Roost console</title>")
    (dist / "assets" / "main-ABC123.js").write_bytes(SCRIPT)
    (dist / "assets" / "main-ABC123.js.gz").write_bytes(gzip.compress(SCRIPT))
    (tmp / "secret.txt").write_text("not for the web")
    return dist


async def _location(client: httpx.AsyncClient, path: str, **params: str) -> str:
    answer = await client.get(path, params=params)
    assert answer.status_code == 302, path
    return answer.headers["location"]


async def test_root_and_the_verification_uri_lead_to_the_console(tmp_path: Path) -> None:
    async with _client(_build(tmp_path)) as client:
        assert await _location(client, "/") == "/console/"
        assert await _location(client, "/console") == "/console/"
        assert await _location(client, "/enroll", user_code="bdfg-hjkl") == "/console/#/enroll/BDFG-HJKL"
        assert await _location(client, "/enroll", user_code="<script>") == "/console/#/enroll"


async def test_the_page_and_its_files_with_security_headers(tmp_path: Path) -> None:
    async with _client(_build(tmp_path)) as client:
        page = await client.get("/console/")
        assert page.status_code == 200 and "Roost console" in page.text
        assert page.headers["content-security-policy"] == CSP and "connect-src 'self'" in CSP
        assert page.headers["cache-control"] == "no-cache"
        assert (await client.get("/console/anything/else")).text == page.text  # the app routes in the page
        packed = await client.get("/console/assets/main-ABC123.js", headers={"Accept-Encoding": "gzip"})
        assert packed.status_code == 200 and packed.headers["content-encoding"] == "gzip"
        assert packed.content == SCRIPT  # decoded by the client
        assert "immutable" in packed.headers["cache-control"]
        assert packed.headers["content-type"].startswith("text/javascript")
        plain = await client.get("/console/assets/main-ABC123.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == SCRIPT


async def test_unknown_and_escaping_names_are_not_found(tmp_path: Path) -> None:
    async with _client(_build(tmp_path)) as client:
        for name in ("main-OLD.js", ".hidden", "main-ABC123.js.gz"):
            answer = await client.get(f"/console/assets/{name}")
            assert answer.status_code == 404, name
        for path in ("/console/assets/..%2F..%2Fsecret.txt", "/console/assets/%2E%2E/%2E%2E/secret.txt"):
            answer = await client.get(path)  # not a file name: the app's page at most, never the file
            assert "not for the web" not in answer.text and "javascript" not in answer.headers["content-type"]


async def test_without_a_build_the_page_says_how_to_build_it(tmp_path: Path) -> None:
    async with _client(tmp_path / "nothing") as client:
        answer = await client.get("/console/")
    assert answer.status_code == 503 and "make console" in answer.text
