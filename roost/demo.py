"""``roost demo``: a cloud, a gateway and emulated sensors on this machine, stopped with Ctrl-C.

The cloud and the gateway run as their own processes (``roost cloud serve`` and ``roost gateway
run``) with configs written into the state folder, exactly as an installer would run them; the
emulated sensors are real aiocoap clients in this process posting SenML (JSON and CBOR) and
plain ``metric=value`` text.

Before the cloud starts, the demo bootstraps its identity database as an administrator would: tenant
``default``, an owner (whose generated password it prints: the only place a password is ever printed),
a viewer, and a claim token the gateway enrolls with. Its ``token:`` line is the viewer's access token
(a JWT signed with the cloud's key, valid for a week): the API's bearer token, and the MQTT password
with the token's subject (``viewer``) as the username.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from drivers.climate_emulator import ClimateSensor
from roost import logsetup
from wire import senml

_LOGGER = logging.getLogger("roost.demo")
GATEWAY_ID = "demo-gw"
TENANT = "default"
OWNER = "owner"
VIEWER = "viewer"
TOKEN_TTL_S = 7 * 86400
STOP_TIMEOUT_S = 4.0


@dataclass(frozen=True, slots=True)
class DemoIdentity:
    """What the demo's bootstrap made: the gateway's claim token, the owner's password, the viewer's token."""

    claim_token: str
    owner_password: str
    viewer_token: str


def _write_configs(state: Path, http_port: int, coap_port: int) -> tuple[Path, Path, DemoIdentity]:
    cloud = state / "cloud.toml"
    cloud.write_text(f"""# Written by roost demo.
[server]
host = "127.0.0.1"
port = {http_port}

[store]
path = "cloud/cloud.sqlite"

[auth]
require_token = true
""")
    ident = _bootstrap_identity(cloud, f"http://127.0.0.1:{http_port}")
    claim = state / "gateway.claim"
    claim.write_text(ident.claim_token + "\n")
    claim.chmod(0o600)
    gateway = state / "gateway.toml"
    gateway.write_text(f"""# Written by roost demo.
[gateway]
id = "{GATEWAY_ID}"
tenant = "default"
state_dir = "gateway"

[cloud]
url = "http://127.0.0.1:{http_port}"
backoff_max_s = 5.0

[identity]
claim_token_file = "gateway.claim"

[uplink]
batch_max_delay_ms = 100
health_interval_s = 10.0

[adapters.coap]
host = "127.0.0.1"
port = {coap_port}
accept = "any"
{_wired_config(state)}{_ble_config(state)}{_local_config(state)}
[adapters.zigbee]
enabled = true
radio = "memory"
emulate_devices = true
emulate_interval_s = 5.0
database = false
""")
    return cloud, gateway, ident


@dataclass(frozen=True)
class LocalPage:
    """The demo's local page: a free loopback port and a setup PIN made for this run."""

    port: int
    pin: str


def _local_page(state: Path) -> LocalPage:
    """A free port on loopback and a new PIN, whose scrypt hash goes where first boot would put it."""
    import socket

    from gateway.localpage import pin

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    code = f"{secrets.randbelow(10**6):06d}"
    pin.write(state / "gateway" / "local" / "pin.json", code)
    return LocalPage(port, code)


def _local_config(state: Path) -> str:
    page = _local_page(state)
    (state / "local-page.txt").write_text(f"{page.port} {page.pin}\n")
    return f"""
[local]
enabled = true
host = "127.0.0.1"
port = {page.port}
mdns = false
"""


SERIAL_NODE = "serial-node-1"
GPS_POSITION = (52.5163, 13.3777, 34.0)  # where the demo's emulated GPS receiver stands


def _serial_links(state: Path) -> tuple[Path, Path]:
    """Where the demo's serial devices appear: symlinks standing in for /dev/serial/by-id/..."""
    by_id = state / "serial-by-id"
    return by_id / "usb-Roost_sensor_node-if00", by_id / "usb-u-blox_GNSS_receiver-if00"


BLE_ROUNDS = 720  # one advertisement of each emulated device every 5 s: an hour before the file loops


def _ble_config(state: Path) -> str:
    """Replayed BLE advertisements (six emulated devices, one of them encrypted BTHome with its bind key)."""
    from drivers.ble.emulator import BleFleet
    from gateway.adapters.ble.scanner import record_raw_line

    fleet = BleFleet(seed=1)
    lines = [
        record_raw_line(r * 5.0 + i * 0.8, a.address, a.rssi, a.raw)
        for r in range(BLE_ROUNDS)
        for i, a in enumerate(fleet.adverts())
    ]
    (state / "ble-demo.jsonl").write_text("\n".join(lines) + "\n")
    return f"""
[adapters.ble]
enabled = true
accept = "any"
replay_file = "ble-demo.jsonl"
replay_loop = true
watchdog_s = 0

[[adapters.ble.devices]]
address = "{fleet.encrypted_mac}"
name = "bthome-encrypted"
bind_key = "{fleet.bind_key.hex()}"
"""


def _wired_config(state: Path) -> str:
    """Emulated wired devices: a BME280 on I2C, an MCP3008 on SPI, a Roost serial node and a GPS on ptys."""
    node, gps = _serial_links(state)
    return f"""
[[adapters.i2c]]
chip = "bme280"
emulated = true
interval_s = 5.0

[[adapters.spi]]
chip = "mcp3008"
inputs = ["ch0", "ch1"]
emulated = true
interval_s = 5.0

[[adapters.serial]]
path = "{node}"
protocol = "roost"
accept = "any"
reopen_max_s = 2.0

[[adapters.serial]]
path = "{gps}"
protocol = "nmea"
baud = 9600
sensor = "gps"
reopen_max_s = 2.0
"""


def _bootstrap_identity(cloud_toml: Path, issuer: str) -> DemoIdentity:
    """Tenant ``default``, its owner and viewer, a one-time claim token, and the viewer's week-long token."""
    from cloud import config as cloud_config
    from cloud.identity import admin
    from cloud.identity.service import IdentityService

    cfg = cloud_config.load(cloud_toml)
    db = cfg.identity_db_path
    db.parent.mkdir(parents=True, exist_ok=True)
    admin.ensure_tenant(db, TENANT, "Demo")
    owner_password = secrets.token_urlsafe(12)
    _owner, created = admin.ensure_operator(db, TENANT, OWNER, lambda: owner_password, role="owner")
    if not created:  # a state folder used before: the owner gets a new password for this run
        admin.set_password(db, OWNER, owner_password)
    admin.ensure_operator(db, TENANT, VIEWER, lambda: secrets.token_urlsafe(24), role="viewer")
    _claim, claim_token = admin.create_claim_token(db, TENANT, max_uses=1, ttl_s=3600)
    minted = admin.operator_token(
        db,
        TENANT,
        VIEWER,
        ttl_s=min(TOKEN_TTL_S, cfg.identity.operator_token_max_ttl_s),
        issuer=issuer,
        audience=cfg.identity.audience,
        keep_retired_s=IdentityService.keep_retired_s(cfg.identity),
    )
    return DemoIdentity(claim_token, owner_password, minted.access_token)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return True
        time.sleep(0.2)
    return False


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _LOGGER.warning("%s did not stop in time: killing it", p.args[3] if isinstance(p.args, list) else p)
            p.kill()
            p.wait(2)


async def _devices(coap_port: int, interval: float, state: Path) -> None:
    """The emulated devices: serial ones on ptys (the gateway opens them), CoAP ones posting."""
    from drivers.nmea_talker import LiveReceiver, Position
    from drivers.ptylink import PtyLink
    from drivers.roostserial.node_emulator import NodeEmulator

    node_link, gps_link = _serial_links(state)
    node_link.parent.mkdir(parents=True, exist_ok=True)
    node = NodeEmulator(SERIAL_NODE, interval_s=max(1, round(interval)), seed=4)
    async with (
        PtyLink(node, link=node_link),
        PtyLink(LiveReceiver(Position(*GPS_POSITION), interval_s=interval), link=gps_link),
    ):
        await _sensors(coap_port, interval)


async def _sensors(coap_port: int, interval: float) -> None:
    import aiocoap

    nodes = [
        ClimateSensor("kitchen-th1", 21.5, seed=1),
        ClimateSensor("cellar-th2", 14.0, seed=2),
        ClimateSensor("attic-th3", 24.0, seed=3),
    ]
    ctx = await aiocoap.Context.create_client_context()
    base = f"coap://127.0.0.1:{coap_port}"
    posted = 0
    try:
        # Start posting once the gateway answers, so the first posts are not lost to its start-up.
        for _ in range(150):
            with contextlib.suppress(Exception):
                probe = aiocoap.Message(code=aiocoap.GET, uri=f"{base}/.well-known/core")
                if (await asyncio.wait_for(ctx.request(probe).response, 1.0)).code.is_successful():
                    break
            await asyncio.sleep(0.2)
        while True:
            now = time.time()
            posts = [
                (f"{base}/telemetry", senml.CONTENT_FORMAT_JSON, senml.encode(nodes[0].sample(now), encoding="json")),
                (f"{base}/telemetry", senml.CONTENT_FORMAT_CBOR, senml.encode(nodes[1].sample(now))),
                (f"{base}/telemetry/{nodes[2].sensor}", 0, nodes[2].as_text(now).encode()),
            ]
            for uri, cf, payload in posts:
                msg = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=payload)
                msg.opt.content_format = cf
                try:
                    resp = await asyncio.wait_for(ctx.request(msg).response, 10)
                except (TimeoutError, aiocoap.error.Error) as exc:
                    _LOGGER.warning("emulated sensor could not post to %s: %s", uri, exc)
                    continue
                if not resp.code.is_successful():
                    _LOGGER.warning("gateway answered %s: %s", resp.code, resp.payload.decode(errors="replace"))
                else:
                    posted += 1
            if posted and posted % 30 == 0:
                _LOGGER.info("emulated sensors: %d posts acknowledged by the gateway", posted)
            await asyncio.sleep(interval)
    finally:
        await ctx.shutdown()


def run_demo(
    *, http_port: int = 8080, coap_port: int = 5683, state_dir: Path | None = None, interval: float = 2.0
) -> int:
    """Run the demo until Ctrl-C; returns the exit code."""
    logsetup.setup("INFO", name="roost-demo")
    state = state_dir or Path(tempfile.mkdtemp(prefix="roost-demo-"))
    state.mkdir(parents=True, exist_ok=True)
    cloud_cfg, gw_cfg, ident = _write_configs(state, http_port, coap_port)
    token = ident.viewer_token
    # The credential first, flushed, before the API answers (the demo contract).
    print(f"token: {token}", flush=True)
    print(f"sign in: http://127.0.0.1:{http_port}/ as {OWNER} / {ident.owner_password}", flush=True)
    me = [sys.executable, "-m", "roost.cli"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cloud = subprocess.Popen([*me, "cloud", "serve", "--config", str(cloud_cfg)], env=env)
        procs.append(cloud)
        if not _wait_http(f"http://127.0.0.1:{http_port}/healthz", cloud, 60):
            print(
                f"roost demo: the cloud did not start on 127.0.0.1:{http_port} (is the port in use?)", file=sys.stderr
            )
            return 1
        gateway = subprocess.Popen([*me, "gateway", "run", "--config", str(gw_cfg)], env=env)
        procs.append(gateway)
        local_port, local_pin = (state / "local-page.txt").read_text().split()
        print(
            f"""
Roost demo is running (Ctrl-C stops it).
  cloud    http://127.0.0.1:{http_port}/   API, OpenAPI at /openapi.json, MQTT over WebSockets at /mqtt
  gateway  {GATEWAY_ID}: enrolled with a claim token; CoAP on coap://127.0.0.1:{coap_port}/telemetry,
           buffer in {state}/gateway
  sensors  CoAP: kitchen-th1 (SenML JSON), cellar-th2 (SenML CBOR), attic-th3 (metric=value text), every {interval:g} s
           I2C: i2c-1-0x76 (BME280)  SPI: spi0.0-ch0, spi0.0-ch1 (MCP3008)  emulated at register level, every 5 s
           serial: {SERIAL_NODE} (Roost protocol node) and gps (NMEA receiver), on ptys in {state}/serial-by-id
           BLE: six devices (BTHome, encrypted BTHome, Ruuvi, pvvx, ATC, iBeacon) replayed from ble-demo.jsonl
           Zigbee: an in-memory network of six devices (climate, door, motion, leak, metered plug, bulb)
  console  http://127.0.0.1:{http_port}/console/  the operators' console: sign in as {OWNER} (the "sign in:" line)
  portal   http://127.0.0.1:{http_port}/developers  the developer portal: the API reference, applications, usage
  local    https://127.0.0.1:{local_port}/  the technician's local page (self-signed certificate: accept it),
           setup PIN {local_pin}
  people   tenant {TENANT}: {OWNER} (owner, signs in with POST /auth/signin) and {VIEWER} (read-only, the token above)

Look at the data (the token is {VIEWER}'s; it is also the MQTT password, with the username {VIEWER}):
  curl -H 'Authorization: Bearer {token}' 'http://127.0.0.1:{http_port}/api/v1/readings?sensor=kitchen-th1&limit=5'
  curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{http_port}/api/v1/gateways
Post your own reading:
  echo '[{{"bn":"my-sensor:","n":"temperature","u":"Cel","v":22.5}}]' > /tmp/r.json
  coap-client-notls -m post -t 110 -f /tmp/r.json coap://127.0.0.1:{coap_port}/telemetry
""",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_devices(coap_port, interval, state))
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        print("roost demo: stopping", file=sys.stderr, flush=True)
        _stop(procs)
