"""The cloud as an OpenID provider, over HTTP against a real server: discovery, the code flow with PKCE, the
ID token, userinfo, refresh, and every refusal with its OAuth error code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from cloud.config import loads
from cloud.identity import admin
from cloud.identity.oidc.clients import register_client
from cloud.identity.oidc.store import OidcStore
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG
from tests.cloud.identity.conftest import IDENTITY_CONFIG, OPERATOR_PASSWORD, client_of, identity_of
from tests.cloud.identity.test_oidc_support import (
    Request,
    code_flow,
    console_tokens,
    exchange,
    form_of,
    query_of,
    sign_in_at,
)


def _alice(server: CloudServer, role: str = "admin") -> None:
    admin.ensure_operator(identity_of(server).db, "acme", "alice", lambda: OPERATOR_PASSWORD, role=role)


async def _tokens(server: CloudServer, http: httpx.AsyncClient | None = None) -> tuple[dict[str, Any], Request]:
    _alice(server)
    return await console_tokens(
        server.info.base_url, tenant="acme", username="alice", password=OPERATOR_PASSWORD, http=http
    )


async def test_discovery_document_names_the_endpoints_and_what_is_supported(cloud: CloudServer) -> None:
    base = cloud.info.base_url
    async with client_of(cloud) as http:
        r = await http.get("/.well-known/openid-configuration")
        assert r.status_code == 200
        doc = r.json()
        assert doc["issuer"] == base
        for key, path in (
            ("authorization_endpoint", "/oauth/authorize"),
            ("token_endpoint", "/oauth/token"),
            ("userinfo_endpoint", "/oauth/userinfo"),
            ("jwks_uri", "/jwks.json"),
            ("end_session_endpoint", "/oauth/end_session"),
            ("revocation_endpoint", "/oauth/revoke"),
        ):
            assert doc[key] == base + path
            if key != "token_endpoint" and key != "revocation_endpoint":  # the others are POST-only
                assert (await http.get(doc[key])).status_code != 404, key
        assert doc["scopes_supported"] == ["openid", "profile", "roost"]
        assert doc["response_types_supported"] == ["code"]
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
        assert {"authorization_code", "refresh_token"} <= set(doc["grant_types_supported"])
        assert doc["token_endpoint_auth_methods_supported"] == ["none", "client_secret_basic", "client_secret_post"]
        jwks = (await http.get(doc["jwks_uri"])).json()
        assert all(k["alg"] == "ES256" for k in jwks["keys"])


async def test_code_flow_with_pkce_gives_operator_tokens_an_id_token_and_userinfo(cloud: CloudServer) -> None:
    base = cloud.info.base_url
    async with httpx.AsyncClient(timeout=5.0) as browser:
        _alice(cloud)
        req = Request.console(base)
        page = await browser.get(req.url)
        assert page.status_code == 200 and "Sign in to Roost" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert form_of(page.text).action == "/oauth/authorize"
        answer = await sign_in_at(browser, page, tenant="acme", username="alice", password=OPERATOR_PASSWORD)
        assert answer.status_code == 302
        assert "roost_session" in answer.cookies  # a dashboard session too
        params = query_of(answer.headers["location"])
        assert answer.headers["location"].startswith(f"{base}/console/callback?")
        assert params["state"] == req.params["state"] and len(params["code"]) >= 43
        r = await exchange(browser, req, params["code"])
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        tokens = r.json()
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "openid profile roost"
    assert tokens["expires_in"] == 600 and tokens["refresh_token"]

    # The access token is the operator token the API and the broker accept.
    claims = identity_of(cloud).verifier.verify(tokens["access_token"])
    assert (claims.subject, claims.tenant, claims.roles, claims.client_id) == (
        "alice",
        "acme",
        ("admin",),
        "roost-console",
    )
    async with client_of(cloud) as http:
        r = await http.get("/api/v1/gateways", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert r.status_code == 200, r.text
        # The ID token verifies with the published keys and says who, for whom, and for which request.
        jwks = KeySet.import_key_set((await http.get("/jwks.json")).json())
        id_token = jwt.decode(tokens["id_token"], jwks, algorithms=["ES256"])
        assert id_token.header["kid"] in {k["kid"] for k in (await http.get("/jwks.json")).json()["keys"]}
        c = id_token.claims
        assert (c["iss"], c["sub"], c["aud"], c["azp"]) == (base, "alice", "roost-console", "roost-console")
        assert c["nonce"] == req.params["nonce"] and c["tenant"] == "acme" and c["roles"] == ["admin"]
        assert c["iat"] <= c["exp"] and abs(c["auth_time"] - c["iat"]) < 10 and c["at_hash"] and c["sid"]
        jwt.JWTClaimsRegistry(exp={"essential": True}, aud={"essential": True, "value": "roost-console"}).validate(c)
        # An ID token is not an access token.
        r = await http.get("/api/v1/gateways", headers={"Authorization": f"Bearer {tokens['id_token']}"})
        assert r.status_code == 401
        # userinfo
        r = await http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "sub": "alice",
            "preferred_username": "alice",
            "name": "alice",
            "tenant": "acme",
            "roles": ["admin"],
        }
        r = await http.get("/oauth/userinfo")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = await http.get("/oauth/userinfo", headers={"Authorization": "Bearer not.a.token"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        # An operator token without the openid scope (POST /auth/token's) is not enough for userinfo.
        minted = admin.operator_token(identity_of(cloud).db, "acme", "alice", ttl_s=60, issuer=base,
                                      audience="roost", keep_retired_s=3600)  # fmt: skip
        r = await http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {minted.access_token}"})
        assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"

        # Refresh rotates like the gateways' refresh; a replay of the old one revokes the family.
        r = await http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "roost-console",
            },
        )
        assert r.status_code == 200, r.text
        fresh = r.json()
        assert fresh["refresh_token"] != tokens["refresh_token"]
        assert identity_of(cloud).verifier.verify(fresh["access_token"]).subject == "alice"
        r = await http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "roost-console",
            },
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = await http.get("/api/v1/gateways", headers={"Authorization": f"Bearer {fresh['access_token']}"})
        assert r.status_code == 401


async def test_a_signed_in_browser_gets_its_code_without_the_form(cloud: CloudServer) -> None:
    base = cloud.info.base_url
    async with httpx.AsyncClient(timeout=5.0) as browser:
        await _tokens(cloud, browser)
        req = Request.console(base)
        r = await browser.get(req.url)
        assert r.status_code == 302 and r.headers["location"].startswith(f"{base}/console/callback?code=")
        # prompt=login asks again; prompt=none without a session is login_required, to the client
        r = await browser.get(Request.console(base, prompt="login").url)
        assert r.status_code == 200 and "<form" in r.text
    async with httpx.AsyncClient(timeout=5.0) as stranger:
        req = Request.console(base, prompt="none")
        r = await stranger.get(req.url)
        assert r.status_code == 302
        assert query_of(r.headers["location"]) == {"error": "login_required", "state": req.params["state"]} | {
            k: v for k, v in query_of(r.headers["location"]).items() if k == "error_description"
        }


async def test_a_wrong_password_shows_the_form_again_without_a_code(cloud: CloudServer) -> None:
    _alice(cloud)
    async with httpx.AsyncClient(timeout=5.0) as browser:
        req = Request.console(cloud.info.base_url)
        page = await browser.get(req.url)
        r = await sign_in_at(browser, page, tenant="acme", username="alice", password="not the password")
        assert r.status_code == 401 and "Wrong tenant, username or password." in r.text
        assert "roost_session" not in r.cookies
        r = await sign_in_at(browser, page, tenant="other", username="alice", password=OPERATOR_PASSWORD)
        assert r.status_code == 401  # the right password in another tenant
        # the form keeps the request: signing in from the error page works
        r = await sign_in_at(browser, r, tenant="acme", username="alice", password=OPERATOR_PASSWORD)
        assert r.status_code == 302 and "code=" in r.headers["location"]


async def test_the_token_endpoint_refuses_a_wrong_verifier_a_reused_code_and_another_redirect_uri(
    cloud: CloudServer,
) -> None:
    _alice(cloud)
    base = cloud.info.base_url
    async with httpx.AsyncClient(timeout=5.0) as browser:
        req = Request.console(base)
        code = (await code_flow(browser, req, tenant="acme", username="alice", password=OPERATOR_PASSWORD))["code"]
        r = await exchange(browser, req, code, code_verifier="w" * 50)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        r = await exchange(browser, req, code, code_verifier="")
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        r = await exchange(browser, req, code, redirect_uri=f"{base}/elsewhere")
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        r = await exchange(browser, req, code, client_id="roost-gateway")
        assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_grant", "unauthorized_client")
        good = await exchange(browser, req, code)
        assert good.status_code == 200, good.text
        access = good.json()["access_token"]
        # used once; a second use is refused and revokes what the first one gave
        again = await exchange(browser, req, code)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        r = await browser.get(f"{base}/api/v1/gateways", headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 401
        r = await exchange(browser, req, "no-such-code")
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_the_authorization_endpoint_refuses_bad_requests(cloud: CloudServer) -> None:
    base = cloud.info.base_url
    callback = f"{base}/console/callback"
    async with httpx.AsyncClient(timeout=5.0) as browser:
        # Unknown client or unregistered redirect URI: an error page, never a redirect.
        for overrides in ({"client_id": "nobody"}, {"redirect_uri": "https://evil.example/cb"},
                          {"redirect_uri": f"{base}/console/callback/x"}, {"redirect_uri": ""}):  # fmt: skip
            r = await browser.get(Request.console(base, **overrides).url)
            assert r.status_code == 400 and "location" not in r.headers, overrides
            assert r.headers["content-type"].startswith("text/html")
        # Known client and redirect URI: the error goes back to the client, with its state.
        for overrides, error in (
            ({"code_challenge_method": "plain"}, "invalid_request"),
            ({"code_challenge_method": ""}, "invalid_request"),
            ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request"),
            ({"code_challenge": "short"}, "invalid_request"),
            ({"nonce": ""}, "invalid_request"),
            ({"scope": "profile roost"}, "invalid_request"),
        ):
            req = Request.console(base, **overrides)
            r = await browser.get(req.url)
            assert r.status_code == 302, (overrides, r.text)
            assert r.headers["location"].startswith(callback + "?")
            answer = query_of(r.headers["location"])
            assert answer["error"] == error and answer["state"] == req.params["state"], (overrides, answer)
        req = Request.console(base, state="")
        r = await browser.get(req.url)
        assert r.status_code == 302 and query_of(r.headers["location"])["error"] == "invalid_request"
        assert "state" not in query_of(r.headers["location"])
        r = await browser.get(f"{Request.console(base).url}&state=twice")
        assert r.status_code == 400  # a repeated parameter
        r = await browser.get(Request.console(base, response_type="token").url)
        assert r.status_code in (302, 400) and "unsupported_response_type" in (r.headers.get("location", "") + r.text)


@pytest.fixture
async def quick_codes(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A cloud whose authorization codes live one second."""
    config = loads(BASE_CONFIG + IDENTITY_CONFIG + "authorization_code_ttl_s = 1\n", base_dir=tmp_path)
    async with CloudServer(config) as server:
        admin.create_tenant(identity_of(server).db, "acme")
        yield server


@pytest.mark.slow
async def test_an_expired_code_is_refused(quick_codes: CloudServer) -> None:
    _alice(quick_codes)
    async with httpx.AsyncClient(timeout=5.0) as browser:
        req = Request.console(quick_codes.info.base_url)
        code = (await code_flow(browser, req, tenant="acme", username="alice", password=OPERATOR_PASSWORD))["code"]
        await asyncio.sleep(1.2)
        r = await exchange(browser, req, code)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert "expired" in r.json()["error_description"]


async def test_a_confidential_client_authenticates_and_the_console_revokes_its_tokens(cloud: CloudServer) -> None:
    """A third-party client with a secret; and /oauth/revoke now knows roost-console (a public client)."""
    _alice(cloud)
    base = cloud.info.base_url
    store = OidcStore(identity_of(cloud).db.path)
    secret = register_client(store, "grafana", ["https://grafana.example/cb"], confidential=True)
    assert secret is not None
    api_client, _ = admin.create_client(identity_of(cloud).db, "acme", role="viewer", scopes=["api"])
    for taken in ("alice", api_client.client_id, "roost-gateway"):  # an operator's name, an API client's id
        with pytest.raises(ValueError, match=r"choose another client id|reserved"):
            register_client(store, taken, ["https://elsewhere.example/cb"])
    with pytest.raises(ValueError, match="fragment"):
        register_client(store, "app", ["https://app.example/cb#x"])
    async with httpx.AsyncClient(timeout=5.0) as browser:
        req = Request.console(base, client_id="grafana", redirect_uri="https://grafana.example/cb", scope="openid")
        code = (await code_flow(browser, req, tenant="acme", username="alice", password=OPERATOR_PASSWORD))["code"]
        r = await exchange(browser, req, code, client_id="")
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = await browser.post(
            f"{base}/oauth/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
                  "code_verifier": req.verifier},
            auth=("grafana", secret),
        )  # fmt: skip
        assert r.status_code == 200, r.text
        claims = jwt.decode(
            r.json()["id_token"], KeySet.import_key_set((await browser.get(f"{base}/jwks.json")).json())
        )
        assert claims.claims["aud"] == "grafana" and "tenant" not in claims.claims  # no 'roost' scope asked

        tokens, _ = await _tokens(cloud, browser)
        r = await browser.post(
            f"{base}/oauth/revoke", data={"token": tokens["access_token"], "client_id": "roost-console"}
        )
        assert r.status_code == 200, r.text
        r = await browser.get(f"{base}/api/v1/gateways", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert r.status_code == 401
    store.close()


@pytest.mark.slow
async def test_failed_sign_ins_at_the_form_are_throttled_with_the_password_sign_in(cloud: CloudServer) -> None:
    _alice(cloud)
    base = cloud.info.base_url
    async with httpx.AsyncClient(timeout=5.0) as browser:
        req = Request.console(base)
        page = await browser.get(req.url)
        codes = []
        for _ in range(8):  # the test cloud's burst is 6
            r = await sign_in_at(browser, page, tenant="acme", username="alice", password="wrong password!")
            codes.append(r.status_code)
        assert codes[:6] == [401] * 6 and codes[-1] == 429, codes
        r = await sign_in_at(browser, page, tenant="acme", username="alice", password=OPERATOR_PASSWORD)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # even the right password, for now
        r = await browser.post(
            f"{base}/auth/signin", json={"tenant": "acme", "username": "alice", "password": OPERATOR_PASSWORD}
        )
        assert r.status_code == 429  # one budget for both ways of typing a password
