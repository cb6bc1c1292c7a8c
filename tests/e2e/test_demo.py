"""``roost demo`` keeps the demo contract: a viewer's JWT first (API bearer and MQTT password), data flowing,
the owner's sign-in, Ctrl-C stops everything quickly."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiomqtt
import psutil
import pytest

from tests.e2e.harness import ROOT, free_port

pytestmark = pytest.mark.slow


def _get(url: str, token: str | None = None) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        return json.loads(r.read())


def _post_json(url: str, body: dict[str, str]) -> dict[str, object]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        found: dict[str, object] = json.loads(r.read())
        return found


def _jwt_claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


async def _watch(port: int, username: str, token: str) -> tuple[str, bool]:
    """Subscribe with the token as the MQTT password: the first telemetry topic seen, and whether a
    subscription to another tenant was refused."""
    async with aiomqtt.Client(
        "127.0.0.1", port, transport="websockets", websocket_path="/mqtt", username=username, password=token
    ) as client:
        other = await client.subscribe("roost/other/#", qos=1)
        await client.subscribe("roost/default/#", qos=1)
        async with asyncio.timeout(30):
            async for message in client.messages:
                if "/telemetry" in str(message.topic):
                    (code,) = other
                    return str(message.topic), bool(getattr(code, "is_failure", False)) or code == 0x80
    raise AssertionError("no telemetry reached the viewer")


def test_demo_prints_its_token_first_bridges_every_sensor_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    http, coap = free_port(), free_port(socket.SOCK_DGRAM)
    log = tmp_path / "demo.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "roost.cli",
                "demo",
                "--http-port",
                str(http),
                "--coap-port",
                str(coap),
                "--interval",
                "0.5",
                "--state-dir",
                str(tmp_path / "state"),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    base = f"http://127.0.0.1:{http}"
    try:
        token = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace")
            try:
                _get(base + "/openapi.json")
            except OSError:
                time.sleep(0.2)
                continue
            m = re.search(r"^token: (\S{20,})$", text, re.MULTILINE)
            assert m, "the API answered before the demo printed its token line"
            token = m.group(1)
            break
        assert token, "the demo's API never answered:\n" + log.read_text(errors="replace")[-2000:]
        with pytest.raises(urllib.error.HTTPError):
            _get(base + "/api/v1/readings")  # the API wants the credential
        # Every kind of emulated device: CoAP nodes, chips on I2C and SPI, a serial node and a GPS on ptys.
        from drivers.ble.emulator import BleFleet

        fleet = BleFleet(seed=1)  # the demo's replayed BLE devices, the encrypted one decrypted with its bind key
        want = {"kitchen-th1", "cellar-th2", "attic-th3", "i2c-1-0x76", "spi0.0-ch0", "serial-node-1", "gps"}
        want |= {fleet.bthome_mac, "bthome-encrypted", fleet.ruuvi_mac}  # a listed device reads as its name
        want |= {"00:12:4b:00:1c:a1:b2:01", "00:12:4b:00:1c:a1:b2:05"}  # Zigbee climate sensor and metered plug
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen != want:
            items = _get(base + "/api/v1/readings?limit=1000", token)["items"]  # type: ignore[index]
            seen = {i["sensor"] for i in items} & want
            time.sleep(0.5)
        assert seen == want, f"readings of {want - seen} did not reach the API"
        gws = _get(base + "/api/v1/gateways", token)["items"]  # type: ignore[index]
        assert [g["id"] for g in gws if g["online"]] == ["demo-gw"]
        # The token is a read-only operator's JWT for tenant default, good for the whole run ...
        claims = _jwt_claims(token)
        assert (claims["sub"], claims["tenant"], claims["roles"]) == ("viewer", "default", ["viewer"])
        assert claims["exp"] - time.time() > 6 * 86400
        # ... and the MQTT password (username: its subject) for the tenant's topics, never for another's.
        topic, other_refused = asyncio.run(_watch(http, claims["sub"], token))
        assert topic.startswith("roost/default/demo-gw/telemetry"), topic
        assert other_refused, "the viewer subscribed to another tenant's topics"
        # The owner signs in with the password the demo printed.
        m = re.search(r"^sign in: http://127\.0\.0\.1:(\d+)/ as (\S+) / (\S+)$", log.read_text(), re.MULTILINE)
        assert m and int(m.group(1)) == http, "the demo prints the owner's sign-in"
        session = _post_json(base + "/auth/signin", {"tenant": "default", "username": m[2], "password": m[3]})
        assert (session["operator"], session["role"]) == ("owner", "owner")
        family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        assert len(family) >= 3, "the demo runs the cloud and the gateway as processes of their own"
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        proc.wait(15)
        stopped_in = time.monotonic() - t0
        assert stopped_in < 8, f"Ctrl-C took {stopped_in:.1f} s"
        assert proc.returncode == 0
        assert not [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
