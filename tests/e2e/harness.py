"""Real Roost processes on loopback for end-to-end tests: the cloud, the gateway, a CoAP sensor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap

from wire import senml
from wire.reading import Reading

ROOT = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on now (TCP, or UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """One roost subprocess with its log file."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fh = self.log.open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        fh.close()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process and wait; returns its exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        code = self.popen.returncode
        self.popen = None
        return code

    def kill(self) -> None:
        """SIGKILL: a power cut, as far as the process can tell."""
        self.stop(signal.SIGKILL)

    def tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""


@dataclass
class Site:
    """A cloud and a gateway on loopback, with their configs in ``tmp``."""

    tmp: Path
    http_port: int = field(default_factory=free_port)
    coap_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    gateway_id: str = "gw-e2e"
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    gateway_extra: str = ""
    certfile: Path | None = None
    """PEM certificate (chain) the cloud serves https and wss with; None: plain http and ws."""
    keyfile: Path | None = None
    ca_file: Path | None = None
    """PEM CA the gateway pins (``cloud.ca_file``); None: the system CAs."""
    client_ca_file: Path | None = None
    """PEM CA the test's own https requests trust; None: ``ca_file``."""
    gateway_state: str = "gw-state"
    gateway_password: bool = True
    """Whether the gateway connects with ``cloud.password_file``; False: it enrolls and uses tokens."""
    cloud_extra: str = ""
    """TOML appended to cloud.toml (e.g. an [identity] table)."""
    cloud: Proc = field(init=False)
    gateway: Proc = field(init=False)

    def __post_init__(self) -> None:
        secret = secrets.token_urlsafe(16)
        (self.tmp / "gw.password").write_text(secret)
        tls = ""
        if self.certfile is not None:
            tls = f'certfile = "{self.certfile}"\nkeyfile = "{self.keyfile}"\n'
        (self.tmp / "cloud.toml").write_text(f"""
[server]
host = "127.0.0.1"
port = {self.http_port}
{tls}[store]
path = "cloud.sqlite"
[[auth.gateways]]
id = "{self.gateway_id}"
tenant = "default"
password = "{secret}"
[[auth.observers]]
token = "{self.token}"
tenant = "default"
{self.cloud_extra}
""")
        self.write_gateway_config()
        roost = [sys.executable, "-m", "roost.cli"]
        self.cloud = Proc(
            "cloud", [*roost, "cloud", "serve", "--config", str(self.tmp / "cloud.toml")], self.tmp / "cloud.log"
        )
        self.gateway = Proc(
            "gateway", [*roost, "gateway", "run", "--config", str(self.tmp / "gateway.toml")], self.tmp / "gateway.log"
        )

    def write_gateway_config(self, extra: str | None = None) -> None:
        """(Re)write gateway.toml; ``extra`` is appended TOML (e.g. a [buffer] table)."""
        if extra is not None:
            self.gateway_extra = extra
        ca = f'ca_file = "{self.ca_file}"\n' if self.ca_file is not None else ""
        (self.tmp / "gateway.toml").write_text(f"""
[gateway]
id = "{self.gateway_id}"
state_dir = "{self.gateway_state}"
shutdown_timeout_s = 5.0
[cloud]
url = "{self.base}"
{ca}{'password_file = "gw.password"' if self.gateway_password else ""}
backoff_initial_s = 0.2
backoff_max_s = 1.0
connect_timeout_s = 3.0
[uplink]
batch_max_delay_ms = 50
health_interval_s = 1.0
ack_timeout_s = 5.0
[adapters.coap]
host = "127.0.0.1"
port = {self.coap_port}
accept = "any"
{self.gateway_extra}
""")

    @property
    def identity_db(self) -> Path:
        """The cloud's identity database (identity.sqlite next to the store)."""
        return self.tmp / "identity.sqlite"

    @property
    def gateway_state_dir(self) -> Path:
        """The gateway's state folder."""
        return self.tmp / self.gateway_state

    @property
    def base(self) -> str:
        scheme = "https" if self.certfile is not None else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """For the test's own https requests (trusting ``client_ca_file`` or ``ca_file``); None for plain http."""
        if self.certfile is None:
            return None
        ca = self.client_ca_file or self.ca_file
        return ssl.create_default_context(cafile=str(ca) if ca is not None else None)

    def start_cloud(self, timeout: float = 60) -> None:
        self.cloud.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.cloud.alive:
                raise AssertionError("the cloud exited:\n" + self.cloud.tail())
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.base + "/healthz", timeout=2, context=self.ssl_context) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("the cloud did not answer /healthz:\n" + self.cloud.tail())

    async def start_gateway(self, timeout: float = 60) -> None:
        self.gateway.start()
        deadline = time.monotonic() + timeout
        ctx = await aiocoap.Context.create_client_context()
        try:
            while time.monotonic() < deadline:
                if not self.gateway.alive:
                    raise AssertionError("the gateway exited:\n" + self.gateway.tail())
                msg = aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{self.coap_port}/.well-known/core")
                with contextlib.suppress(Exception):
                    resp = await asyncio.wait_for(ctx.request(msg).response, 1.0)
                    if resp.code.is_successful():
                        return
                await asyncio.sleep(0.1)
        finally:
            await ctx.shutdown()
        raise AssertionError("the gateway's CoAP did not answer:\n" + self.gateway.tail())

    def stop_all(self) -> None:
        self.gateway.stop()
        self.cloud.stop()

    def api(self, path: str, **params: Any) -> Any:
        """GET an API path with the observer token; returns the parsed JSON."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        req = urllib.request.Request(
            f"{self.base}{path}" + (f"?{query}" if query else ""), headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10, context=self.ssl_context) as r:
            return json.loads(r.read())

    def readings(self, **params: Any) -> list[dict[str, Any]]:
        """Every stored reading matching ``params``, following the cursor."""
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            page = self.api("/api/v1/readings", limit=10000, cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page.get("next")
            if not cursor:
                return items
        raise AssertionError("pagination did not end")


class Sensor:
    """A CoAP sensor with a real aiocoap client; remembers every reading the gateway acknowledged."""

    def __init__(self, port: int, sensor: str) -> None:
        self.uri = f"coap://127.0.0.1:{port}/telemetry"
        self.sensor = sensor
        self.acked: list[Reading] = []
        self.failed = 0
        self._ctx: aiocoap.Context | None = None
        self._seq = 0

    async def __aenter__(self) -> Sensor:
        self._ctx = await aiocoap.Context.create_client_context()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ctx is not None:
            await self._ctx.shutdown()

    def next_readings(self, n: int = 5) -> list[Reading]:
        base = time.time()
        out = []
        for i in range(n):
            self._seq += 1
            out.append(Reading(self.sensor, "seq", float(self._seq), round(base + i * 1e-5, 6), "count"))
        return out

    async def post(self, readings: list[Reading], *, timeout: float = 5.0, cbor: bool = True) -> aiocoap.Message:
        """POST a pack confirmable; remembers the readings when the answer is 2.04."""
        assert self._ctx is not None
        payload = senml.encode(readings, encoding="cbor" if cbor else "json")
        msg = aiocoap.Message(code=aiocoap.POST, uri=self.uri, payload=payload)
        msg.opt.content_format = senml.CONTENT_FORMAT_CBOR if cbor else senml.CONTENT_FORMAT_JSON
        resp = await asyncio.wait_for(self._ctx.request(msg).response, timeout)
        if resp.code == aiocoap.CHANGED:
            self.acked.extend(readings)
        return resp

    async def stream(self, stop: asyncio.Event, *, every: float = 0.02, n: int = 5) -> None:
        """Post packs until ``stop`` is set; failures (gateway down) are counted, not raised."""
        while not stop.is_set():
            try:
                resp = await self.post(self.next_readings(n), timeout=2.0)
                if resp.code != aiocoap.CHANGED:
                    self.failed += 1
            except Exception:
                self.failed += 1
                await asyncio.sleep(0.2)
            await asyncio.sleep(every)


def key(item: dict[str, Any] | Reading) -> tuple[str, str, int]:
    """(sensor, metric, ts in µs) of an API item or a Reading."""
    if isinstance(item, Reading):
        return (item.sensor, item.metric, item.ts_us)
    from datetime import datetime

    ts = datetime.fromisoformat(item["ts"].replace("Z", "+00:00"))
    return (item["sensor"], item["metric"], round(ts.timestamp() * 1_000_000))


async def wait_for_readings(site: Site, sensor: Sensor, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Poll the API until every reading the sensor had acknowledged is stored (or time runs out)."""
    want = {key(r) for r in sensor.acked}
    items: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = await asyncio.to_thread(site.readings, sensor=sensor.sensor)
        if want <= {key(i) for i in items}:
            return items
        await asyncio.sleep(0.5)
    return items


def assert_exactly_once(sensor: Sensor, items: list[dict[str, Any]]) -> None:
    """Every reading the gateway acknowledged to ``sensor`` is among ``items``, and none is there twice."""
    keys = [key(i) for i in items]
    assert len(keys) == len(set(keys)), "a reading was stored twice"
    missing = {key(r) for r in sensor.acked} - set(keys)
    assert not missing, f"{len(missing)} of {len(sensor.acked)} acknowledged readings were lost"
