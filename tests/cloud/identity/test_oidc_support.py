"""A browser's part of the OpenID Connect code flow, driven with httpx (no tests here: the other test_oidc files
use it). Redirects are followed by hand so each step can be looked at."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

CONSOLE = "roost-console"
MAX_HOPS = 10


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Request:
    """One authorization request of a client: its parameters and the PKCE verifier it keeps."""

    base: str
    client_id: str = CONSOLE
    redirect_uri: str = ""
    scope: str = "openid profile roost"
    verifier: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def console(cls, base: str, **overrides: str) -> Request:
        verifier, challenge = pkce()
        params = {
            "client_id": CONSOLE,
            "redirect_uri": f"{base}/console/callback",
            "response_type": "code",
            "scope": "openid profile roost",
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        drop = [k for k, v in params.items() if v == ""]
        for k in drop:
            del params[k]
        return cls(base, params["client_id"], params.get("redirect_uri", ""), params.get("scope", ""), verifier, params)

    @property
    def url(self) -> str:
        return f"{self.base}/oauth/authorize?{urlencode(self.params)}"


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.labels: list[str] = []
        self._label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input":
            self.fields[a.get("name", "")] = a.get("value", "")
        elif tag == "label":
            self._label = True
        if tag in ("link", "script", "img", "iframe"):
            raise AssertionError(f"the page loads a resource: <{tag} {a}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label = False

    def handle_data(self, data: str) -> None:
        if self._label and data.strip():
            self.labels.append(data.strip())


def form_of(html: str) -> _Form:
    """The page's form: its action, fields (hidden ones with their values) and labels."""
    parser = _Form()
    parser.feed(html)
    return parser


def query_of(location: str) -> dict[str, str]:
    """A redirect's query parameters (one value each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def sign_in_at(
    http: httpx.AsyncClient, response: httpx.Response, *, tenant: str, username: str, password: str
) -> httpx.Response:
    """Fill in and post the sign-in form ``response`` shows; the answer (a redirect when it worked)."""
    assert response.status_code in (200, 401), response.text  # 401: the form again, after a wrong password
    assert response.headers["content-type"].startswith("text/html")
    form = form_of(response.text)
    assert form.labels == ["Tenant", "Username", "Password"]
    data = {**form.fields, "tenant": tenant, "username": username, "password": password}
    url = httpx.URL(str(response.url)).join(form.action)
    return await http.post(url, data=data)


async def follow(http: httpx.AsyncClient, response: httpx.Response, *, stop_at: str) -> httpx.Response:
    """Follow redirects until one points at a URL starting with ``stop_at`` (returned, not requested)."""
    for _ in range(MAX_HOPS):
        if response.status_code != 302:
            return response
        location = response.headers["location"]
        if location.startswith(stop_at):
            return response
        response = await http.get(location)
    raise AssertionError("too many redirects")


async def code_flow(
    http: httpx.AsyncClient, req: Request, *, tenant: str, username: str, password: str
) -> dict[str, str]:
    """Authorize (signing in at the form), and answer the redirect's parameters (code and state)."""
    response = await http.get(req.url)
    if response.status_code == 200:
        response = await sign_in_at(http, response, tenant=tenant, username=username, password=password)
    response = await follow(http, response, stop_at=req.redirect_uri)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(req.redirect_uri + "?"), location
    return query_of(location)


async def exchange(http: httpx.AsyncClient, req: Request, code: str, **overrides: str) -> httpx.Response:
    """POST /oauth/token with the code and the request's verifier (overrides change the form)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": req.redirect_uri,
        "client_id": req.client_id,
        "code_verifier": req.verifier,
    }
    form.update(overrides)
    return await http.post(f"{req.base}/oauth/token", data={k: v for k, v in form.items() if v != ""})


async def console_tokens(
    base: str, *, tenant: str, username: str, password: str, http: httpx.AsyncClient | None = None
) -> tuple[dict[str, Any], Request]:
    """The console's whole sign-in: (the token response, the request)."""
    own = http is None
    client = http or httpx.AsyncClient(timeout=5.0)
    try:
        req = Request.console(base)
        answer = await code_flow(client, req, tenant=tenant, username=username, password=password)
        assert answer["state"] == req.params["state"]
        response = await exchange(client, req, answer["code"])
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens, req
    finally:
        if own:
            await client.aclose()
