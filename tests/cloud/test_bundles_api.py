"""Bundles and campaigns through a real cloud on loopback: upload (re-signed by the cloud's key), list, download
with Range and with a campaign's grant, the policy (viewers read, never upload or run campaigns), and a
campaign whose stand-in gateways answer ``update`` with an error halting by itself at its first stage."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from cloud.config import loads
from cloud.identity import admin
from cloud.server import CloudServer
from roost.bundle_cli import build_bundle
from tests.cloud.helpers import BASE_CONFIG, eventually, http, mqtt
from tests.cloud.identity.conftest import identity_of, operator_token
from wire import bundle
from wire.commands import Result, decode_command

CONFIG = """
[identity]
throttle_burst = 50

[updates]
key_file = "update.key"
folder = "bundles"
"""


@pytest.fixture
def cloud_key(tmp_path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "update.key").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return key


@pytest.fixture
async def cloud(tmp_path: Path, cloud_key: Ed25519PrivateKey) -> AsyncIterator[CloudServer]:
    config = loads(BASE_CONFIG + CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        for tenant in ("default", "other"):
            admin.create_tenant(identity_of(server).db, tenant)
        yield server


def _bundle(tmp_path: Path, version: str = "2.0.0") -> bytes:
    """A bundle signed by some operator's key (not the cloud's), with one small stand-in wheel."""
    wheels = tmp_path / f"wheels-{version}"
    wheels.mkdir()
    (wheels / f"roost-{version}-py3-none-any.whl").write_bytes(b"not really a wheel " * 500)
    out = tmp_path / f"roost-{version}.bundle"
    build_bundle(sorted(wheels.glob("*.whl")), Ed25519PrivateKey.generate(), out)
    return out.read_bytes()


def _tampered(data: bytes) -> bytes:
    """The bundle with one byte of its wheel changed (the manifest's SHA-256 no longer matches)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            content = src.extractfile(member)
            assert content is not None
            raw = content.read()
            if member.name.endswith(".whl"):
                raw = b"X" + raw[1:]
            dst.addfile(member, io.BytesIO(raw))
    return out.getvalue()


async def test_upload_list_download_with_range_and_policy(
    cloud: CloudServer, tmp_path: Path, cloud_key: Ed25519PrivateKey
) -> None:
    olga = await operator_token(cloud, "default", "operator", "olga")
    data = _bundle(tmp_path)
    async with http(cloud, olga) as api:
        r = await api.post("/api/v1/bundles", content=data)
        assert r.status_code == 201, r.text
        info = r.json()
        assert info["name"] == "roost-2.0.0-any.bundle" and info["version"] == "2.0.0"
        assert info["key_id"] == bundle.key_id(cloud_key.public_key())
        assert (await api.post("/api/v1/bundles", content=data)).status_code == 200  # the same again: a no-op
        r = await api.post("/api/v1/bundles", content=_tampered(_bundle(tmp_path, "2.0.1")))
        assert r.status_code == 400 and "hash-mismatch" in r.json()["error"]["message"]
        assert (await api.post("/api/v1/bundles", content=b"not a tar")).status_code == 400

        (listed,) = (await api.get("/api/v1/bundles")).json()["items"]
        assert {k: listed[k] for k in ("name", "version", "hardware", "sha256", "size")} == {
            k: info[k] for k in ("name", "version", "hardware", "sha256", "size")
        }
        r = await api.get(f"/api/v1/bundles/{info['name']}")
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == info["sha256"]
        whole = r.content
        # Signed by the cloud now: a gateway trusting the cloud's key verifies it; the uploader's key is gone.
        manifest = bundle.verify(io.BytesIO(whole), cloud_key.public_key())
        assert manifest.version == "2.0.0" and manifest.key_id == info["key_id"]
        with pytest.raises(bundle.BundleError, match="bad-signature"):
            bundle.verify(io.BytesIO(whole), Ed25519PrivateKey.generate().public_key())
        # Range: what a gateway resuming a cut download asks for.
        r = await api.get(f"/api/v1/bundles/{info['name']}", headers={"Range": "bytes=1000-"})
        assert r.status_code == 206 and r.content == whole[1000:]
        assert r.headers["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
        assert (await api.get("/api/v1/bundles/roost-9.9.9-any.bundle")).status_code == 404
        assert (await api.get("/api/v1/bundles/..%2Fupdate.key")).status_code == 404

    vera = await operator_token(cloud, "default", "viewer", "vera")
    async with http(cloud, vera) as api:
        assert (await api.get("/api/v1/bundles")).status_code == 200  # viewers read
        assert (await api.post("/api/v1/bundles", content=data)).status_code == 403  # never upload
        body = {"bundle": info["name"], "selector": {"all": True}}
        assert (await api.post("/api/v1/campaigns", json=body)).status_code == 403  # nor run campaigns
    other = await operator_token(cloud, "other", "admin", "otto")
    async with http(cloud, other) as api:
        assert (await api.get("/api/v1/bundles", params={"tenant": "default"})).status_code == 403
        assert (await api.get("/api/v1/bundles")).json()["items"] == []
    async with http(cloud, None) as anonymous:
        assert (await anonymous.get(f"/api/v1/bundles/{info['name']}")).status_code == 401
        assert cloud.bundles is not None
        grant = cloud.bundles.grant("default", info["name"], 4_000_000_000)
        r = await anonymous.get(f"/api/v1/bundles/{info['name']}", params={"expires": 4_000_000_000, "grant": grant})
        assert r.status_code == 200 and r.content == whole
        bad: dict[str, str | int] = {"expires": 4_000_000_001, "grant": grant}
        assert (await anonymous.get(f"/api/v1/bundles/{info['name']}", params=bad)).status_code == 403
        expired: dict[str, str | int] = {"expires": 1000, "grant": cloud.bundles.grant("default", info["name"], 1000)}
        assert (await anonymous.get(f"/api/v1/bundles/{info['name']}", params=expired)).status_code == 403


async def _refuse_updates(client: aiomqtt.Client, gateway: str, urls: list[str]) -> None:
    """A stand-in gateway without [update] root: every update answered with an error."""
    async for message in client.messages:
        topic = str(message.topic)
        rid = topic.rsplit("/", 1)[1]
        cmd = decode_command(bytes(message.payload))
        urls.append(str(cmd.args.get("url")))
        result = Result(request_id=rid, status="error", error="software updates are off on this gateway", finished=1.0)
        await client.publish(f"roost/default/{gateway}/cmd-result/{rid}", result.encode(), qos=1)


async def test_a_campaign_halts_by_itself_when_its_canary_fails(cloud: CloudServer, tmp_path: Path) -> None:
    olga = await operator_token(cloud, "default", "admin", "olga")
    urls: list[str] = []
    async with (
        mqtt(cloud) as gw1,
        mqtt(cloud, "gw-2", username="gw-2", password="pw-gw-2-secret") as gw2,
        http(cloud, olga) as api,
    ):
        for client, gw in ((gw1, "gw-1"), (gw2, "gw-2")):
            await client.subscribe(f"roost/default/{gw}/cmd/+", qos=1)
            await client.publish(f"roost/default/{gw}/status", b"online", qos=1, retain=True)
        name = (await api.post("/api/v1/bundles", content=_bundle(tmp_path))).json()["name"]

        async def known() -> bool:
            items = (await api.get("/api/v1/fleet/gateways", params={"online": True})).json()["items"]
            return len(items) == 2

        await eventually(known)
        answering = [asyncio.create_task(_refuse_updates(c, g, urls)) for c, g in ((gw1, "gw-1"), (gw2, "gw-2"))]
        try:
            body = {
                "bundle": name, "selector": {"ids": ["gw-1", "gw-2"]}, "stages": [50, 100],
                "failure_threshold": 0.2, "stage_timeout_s": 30,
            }  # fmt: skip
            r = await api.post("/api/v1/campaigns", json=body)
            assert r.status_code == 201, r.text
            cid = r.json()["id"]

            async def halted() -> bool:
                state: str = (await api.get(f"/api/v1/campaigns/{cid}")).json()["state"]
                return state == "halted"

            await eventually(halted, timeout=10)
            await asyncio.sleep(0.3)  # a second stage, were it (wrongly) started, would have sent by now
        finally:
            for t in answering:
                t.cancel()
        campaign = (await api.get(f"/api/v1/campaigns/{cid}")).json()
        assert campaign["stage"] == 0 and "over the threshold" in campaign["reason"]
        assert campaign["summary"] == {"failed": 1, "pending": 1}
        (failed,) = [g for g in campaign["gateways"] if g["status"] == "failed"]
        assert "software updates are off" in failed["reason"]
        assert len(urls) == 1  # only the canary was ever sent the update
        # The link it was sent downloads the bundle without a bearer token (what the gateway's updater does).
        link = urlsplit(urls[0])
        async with http(cloud, None) as anonymous:
            r = await anonymous.get(f"{link.path}?{link.query}")
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == campaign["sha256"]
        trail = [e["action"] for e in (await api.get("/api/v1/fleet/audit")).json()["items"]]
        assert trail[:3] == ["campaign-halted", "campaign-created", "bundle-uploaded"]
        again = (await api.post(f"/api/v1/campaigns/{cid}/halt", json={"reason": "x"})).json()
        assert again["state"] == "halted" and again["reason"] == campaign["reason"]  # halting twice changes nothing
        assert json.dumps(campaign)  # plain JSON
        # Resume: a bad threshold is refused; resumed as it is, the failed canary halts it again at once.
        r = await api.post(f"/api/v1/campaigns/{cid}/resume", json={"failure_threshold": 2})
        assert r.status_code == 400 and "failure_threshold" in r.text
        assert (await api.post("/api/v1/campaigns/c-0000000000000000/resume")).status_code == 404
        r = await api.post(f"/api/v1/campaigns/{cid}/resume", json={})
        assert r.status_code == 200 and r.json()["state"] in {"running", "halted"}, r.text
        await eventually(halted, timeout=10)
        trail = [e["action"] for e in (await api.get("/api/v1/fleet/audit")).json()["items"]]
        assert trail[:2] == ["campaign-halted", "campaign-resumed"] and len(urls) == 1
