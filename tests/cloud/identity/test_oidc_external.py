"""An external OpenID provider replaces the cloud's own sign-in, by configuration alone.

The provider is a second Roost cloud (a conformant OpenID provider), on another loopback address so the two
keep their own cookies as two sites would; the first is pointed at it by ``[identity.oidc]``. A browser
(httpx, redirects followed by hand) starts the console's code flow at the first cloud, signs in at the second,
and comes back with the first cloud's own tokens for an operator it made from the ID token's claims.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cloud.config import load, loads
from cloud.identity import admin
from cloud.identity.oidc.relying_party import EXTERNAL_PREFIX
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG
from tests.cloud.identity.conftest import IDENTITY_CONFIG, OPERATOR_PASSWORD, identity_of
from tests.cloud.identity.test_oidc_support import Request, exchange, follow, query_of, sign_in_at

pytestmark = pytest.mark.slow

PROVIDER_HOST = "127.0.0.2"


def _relying_config(issuer: str, extra: str = "") -> str:
    return (
        BASE_CONFIG
        + IDENTITY_CONFIG
        + f"""
[identity.oidc]
issuer = "{issuer}"
client_id = "roost-cloud-a"
client_secret_file = "provider-secret.txt"
scopes = ["openid", "profile", "roost"]
tenant_claim = "tenant"
role_claim = "roles"
role_map = {{ admin = "admin", operator = "operator" }}
{extra}"""
    )


@dataclass
class Pair:
    """The cloud operators use (``rp``) and the cloud it sends them to sign in at (``idp``)."""

    rp: CloudServer
    idp: CloudServer


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    (tmp_path / "idp").mkdir()
    (tmp_path / "rp").mkdir()
    idp_file = tmp_path / "idp" / "cloud.toml"
    idp_file.write_text(BASE_CONFIG.replace("[server]\n", f'[server]\nhost = "{PROVIDER_HOST}"\n', 1))
    idp_config = load(idp_file)
    async with CloudServer(idp_config) as idp:
        idp_db = identity_of(idp).db
        admin.create_tenant(idp_db, "acme")
        admin.ensure_operator(idp_db, "acme", "alice", lambda: OPERATOR_PASSWORD, role="admin")
        admin.ensure_operator(idp_db, "acme", "vera", lambda: OPERATOR_PASSWORD, role="viewer")
        secret_file = tmp_path / "rp" / "provider-secret.txt"
        secret_file.write_text("not-registered-yet\n")
        rp_config = loads(_relying_config(idp.info.base_url), base_dir=tmp_path / "rp")
        async with CloudServer(rp_config) as rp:
            admin.create_tenant(identity_of(rp).db, "acme")
            # The provider's operator registers the relying cloud with the command line.
            out = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "roost.cli", "cloud", "oidc-client", "-c", str(idp_file), "register",
                 "roost-cloud-a", "--redirect-uri", f"{rp.info.base_url}/auth/oidc/callback", "--confidential"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            registered = json.loads(out.stdout)
            assert registered["client"]["confidential"] and registered["client_secret"]
            secret_file.write_text(registered["client_secret"] + "\n")
            yield Pair(rp, idp)


async def _sign_in_through(pair: Pair, browser: httpx.AsyncClient, username: str) -> tuple[httpx.Response, Request]:
    """Start at the relying cloud, sign in at the provider; the relying cloud's last answer."""
    req = Request.console(pair.rp.info.base_url)
    r = await browser.get(req.url)
    assert r.status_code == 302, r.text
    assert r.headers["location"].startswith(f"{pair.idp.info.base_url}/oauth/authorize?")
    asked = query_of(r.headers["location"])
    assert asked["client_id"] == "roost-cloud-a" and asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"] == f"{pair.rp.info.base_url}/auth/oidc/callback" and asked["nonce"]
    page = await browser.get(r.headers["location"])
    r = await sign_in_at(browser, page, tenant="acme", username=username, password=OPERATOR_PASSWORD)
    assert r.status_code == 302 and r.headers["location"].startswith(f"{pair.rp.info.base_url}/auth/oidc/callback?")
    return await follow(browser, r, stop_at=req.redirect_uri), req


async def test_operators_sign_in_at_the_external_provider_and_get_this_clouds_tokens(pair: Pair) -> None:
    rp_base = pair.rp.info.base_url
    async with httpx.AsyncClient(timeout=10.0) as browser:
        r, req = await _sign_in_through(pair, browser, "alice")
        assert r.status_code == 302, r.text
        answer = query_of(r.headers["location"])
        assert answer["state"] == req.params["state"]
        tokens = await exchange(browser, req, answer["code"])
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        # The relying cloud's own operator token, for the operator it made from the provider's claims.
        claims = identity_of(pair.rp).verifier.verify(body["access_token"])
        assert (claims.subject, claims.tenant, claims.roles, claims.issuer) == ("alice", "acme", ("admin",), rp_base)
        r = await browser.get(f"{rp_base}/api/v1/gateways", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert r.status_code == 200, r.text
        made = identity_of(pair.rp).db.operator("alice")
        assert made is not None and made.role == "admin" and made.tenant == "acme"
        assert made.password_hash.startswith(f"{EXTERNAL_PREFIX}{pair.idp.info.base_url}#")
        # No password works for such an operator at the relying cloud.
        r = await browser.post(
            f"{rp_base}/auth/signin", json={"tenant": "acme", "username": "alice", "password": made.password_hash}
        )
        assert r.status_code == 401
        # The relying cloud's session works like a local one: the next authorization needs no provider.
        r = await browser.get(Request.console(rp_base).url)
        assert r.status_code == 302 and r.headers["location"].startswith(f"{rp_base}/console/callback?code=")
        # ... and there is no password form at the relying cloud
        r = await browser.post(f"{rp_base}/oauth/authorize", data={**Request.console(rp_base).params,
                                                                   "tenant": "acme", "username": "alice",
                                                                   "password": OPERATOR_PASSWORD})  # fmt: skip
        assert r.status_code == 403 and "sign-in provider" in r.text
    # Signing in again (another browser) finds the same operator, with the role the provider says now.
    identity_of(pair.idp).db.set_operator_role("alice", "operator")
    async with httpx.AsyncClient(timeout=10.0) as other:
        r, req = await _sign_in_through(pair, other, "alice")
        assert r.status_code == 302 and "code=" in r.headers["location"]
        tokens = await exchange(other, req, query_of(r.headers["location"])["code"])
        assert tokens.status_code == 200, tokens.text
    assert identity_of(pair.rp).verifier.verify(tokens.json()["access_token"]).roles == ("operator",)
    again = identity_of(pair.rp).db.operator("alice")
    assert again is not None and again.role == "operator" and again.created == made.created


async def test_claims_that_do_not_map_are_refused_with_a_clear_message(pair: Pair) -> None:
    async with httpx.AsyncClient(timeout=10.0) as browser:
        r, _ = await _sign_in_through(pair, browser, "vera")  # a viewer: role_map maps admin and operator only
        assert r.status_code == 403
        assert "no Roost role" in r.text and "viewer" in r.text
        assert identity_of(pair.rp).db.operator("vera") is None
        assert (await browser.get(f"{pair.rp.info.base_url}/auth/session")).status_code == 401  # no session


async def test_a_name_taken_by_a_local_operator_is_not_taken_over(pair: Pair) -> None:
    admin.ensure_operator(identity_of(pair.rp).db, "acme", "alice", lambda: "local password 1234", role="viewer")
    async with httpx.AsyncClient(timeout=10.0) as browser:
        r, _ = await _sign_in_through(pair, browser, "alice")
        assert r.status_code == 409 and "belongs to another Roost operator" in r.text


async def test_the_callback_refuses_an_unknown_state_and_a_provider_error(pair: Pair) -> None:
    rp_base = pair.rp.info.base_url
    async with httpx.AsyncClient(timeout=10.0) as browser:
        r = await browser.get(f"{rp_base}/auth/oidc/callback", params={"code": "x", "state": "made-up"})
        assert r.status_code == 400 and "start again" in r.text
        r = await browser.get(
            f"{rp_base}/auth/oidc/callback", params={"error": "access_denied", "error_description": "no", "state": "s"}
        )
        assert r.status_code == 403 and "refused the sign-in" in r.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_an_unreachable_or_wrong_provider_is_named_at_sign_in(tmp_path: Path) -> None:
    (tmp_path / "provider-secret.txt").write_text("secret\n")
    issuer = f"http://127.0.0.1:{_free_port()}"  # nobody listens there
    config = loads(_relying_config(issuer), base_dir=tmp_path)
    async with CloudServer(config) as rp, httpx.AsyncClient(timeout=10.0) as browser:
        r = await browser.get(Request.console(rp.info.base_url).url)
        assert r.status_code == 502 and "cannot be reached" in r.text and issuer in r.text
    # A provider whose discovery document names another issuer (here: this cloud, asked under another path).
    config = loads(BASE_CONFIG + IDENTITY_CONFIG, base_dir=tmp_path / "idp")
    async with CloudServer(config) as idp:
        wrong = loads(_relying_config(f"{idp.info.base_url}/realms/x"), base_dir=tmp_path)
        async with CloudServer(wrong) as rp, httpx.AsyncClient(timeout=10.0) as browser:
            r = await browser.get(Request.console(rp.info.base_url).url)
            assert r.status_code == 502 and "discovery document" in r.text
