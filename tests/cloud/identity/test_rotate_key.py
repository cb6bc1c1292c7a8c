"""Key-pair rotation (``urn:roost:rotate-key``): a real gateway identity against a real cloud.

The gateway enrolls with a claim token (its TokenCredentials task, as the daemon runs it), then rotates
on command: a new key pair, a proof signed by the new key, new tokens; the cloud records the new
public key and revokes every credential the gateway held before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cloud.identity import admin
from cloud.identity.oauth import ROTATE_KEY_GRANT_TYPE
from cloud.server import CloudServer
from gateway.config import loads
from gateway.enrollment import RotationFailed, TokenCredentials
from gateway.identity import KEY_FILE, NEW_KEY_FILE, IdentityStore
from tests.cloud.identity.conftest import client_of, identity_of


async def _enrolled(cloud: CloudServer, tmp_path: Path) -> tuple[TokenCredentials, IdentityStore, asyncio.Task[None]]:
    _, claim = admin.create_claim_token(identity_of(cloud).db, "acme", max_uses=1)
    (tmp_path / "claim").write_text(claim)
    config = loads(
        f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n[cloud]\nurl = "{cloud.info.base_url}"\n'
        f'[identity]\nclaim_token_file = "{tmp_path / "claim"}"\nissuer = "{cloud.info.base_url}"\n',
        base_dir=tmp_path,
    )
    store = IdentityStore(tmp_path / "state")
    creds = TokenCredentials(config, store)
    task = asyncio.create_task(creds.run())
    async with asyncio.timeout(20):
        await creds.get()
    return creds, store, task


async def test_rotation_replaces_the_key_and_every_old_credential(cloud: CloudServer, tmp_path: Path) -> None:
    identity = identity_of(cloud)
    creds, store, task = await _enrolled(cloud, tmp_path)
    try:
        before = store.load_tokens()
        assert before is not None
        old_key = (store.folder / KEY_FILE).read_bytes()
        gw = identity.db.gateway(before.gateway_id)
        assert gw is not None and gw.public_key == store.public_key_pem()
        old_jti = identity.verifier.verify(before.access_token).jti

        result = await creds.rotate(timeout=20)

        assert result["gateway"] == before.gateway_id
        after = store.load_tokens()
        assert after is not None and after.refresh_token != before.refresh_token
        assert (store.folder / KEY_FILE).read_bytes() != old_key, "key.pem is the new key"
        assert not (store.folder / NEW_KEY_FILE).exists()
        assert (store.folder / KEY_FILE).stat().st_mode & 0o777 == 0o600
        gw = identity.db.gateway(before.gateway_id)
        assert gw is not None and gw.revoked is None, "the enrollment stays"
        assert gw.public_key == store.public_key_pem(), "the cloud records the new public key"
        assert identity.is_revoked(old_jti), "the old access token is revoked (its MQTT connection closes)"
        assert not identity.is_revoked(identity.verifier.verify(after.access_token).jti)
        assert creds.rotations == 1
        (current,) = [await creds.get()]
        assert current.password == after.access_token, "the uplink is handed the new token"
        async with client_of(cloud) as http:  # the old refresh token is dead
            r = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "client_id": "roost-gateway",
                    "refresh_token": before.refresh_token,
                },
            )
            assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    finally:
        task.cancel()


async def test_a_proof_by_another_key_is_refused_and_nothing_changes(cloud: CloudServer, tmp_path: Path) -> None:
    identity = identity_of(cloud)
    _creds, store, task = await _enrolled(cloud, tmp_path)
    task.cancel()
    tokens = store.load_tokens()
    assert tokens is not None
    public_key = store.stage_new_key()  # the key claimed ...
    other = IdentityStore(tmp_path / "elsewhere")
    other.stage_new_key()  # ... and the key that signs
    from wire.keyproof import rotation_message

    proof = other.sign_with_new_key(rotation_message(tokens.gateway_id, tokens.issuer, tokens.refresh_token))
    form = {
        "grant_type": ROTATE_KEY_GRANT_TYPE,
        "client_id": "roost-gateway",
        "refresh_token": tokens.refresh_token,
        "public_key": public_key,
        "proof": proof,
    }
    async with client_of(cloud) as http:
        r = await http.post("/oauth/token", data=form)
        assert r.status_code == 400 and "key proof does not hold" in r.json()["error_description"]
        r = await http.post("/oauth/token", data={**form, "public_key": "not a key"})
        assert r.status_code == 400 and "not a PEM public key" in r.json()["error_description"]
        # The refresh token was not used up by the refused attempts: it still refreshes.
        r = await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "client_id": "roost-gateway", "refresh_token": tokens.refresh_token},
        )
        assert r.status_code == 200, r.text
    gw = identity.db.gateway(tokens.gateway_id)
    assert gw is not None and gw.public_key != public_key


async def test_rotation_when_not_enrolled_says_so(tmp_path: Path) -> None:
    config = loads(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n', base_dir=tmp_path)
    creds = TokenCredentials(config, IdentityStore(tmp_path / "state"))
    with pytest.raises(RotationFailed, match="not enrolled"):
        await creds.rotate(timeout=1)
