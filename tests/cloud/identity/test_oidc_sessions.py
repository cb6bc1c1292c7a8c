"""Sessions and sign-out with OpenID Connect, against real servers: a session and its tokens survive a restart
of the cloud; signing out (POST /auth/signout, or the end_session endpoint) revokes the session, its access
tokens (the API answers 401) and refresh tokens, and closes an MQTT connection opened with its token."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from cloud.config import loads
from cloud.identity import admin
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, mqtt
from tests.cloud.identity.conftest import IDENTITY_CONFIG, OPERATOR_PASSWORD, identity_of
from tests.cloud.identity.test_oidc_support import Request, console_tokens, query_of

pytestmark = pytest.mark.slow


async def _gateways(base: str, token: str) -> int:
    async with httpx.AsyncClient(timeout=5.0) as http:
        r = await http.get(f"{base}/api/v1/gateways", headers={"Authorization": f"Bearer {token}"})
        return r.status_code


async def _refresh(base: str, refresh_token: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as http:
        return await http.post(
            f"{base}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "roost-console"},
        )


async def _closed_within(client: aiomqtt.Client, seconds: float) -> float:
    """Seconds until the broker closes ``client``'s connection (AssertionError after ``seconds``)."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            async for _message in client.messages:
                pass
    except aiomqtt.MqttError:
        return time.monotonic() - start
    except TimeoutError:
        raise AssertionError(f"the MQTT connection is still open after {seconds} s") from None
    raise AssertionError("the message stream ended without an error")


async def test_a_session_and_its_tokens_survive_a_restart(tmp_path: Path) -> None:
    config = loads(BASE_CONFIG + IDENTITY_CONFIG, base_dir=tmp_path)
    async with httpx.AsyncClient(timeout=5.0) as browser:
        async with CloudServer(config) as first:
            admin.create_tenant(identity_of(first).db, "acme")
            admin.ensure_operator(identity_of(first).db, "acme", "alice", lambda: OPERATOR_PASSWORD, role="admin")
            base = first.info.base_url
            tokens, _ = await console_tokens(
                base, tenant="acme", username="alice", password=OPERATOR_PASSWORD, http=browser
            )
        # Same state folder, a new process-equivalent (new server, new port: the issuer is remembered).
        async with CloudServer(config) as second:
            base2 = second.info.base_url
            assert await _gateways(base2, tokens["access_token"]) == 200  # the key ring and issuers persisted
            r = await _refresh(base2, tokens["refresh_token"])
            assert r.status_code == 200, r.text
            # the browser's session cookie still signs it in: a code at once, no form
            cookie = browser.cookies.get("roost_session")
            assert cookie
            r = await browser.get(Request.console(base2).url)
            assert r.status_code == 302 and "code=" in r.headers["location"], r.text
            r = await browser.get(f"{base2}/auth/session")
            assert r.status_code == 200 and r.json()["operator"] == "alice"


async def test_signing_out_revokes_the_session_its_tokens_and_closes_mqtt(cloud: CloudServer) -> None:
    admin.ensure_operator(identity_of(cloud).db, "acme", "alice", lambda: OPERATOR_PASSWORD, role="admin")
    base = cloud.info.base_url
    async with httpx.AsyncClient(timeout=5.0) as browser:
        tokens, _ = await console_tokens(
            base, tenant="acme", username="alice", password=OPERATOR_PASSWORD, http=browser
        )
        csrf = browser.cookies["roost_csrf"]
        minted = await browser.post(f"{base}/auth/token", headers={"X-Roost-CSRF": csrf})  # the older way
        assert minted.status_code == 200
        other_tokens, _ = await console_tokens(  # another browser's session stays signed in
            base, tenant="acme", username="alice", password=OPERATOR_PASSWORD
        )
        async with mqtt(cloud, "console-alice", username="alice", password=tokens["access_token"]) as client:
            await client.subscribe("roost/acme/#", qos=1)
            r = await browser.post(f"{base}/auth/signout", headers={"X-Roost-CSRF": csrf})
            assert r.status_code == 204
            closed_after = await _closed_within(client, 3.0)
        assert closed_after <= 2.0, closed_after
        assert await _gateways(base, tokens["access_token"]) == 401
        assert await _gateways(base, minted.json()["access_token"]) == 401
        r = await _refresh(base, tokens["refresh_token"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert (await browser.get(f"{base}/auth/session")).status_code == 401
        with pytest.raises(aiomqtt.MqttError):
            async with mqtt(cloud, "console-alice", username="alice", password=tokens["access_token"]):
                pass
    assert await _gateways(base, other_tokens["access_token"]) == 200


async def test_end_session_with_an_id_token_hint_signs_out_and_returns_to_the_console(cloud: CloudServer) -> None:
    admin.ensure_operator(identity_of(cloud).db, "acme", "alice", lambda: OPERATOR_PASSWORD, role="admin")
    base = cloud.info.base_url
    async with httpx.AsyncClient(timeout=5.0) as browser:
        tokens, _ = await console_tokens(
            base, tenant="acme", username="alice", password=OPERATOR_PASSWORD, http=browser
        )
        # without a hint: a confirmation page, nothing ended yet
        r = await browser.get(f"{base}/oauth/end_session")
        assert r.status_code == 200 and "Sign out of Roost?" in r.text
        assert await _gateways(base, tokens["access_token"]) == 200
        # an unregistered post-logout URI is refused
        r = await browser.get(
            f"{base}/oauth/end_session",
            params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"},
        )
        assert r.status_code == 400 and "location" not in r.headers
        assert await _gateways(base, tokens["access_token"]) == 200
        r = await browser.get(
            f"{base}/oauth/end_session",
            params={
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": f"{base}/console/",
                "state": "bye",
            },
        )
        assert r.status_code == 302 and r.headers["location"] == f"{base}/console/?state=bye"
        assert await _gateways(base, tokens["access_token"]) == 401
        assert (await _refresh(base, tokens["refresh_token"])).status_code == 400
        # the browser is signed out: the next authorization request shows the form
        req = Request.console(base)
        r = await browser.get(req.url)
        assert r.status_code == 200 and "<form" in r.text


async def test_end_session_by_hint_alone_ends_the_session_that_signed_in(cloud: CloudServer) -> None:
    """A console that lost its cookie still signs out with the ID token: its ``sid`` names the session."""
    admin.ensure_operator(identity_of(cloud).db, "acme", "alice", lambda: OPERATOR_PASSWORD, role="admin")
    base = cloud.info.base_url
    async with httpx.AsyncClient(timeout=5.0) as browser:
        tokens, _ = await console_tokens(
            base, tenant="acme", username="alice", password=OPERATOR_PASSWORD, http=browser
        )
        async with httpx.AsyncClient(timeout=5.0) as elsewhere:
            r = await elsewhere.get(f"{base}/oauth/end_session", params={"id_token_hint": tokens["id_token"]})
            assert r.status_code == 200 and "signed out" in r.text
        assert await _gateways(base, tokens["access_token"]) == 401
        r = await browser.get(Request.console(base).url)
        assert r.status_code == 200 and "<form" in r.text  # the browser's session ended too
        r = await browser.get(f"{base}/oauth/end_session", params={"id_token_hint": "x.y.z"})
        assert r.status_code == 400


async def test_a_disabled_operator_cannot_refresh_or_use_a_code(cloud: CloudServer) -> None:
    admin.ensure_operator(identity_of(cloud).db, "acme", "alice", lambda: OPERATOR_PASSWORD, role="admin")
    base = cloud.info.base_url
    async with httpx.AsyncClient(timeout=5.0) as browser:
        tokens, _ = await console_tokens(
            base, tenant="acme", username="alice", password=OPERATOR_PASSWORD, http=browser
        )
        req = Request.console(base)
        r = await browser.get(req.url)
        code = query_of(r.headers["location"])["code"]
    admin.disable_operator(identity_of(cloud).db, "acme", "alice")
    r = await _refresh(base, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    async with httpx.AsyncClient(timeout=5.0) as http:
        r = await http.post(
            f"{base}/oauth/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
                  "client_id": "roost-console", "code_verifier": req.verifier},
        )  # fmt: skip
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_tokens_of_an_expired_session_refresh_no_more(tmp_path: Path) -> None:
    config = loads(BASE_CONFIG + IDENTITY_CONFIG + "session_ttl_s = 2\n", base_dir=tmp_path)
    async with CloudServer(config) as server, httpx.AsyncClient(timeout=5.0) as browser:
        admin.create_tenant(identity_of(server).db, "acme")
        admin.ensure_operator(identity_of(server).db, "acme", "alice", lambda: OPERATOR_PASSWORD, role="admin")
        base = server.info.base_url
        tokens, _ = await console_tokens(
            base, tenant="acme", username="alice", password=OPERATOR_PASSWORD, http=browser
        )
        r = await _refresh(base, tokens["refresh_token"])
        assert r.status_code == 200, r.text
        await asyncio.sleep(2.2)
        r = await _refresh(base, r.json()["refresh_token"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert "session has ended" in r.json()["error_description"]
        r = await browser.get(Request.console(base).url)
        assert r.status_code == 200 and "<form" in r.text  # and the browser must sign in again
