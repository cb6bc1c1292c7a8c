"""An update campaign end to end: a real cloud signs an uploaded bundle and rolls it out to real gateways.

Three ``roost gateway run`` processes with software updates on (``[update] root`` holds slot a at version
1.0, made from a tiny hand-made wheel): one takes the bundle; one is arm64 hardware, so the amd64 bundle is
refused (``wrong-hardware``); one trusts another update key, so the cloud's signature is refused
(``bad-signature``). The campaign halts by itself when the failures cross its threshold; a gateway of a
later stage is never sent the update. Once both causes are fixed (the "arm64" gateway was amd64 after all,
the other is given the cloud's key), the campaign is resumed with ``retry_failed`` and completes.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from cloud.identity import admin
from gateway.dm.ota import slots
from gateway.dm.ota.updater import install_slot
from tests.e2e.harness import Proc, Site, free_port
from tests.e2e.test_commands import _call, _token
from tests.gateway.ota_rig import Keys, make_bundle, make_wheel

pytestmark = pytest.mark.slow
TENANT = "default"
HARDWARE = {"gw-good": "amd64", "gw-arm": "arm64", "gw-forged": "amd64"}


def cloud_pub_file(tmp: Path) -> Path:
    return tmp / "cloud-update.pub"


def other_pub(tmp: Path) -> Path:
    return tmp / "other-update.pub"


def _gateway_config(site: Site, gw: str, root: Path, pub: Path) -> str:
    return f"""
[gateway]
id = "{gw}"
state_dir = "{gw}-state"
shutdown_timeout_s = 3.0
[cloud]
url = "{site.base}"
password_file = "{gw}.password"
backoff_initial_s = 0.2
backoff_max_s = 1.0
[uplink]
health_interval_s = 1.0
[adapters.coap]
host = "127.0.0.1"
port = {free_port(socket.SOCK_DGRAM)}
[update]
root = "{root}"
public_key_file = "{pub}"
hardware = "{HARDWARE[gw]}"
restart_delay_s = 60
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Site, dict[str, Proc]]]:
    cloud_key = Ed25519PrivateKey.generate()
    (tmp_path / "update.key").write_bytes(cloud_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    cloud_pub = cloud_pub_file(tmp_path)
    cloud_pub.write_bytes(cloud_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    other = Ed25519PrivateKey.generate().public_key()  # a key the cloud does not hold
    other_pub(tmp_path).write_bytes(other.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    passwords = {gw: secrets.token_urlsafe(16) for gw in HARDWARE}
    auth = "".join(
        f'[[auth.gateways]]\nid = "{gw}"\ntenant = "{TENANT}"\npassword = "{pw}"\n' for gw, pw in passwords.items()
    )
    site = Site(tmp_path, cloud_extra=f'[updates]\nkey_file = "update.key"\nfolder = "bundles"\n{auth}')
    wheels = make_wheel(tmp_path / "wheels-1.0", "1.0").parent
    procs: dict[str, Proc] = {}
    for gw in HARDWARE:
        root = tmp_path / f"{gw}-opt-roost"
        install_slot(root, "a", wheels, "1.0")  # what the image ships: slot a, current, confirmed
        slots.switch(root, "a")
        (tmp_path / f"{gw}.password").write_text(passwords[gw])
        pub = other_pub(tmp_path) if gw == "gw-forged" else cloud_pub
        (tmp_path / f"{gw}.toml").write_text(_gateway_config(site, gw, root, pub))
        argv = [sys.executable, "-m", "roost.cli", "gateway", "run", "--config", str(tmp_path / f"{gw}.toml")]
        procs[gw] = Proc(gw, argv, tmp_path / f"{gw}.log")
    try:
        yield site, procs
    finally:
        for p in procs.values():
            p.stop()
        site.stop_all()


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout} s (last: {last})")


def _upload(site: Site, token: str, data: bytes) -> dict[str, Any]:
    import json
    import urllib.request

    req = urllib.request.Request(
        site.base + "/api/v1/bundles", data=data, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _sent_update(proc: Proc) -> bool:
    return "Running command update" in proc.log.read_text(errors="replace") if proc.log.exists() else False


async def test_a_campaign_halts_on_refused_bundles_and_resumes_with_retries(
    fleet: tuple[Site, dict[str, Proc]], tmp_path: Path
) -> None:
    site, procs = fleet
    site.start_cloud()
    admin.ensure_tenant(site.identity_db, TENANT)
    olga = _token(site, "olga", "admin")
    for p in procs.values():
        p.start()

    def online() -> list[str]:
        status, body = _call(site, olga, "GET", "/api/v1/fleet/gateways?online=true")
        ids = sorted(g["id"] for g in body.get("items", [])) if status == 200 else []
        return ids if ids == sorted(HARDWARE) else []

    await _until(online, 60, "all three gateways online in the fleet registry")
    bundle = make_bundle(tmp_path / "built", Keys(tmp_path), "2.0", platform="linux_x86_64")  # an operator's key
    info = _upload(site, olga, bundle.read_bytes())
    assert info["version"] == "2.0" and info["hardware"] == ["amd64"], info

    body = {"bundle": info["name"], "selector": {"ids": sorted(HARDWARE)}, "stages": [33, 100],
            "failure_threshold": 0.0, "stage_timeout_s": 120, "confirm_version": False}  # fmt: skip
    status, campaign = _call(site, olga, "POST", "/api/v1/campaigns", body)
    assert status == 201, campaign
    cid = campaign["id"]

    def settled() -> dict[str, Any] | None:
        _, c = _call(site, olga, "GET", f"/api/v1/campaigns/{cid}")
        return c if c["state"] != "running" else None

    halted = await _until(settled, 120, "the campaign halting")
    assert halted["state"] == "halted" and "over the threshold 0" in halted["reason"], halted
    by_gw = {g["gateway"]: g for g in halted["gateways"]}
    stage = halted["stage"]
    failed = {gw for gw, g in by_gw.items() if g["status"] == "failed"}
    assert failed and failed <= {"gw-arm", "gw-forged"}, by_gw
    for gw in failed:
        reason = by_gw[gw]["reason"]
        assert ("wrong-hardware" if gw == "gw-arm" else "bad-signature") in reason, (gw, reason)
        assert slots.active_slot(tmp_path / f"{gw}-opt-roost") == "a", "a refused bundle installs nothing"
    if "gw-good" in by_gw and by_gw["gw-good"]["status"] == "ok":
        assert slots.active_slot(tmp_path / "gw-good-opt-roost") == "b"  # installed into the other slot, switched
    # No gateway of a later stage was sent anything: its target is pending and its agent never ran an update.
    for gw, g in by_gw.items():
        if g["stage"] > stage:
            assert g["status"] == "pending" and not _sent_update(procs[gw]), (gw, g)

    # The causes are fixed: the "arm64" gateway was mislabelled (it is amd64), the other was given the wrong
    # update key. Resume, retrying the stage's failures: every gateway ends on the new version.
    for gw in ("gw-arm", "gw-forged"):
        procs[gw].stop()
        cfg = tmp_path / f"{gw}.toml"
        text = cfg.read_text().replace('hardware = "arm64"', 'hardware = "amd64"')
        cfg.write_text(text.replace(str(other_pub(tmp_path)), str(cloud_pub_file(tmp_path))))
        procs[gw].start()
    await _until(online, 60, "the fixed gateways back online")
    status, resumed = _call(site, olga, "POST", f"/api/v1/campaigns/{cid}/resume", {"retry_failed": True})
    assert status == 200 and resumed["state"] in {"running", "completed"}, resumed
    final = await _until(settled, 180, "the resumed campaign ending")
    outcome = [(g["gateway"], g["status"], g["reason"]) for g in final["gateways"]]
    assert final["state"] == "completed", (final["reason"], outcome)
    assert {g["gateway"]: g["status"] for g in final["gateways"]} == dict.fromkeys(HARDWARE, "ok")
    for gw in HARDWARE:
        assert slots.active_slot(tmp_path / f"{gw}-opt-roost") == "b", gw
    _, trail = _call(site, olga, "GET", "/api/v1/fleet/audit")
    actions = [e["action"] for e in trail["items"]]
    assert {"campaign-created", "campaign-halted", "campaign-resumed", "campaign-completed"} <= set(actions)
