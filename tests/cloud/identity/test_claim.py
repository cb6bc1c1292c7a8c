"""Claim-token enrollment (single- and multi-use, expiry) and throttling of guesses at the token endpoint."""

from __future__ import annotations

import asyncio

from cloud.identity import admin
from cloud.identity.oauth import CLAIM_GRANT_TYPE
from cloud.server import CloudServer
from tests.cloud.identity.conftest import client_of, identity_of


def _claim(token: str, hardware_id: str) -> dict[str, str]:
    return {
        "grant_type": CLAIM_GRANT_TYPE,
        "client_id": "roost-gateway",
        "claim_token": token,
        "hardware_id": hardware_id,
        "public_key": f"key-of-{hardware_id}",
    }


async def test_single_use_claim_token_enrolls_once(cloud: CloudServer) -> None:
    identity = identity_of(cloud)
    _, token = admin.create_claim_token(identity.db, "acme", max_uses=1)
    async with client_of(cloud) as http:
        r = await http.post("/oauth/token", data=_claim(token, "10000000c1a10001"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["gateway_id"], body["tenant"]) == ("10000000c1a10001", "acme") and body["refresh_token"]
        claims = identity.verifier.verify(body["access_token"])
        assert claims.tenant == "acme" and claims.roles == ("gateway",)
        r = await http.post("/oauth/token", data=_claim(token, "10000000c1a10002"))
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    gw = identity.db.gateway("10000000c1a10001")
    assert gw is not None and gw.public_key == "key-of-10000000c1a10001" and gw.method.startswith("claim:")
    assert identity.db.gateway("10000000c1a10002") is None


async def test_multi_use_claim_token_and_its_limit(cloud: CloudServer) -> None:
    _, token = admin.create_claim_token(identity_of(cloud).db, "other", max_uses=2)
    async with client_of(cloud) as http:
        codes = [(await http.post("/oauth/token", data=_claim(token, f"hw-{i}"))).status_code for i in range(3)]
    assert codes == [200, 200, 400]


async def test_expired_and_revoked_claim_tokens_are_refused(cloud: CloudServer) -> None:
    db = identity_of(cloud).db
    _, expiring = admin.create_claim_token(db, "acme", max_uses=None, ttl_s=0.3)
    revoked_rec, revoked = admin.create_claim_token(db, "acme", max_uses=None)
    admin.revoke_claim_token(db, revoked_rec.id)
    async with client_of(cloud) as http:
        assert (await http.post("/oauth/token", data=_claim(expiring, "hw-a"))).status_code == 200
        await asyncio.sleep(0.4)
        r = await http.post("/oauth/token", data=_claim(expiring, "hw-b"))
        assert r.json()["error"] == "invalid_grant"
        r = await http.post("/oauth/token", data=_claim(revoked, "hw-c"))
        assert r.json()["error"] == "invalid_grant"
        r = await http.post("/oauth/token", data={**_claim(revoked, "hw-d"), "claim_token": ""})
        assert r.json()["error"] == "invalid_request"


async def test_guessing_is_throttled(cloud: CloudServer) -> None:
    _, good = admin.create_claim_token(identity_of(cloud).db, "acme", max_uses=None)
    async with client_of(cloud) as http:
        # The fixture allows 6 failures at once, then about one per 100 s.
        statuses = [(await http.post("/oauth/token", data=_claim(f"guess-{i}", "hw-x"))).status_code for i in range(6)]
        assert statuses == [400] * 6
        r = await http.post("/oauth/token", data=_claim(good, "hw-y"))
        assert r.status_code == 429 and r.json()["error"] == "slow_down" and int(r.headers["retry-after"]) > 0


async def test_pending_polls_are_not_throttled(cloud: CloudServer) -> None:
    async with client_of(cloud) as http:
        code = (await http.post("/oauth/device_authorization", data={"client_id": "roost-gateway"})).json()
        poll = {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": "roost-gateway",
            "device_code": code["device_code"],
        }
        errors = [(await http.post("/oauth/token", data=poll)).json()["error"] for _ in range(10)]
    assert set(errors) <= {"authorization_pending", "slow_down"}
