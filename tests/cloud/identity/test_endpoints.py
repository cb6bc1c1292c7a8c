"""Metadata, JWKS, the device flow end to end, and enrollment approval, over HTTP against a real cloud."""

from __future__ import annotations

from pathlib import Path

from cloud.config import loads
from cloud.identity.verify import StaticKeys, TokenVerifier
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, TOKEN
from tests.cloud.identity.conftest import (
    DEVICE_GRANT,
    client_of,
    client_token,
    enroll_by_device,
    identity_of,
    operator_token,
    sign_in,
)


async def test_metadata_names_every_endpoint_under_the_issuer(cloud: CloudServer) -> None:
    base = cloud.info.base_url
    async with client_of(cloud) as http:
        meta = (await http.get("/.well-known/oauth-authorization-server")).json()
        discovery = (await http.get("/.well-known/roost")).json()
    assert meta["issuer"] == base
    assert meta["token_endpoint"] == f"{base}/oauth/token"
    assert meta["jwks_uri"] == f"{base}/jwks.json"
    assert meta["device_authorization_endpoint"] == f"{base}/oauth/device_authorization"
    assert meta["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert meta["introspection_endpoint"] == f"{base}/oauth/introspect"
    assert set(meta["grant_types_supported"]) >= {DEVICE_GRANT, "refresh_token", "client_credentials"}
    assert discovery["issuer"] == base


async def test_jwks_publishes_public_p256_keys_only(cloud: CloudServer) -> None:
    async with client_of(cloud) as http:
        jwks = (await http.get("/jwks.json")).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and key["kid"]
    assert "d" not in key
    assert key["kid"] == identity_of(cloud).keys.current_kid


async def test_identity_disabled_serves_no_oauth_endpoints(tmp_path: Path) -> None:
    config = loads(BASE_CONFIG + "\n[identity]\nenabled = false\n", base_dir=tmp_path)
    async with CloudServer(config) as server:
        assert server.identity is None
        async with client_of(server) as http:
            assert (await http.get("/jwks.json")).status_code == 404
            assert "issuer" not in (await http.get("/.well-known/roost")).json()


async def test_device_flow_pending_slow_down_approve_tokens(cloud: CloudServer) -> None:
    admin_token = await operator_token(cloud)
    async with client_of(cloud) as http:
        r = await http.post(
            "/oauth/device_authorization",
            data={"client_id": "roost-gateway", "hardware_id": "10000000cafe0001", "public_key": "PUBKEY"},
        )
        assert r.status_code == 200
        code = r.json()
        user_code = code["user_code"]
        assert len(user_code) == 9 and user_code[4] == "-"
        assert set(user_code.replace("-", "")) <= set("BCDFGHJKLMNPQRSTVWXZ")
        assert code["verification_uri_complete"].endswith(user_code)
        assert code["expires_in"] == 600 and code["interval"] == 5
        poll = {"grant_type": DEVICE_GRANT, "client_id": "roost-gateway", "device_code": code["device_code"]}
        r = await http.post("/oauth/token", data=poll)
        assert (r.status_code, r.json()["error"]) == (400, "authorization_pending")
        r = await http.post("/oauth/token", data=poll)
        assert (r.status_code, r.json()["error"]) == (400, "slow_down")
        approve = {"user_code": user_code.lower().replace("-", ""), "tenant": "acme", "gateway_id": "pi-kitchen"}
        r = await http.post(
            "/api/v1/enrollments/approve", json=approve, headers={"Authorization": f"Bearer {admin_token}"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["gateway_id"] == "pi-kitchen"
        r = await http.post("/oauth/token", data=poll)
        assert r.status_code == 200, r.text
        tokens = r.json()
        assert tokens["gateway_id"] == "pi-kitchen" and tokens["tenant"] == "acme" and tokens["refresh_token"]
        assert r.headers["cache-control"] == "no-store"
        r = await http.post("/oauth/token", data=poll)  # a device code is exchanged once
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        jwks = (await http.get("/jwks.json")).json()
    verifier = TokenVerifier(StaticKeys(jwks), audience="roost", issuers={cloud.info.base_url})
    claims = verifier.verify(tokens["access_token"])
    assert (claims.subject, claims.tenant, claims.roles, claims.client_id) == (
        "pi-kitchen",
        "acme",
        ("gateway",),
        "roost-gateway",
    )
    gw = identity_of(cloud).db.gateway("pi-kitchen")
    assert gw is not None and gw.hardware_id == "10000000cafe0001" and gw.public_key == "PUBKEY"


async def test_gateway_id_defaults_to_the_hardware_id(cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud, hardware_id="10000000deadbeef")
    assert tokens["gateway_id"] == "10000000deadbeef"


async def test_denied_device_gets_access_denied(cloud: CloudServer) -> None:
    admin_token = await operator_token(cloud)
    async with client_of(cloud) as http:
        code = (await http.post("/oauth/device_authorization", data={"client_id": "roost-gateway"})).json()
        r = await http.post(
            "/api/v1/enrollments/deny",
            json={"user_code": code["user_code"]},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert r.status_code == 200, r.text
        poll = {"grant_type": DEVICE_GRANT, "client_id": "roost-gateway", "device_code": code["device_code"]}
        r = await http.post("/oauth/token", data=poll)
        assert (r.status_code, r.json()["error"]) == (400, "access_denied")


async def test_approval_is_decided_by_the_policies(cloud: CloudServer) -> None:
    viewer = await operator_token(cloud, role="viewer")
    other_admin = await operator_token(cloud, tenant="other")
    _, _, client_admin = await client_token(cloud, role="admin")
    async with client_of(cloud) as http:
        code = (await http.post("/oauth/device_authorization", data={"client_id": "roost-gateway"})).json()
        body = {"user_code": code["user_code"], "tenant": "acme"}
        refusals = [
            (None, 401, ""),
            ("not-a-token-at-all", 401, ""),
            (TOKEN, 403, "observer-never-writes"),  # the observer of tenant default: read-only
            (viewer, 403, "viewer-never-writes"),
            (other_admin, 403, "tenant-isolation-api"),
            (client_admin, 403, "client-never-administers"),  # API clients never administer
        ]
        for bearer, status, policy in refusals:
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            r = await http.post("/api/v1/enrollments/approve", json=body, headers=headers)
            assert r.status_code == status, (bearer, r.text)
            assert policy in r.json()["error"]["message"]
        assert cloud.policy is not None
        denied = cloud.policy.decision_point.audit.recent("deny")
        assert {e["who"] for e in denied if e["what"]["action"] == "approve_enrollment"} >= {
            "operator:acme/viewer-of-acme",
            "operator:other/admin-of-other",
        }
        poll = {"grant_type": DEVICE_GRANT, "client_id": "roost-gateway", "device_code": code["device_code"]}
        assert (await http.post("/oauth/token", data=poll)).json()["error"] == "authorization_pending"


async def test_an_admin_approves_with_a_session_cookie_and_its_csrf_token(cloud: CloudServer) -> None:
    async with client_of(cloud) as http:
        code = (await http.post("/oauth/device_authorization", data={"client_id": "roost-gateway"})).json()
        csrf = await sign_in(cloud, http, "ada")
        body = {"user_code": code["user_code"], "tenant": "acme", "gateway_id": "pi-barn"}
        r = await http.post("/api/v1/enrollments/approve", json=body)
        assert r.status_code == 403 and "X-Roost-CSRF" in r.json()["error"]["message"]
        r = await http.post("/api/v1/enrollments/approve", json=body, headers={"X-Roost-CSRF": "wrong"})
        assert r.status_code == 403
        r = await http.post("/api/v1/enrollments/approve", json=body, headers={"X-Roost-CSRF": csrf})
        assert r.status_code == 200, r.text
        assert r.json()["gateway_id"] == "pi-barn"


async def test_device_authorization_only_for_the_gateway_client(cloud: CloudServer) -> None:
    client_id, secret, _ = await client_token(cloud)
    async with client_of(cloud) as http:
        r = await http.post("/oauth/device_authorization", data={"client_id": "nobody"})
        assert r.json()["error"] == "invalid_client"
        r = await http.post("/oauth/device_authorization", data={}, auth=(client_id, secret))
        assert r.json()["error"] == "invalid_client"
        r = await http.post("/oauth/device_authorization", json={"client_id": "roost-gateway"})
        assert r.status_code == 400


async def test_plain_http_beyond_loopback_is_refused_unless_allowed(cloud: CloudServer) -> None:
    from cloud.identity.oauth import FormRequest

    form = {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
    req = FormRequest("POST", "http://10.1.2.3/oauth/token", {}, form, "http://10.1.2.3")
    status, body, _ = identity_of(cloud).oauth.token(req)
    assert (status, body["error"]) == (400, "insecure_transport")
    allowed = FormRequest("POST", "http://10.1.2.3/oauth/token", {}, form, "http://10.1.2.3", insecure_ok=True)
    assert identity_of(cloud).oauth.token(allowed)[1]["error"] == "invalid_client"
