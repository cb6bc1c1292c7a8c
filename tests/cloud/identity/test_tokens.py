"""Access tokens and the verifier, refresh rotation and reuse, client credentials, revocation, introspection."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from cloud.identity.errors import InvalidToken
from cloud.identity.verify import TokenVerifier
from cloud.server import CloudServer
from tests.cloud.identity.conftest import client_of, client_token, enroll_by_device, identity_of


def _verifier(cloud: CloudServer, **kwargs: object) -> TokenVerifier:
    identity = identity_of(cloud)
    options: dict[str, object] = {
        "audience": "roost",
        "issuers": {cloud.info.base_url},
        "leeway_s": 60,
        "is_revoked": identity.is_revoked,
    }
    options.update(kwargs)
    return TokenVerifier(identity.keys, **options)  # type: ignore[arg-type]


def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    return info.value.reason


async def test_access_token_has_the_rfc9068_shape(cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud)
    claims = _verifier(cloud).verify(tokens["access_token"])
    raw = claims.claims
    assert set(raw) >= {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "tenant", "roles"}
    assert raw["exp"] - raw["iat"] == 600 and raw["aud"] == "roost"
    header = jwt.decode(tokens["access_token"], identity_of(cloud).keys.public_key_set()).header
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header["kid"]


async def test_verifier_refuses_expired_forged_wrong_audience_wrong_issuer(cloud: CloudServer) -> None:
    token = (await enroll_by_device(cloud))["access_token"]
    good = _verifier(cloud)
    assert good.verify(token).tenant == "acme"
    # Expired: within the leeway it still passes (a Pi's clock), past it it does not.
    assert _verifier(cloud, now=lambda: time.time() + 600 + 30).verify(token)
    assert _reason(_verifier(cloud, now=lambda: time.time() + 600 + 61), token) == "expired"
    assert _reason(_verifier(cloud, audience="someone-else"), token) == "audience"
    assert _reason(_verifier(cloud, issuers={"https://evil.example"}), token) == "issuer"
    # Forged: same claims and kid, signed by another P-256 key.
    claims = good.verify(token).claims
    kid = identity_of(cloud).keys.current_kid
    forged = jwt.encode({"alg": "ES256", "kid": kid, "typ": "at+jwt"}, claims, ECKey.generate_key("P-256"))
    assert _reason(good, forged) == "signature"
    unknown_kid = jwt.encode({"alg": "ES256", "kid": "nope", "typ": "at+jwt"}, claims, ECKey.generate_key("P-256"))
    assert _reason(good, unknown_kid) == "signature"
    # Tampered payload under the real signature.
    head, _, sig = token.split(".")
    other = jwt.encode(
        {"alg": "ES256", "kid": kid, "typ": "at+jwt"}, {**claims, "tenant": "other"}, ECKey.generate_key("P-256")
    )
    assert _reason(good, f"{head}.{other.split('.')[1]}.{sig}") == "signature"
    assert _reason(good, "not-a-jwt") == "malformed"


async def test_refresh_rotates_and_a_replay_revokes_the_family(cloud: CloudServer) -> None:
    first = await enroll_by_device(cloud)
    verifier = _verifier(cloud)
    async with client_of(cloud) as http:

        async def refresh(token: str) -> tuple[int, dict[str, str]]:
            r = await http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "client_id": "roost-gateway", "refresh_token": token},
            )
            return r.status_code, r.json()

        status, second = await refresh(first["refresh_token"])
        assert status == 200 and second["refresh_token"] != first["refresh_token"]
        status, third = await refresh(second["refresh_token"])
        assert status == 200
        assert verifier.verify(third["access_token"]).subject == first["gateway_id"]
        # A replay of an old refresh token (a thief's copy): refused, and the whole family goes.
        status, body = await refresh(first["refresh_token"])
        assert (status, body["error"]) == (400, "invalid_grant")
        status, body = await refresh(third["refresh_token"])
        assert (status, body["error"]) == (400, "invalid_grant")
        assert _reason(verifier, third["access_token"]) == "revoked"
        assert _reason(verifier, first["access_token"]) == "revoked"


async def test_a_second_enrollment_is_another_family(cloud: CloudServer) -> None:
    one = await enroll_by_device(cloud, hardware_id="10000000aaaa0001")
    two = await enroll_by_device(cloud, hardware_id="10000000aaaa0002")
    async with client_of(cloud) as http:
        data = {"grant_type": "refresh_token", "client_id": "roost-gateway"}
        assert (
            await http.post("/oauth/token", data={**data, "refresh_token": one["refresh_token"]})
        ).status_code == 200
        assert (
            await http.post("/oauth/token", data={**data, "refresh_token": one["refresh_token"]})
        ).status_code == 400
        assert (
            await http.post("/oauth/token", data={**data, "refresh_token": two["refresh_token"]})
        ).status_code == 200


async def test_client_credentials(cloud: CloudServer) -> None:
    client_id, secret, token = await client_token(cloud, role="operator")
    claims = _verifier(cloud).verify(token)
    assert (claims.subject, claims.tenant, claims.roles, claims.scope) == (
        client_id,
        "acme",
        ("operator",),
        ("api", "read"),
    )
    async with client_of(cloud) as http:
        r = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "read", "client_id": client_id, "client_secret": secret},
        )
        assert r.status_code == 200 and r.json()["scope"] == "read" and "refresh_token" not in r.json()
        r = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials", "scope": "admin"}, auth=(client_id, secret)
        )
        assert r.json()["error"] == "invalid_scope"
        r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "wrong"))
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        r = await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "roost-gateway"})
        assert r.json()["error"] in ("invalid_client", "unauthorized_client")
        r = await http.post("/oauth/token", data={"grant_type": "password", "username": "x", "password": "y"})
        assert r.json()["error"] == "unsupported_grant_type"


async def test_introspection_and_revocation(cloud: CloudServer) -> None:
    gw = await enroll_by_device(cloud)
    introspector, secret, _ = await client_token(cloud, role="viewer")
    stranger, stranger_secret, _ = await client_token(cloud, tenant="other", role="admin")
    async with client_of(cloud) as http:

        async def introspect(token: str, auth: tuple[str, str] = (introspector, secret)) -> dict[str, object]:
            r = await http.post("/oauth/introspect", data={"token": token}, auth=auth)
            assert r.status_code == 200, r.text
            body: dict[str, object] = r.json()
            return body

        body = await introspect(gw["access_token"])
        assert body["active"] is True and body["sub"] == gw["gateway_id"] and body["tenant"] == "acme"
        assert body["iss"] == cloud.info.base_url and body["roles"] == ["gateway"]
        assert (await introspect(gw["refresh_token"]))["active"] is True
        assert (await introspect("garbage"))["active"] is False
        assert (await introspect(gw["access_token"], (stranger, stranger_secret)))["active"] is False  # other tenant
        r = await http.post("/oauth/introspect", data={"token": gw["access_token"], "client_id": "roost-gateway"})
        assert r.status_code == 401  # public clients may not introspect
        # RFC 7009: the gateway revokes its access token, then its refresh token (and with it the family).
        r = await http.post("/oauth/revoke", data={"token": gw["access_token"], "client_id": "roost-gateway"})
        assert r.status_code == 200
        assert (await introspect(gw["access_token"]))["active"] is False
        assert _reason(_verifier(cloud), gw["access_token"]) == "revoked"
        r = await http.post(
            "/oauth/revoke",
            data={"token": gw["refresh_token"], "token_type_hint": "refresh_token", "client_id": "roost-gateway"},
        )
        assert r.status_code == 200
        assert (await introspect(gw["refresh_token"]))["active"] is False
        r = await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "client_id": "roost-gateway", "refresh_token": gw["refresh_token"]},
        )
        assert r.json()["error"] == "invalid_grant"
        # Revoking an unknown token is not an error (RFC 7009 §2.2).
        assert (
            await http.post("/oauth/revoke", data={"token": "unknown", "client_id": "roost-gateway"})
        ).status_code == 200


async def test_key_rotation_keeps_old_tokens_valid(cloud: CloudServer) -> None:
    identity = identity_of(cloud)
    old_kid = identity.keys.current_kid
    _, _, old_token = await client_token(cloud)
    new_kid = identity.keys.rotate()
    _, _, new_token = await client_token(cloud)
    verifier = _verifier(cloud)
    assert verifier.verify(old_token) and verifier.verify(new_token)
    assert jwt.decode(new_token, identity.keys.public_key_set()).header["kid"] == new_kid != old_kid
    async with client_of(cloud) as http:
        kids = {k["kid"] for k in (await http.get("/jwks.json")).json()["keys"]}
    assert kids == {old_kid, new_kid}
