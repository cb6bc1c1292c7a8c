"""What the local page's tests share: a real gateway daemon (in this process or in its own) with the page on a
free loopback port, a BLE replay of an encrypted BTHome sensor, and an HTTPS client that verifies the page's
self-signed certificate against its file.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway import daemon as gateway_daemon
from gateway.adapters.ble.scanner import record_line
from gateway.config import load
from gateway.localpage import cert, pin
from tests.gateway import ble_rig

PIN = "4921"
MAC = "54:48:E6:8F:80:A5"
"""An encrypted BTHome sensor (temperature, humidity) that nobody has paired yet."""
PLAIN_MAC = "A4:C1:38:0A:1B:2C"
"""A plain BTHome sensor, also unpaired: its preview shows its values."""
GATEWAY_ID = "rpi-0000c0ffee42"
HOST = cert.host_name(GATEWAY_ID)


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def replay_file(path: Path, *, seconds: float = 600.0, step: float = 0.5) -> Path:
    """Advertisements of the encrypted sensor (counter rising, so none is a replay) and the plain one."""
    lines = []
    n = int(seconds / step)
    for i in range(n):
        t = i * step
        enc = ble_rig.bthome(MAC, 21.0 + (i % 50) / 10, packet_id=i % 256, humidity=40.0, key=ble_rig.KEY,
                             counter=i + 1)  # fmt: skip
        lines.append(record_line(t, enc))
        if i % 4 == 0:
            lines.append(record_line(t + 0.01, ble_rig.bthome(PLAIN_MAC, 18.5, packet_id=(i // 4) % 256)))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(tmp: Path, port: int, *, ble: bool = True, extra: str = "", pin_set: bool = True) -> Path:
    """gateway.toml for a gateway with no cloud (nothing listens at its URL), BLE on a replay, the page on ``port``."""
    state = tmp / "state"
    if pin_set:
        pin.write(state / "local" / "pin.json", PIN)
    ble_section = ""
    if ble:
        replay = replay_file(tmp / "ble-replay.jsonl")
        ble_section = f'[adapters.ble]\nenabled = true\nreplay_file = "{replay}"\nwatchdog_s = 0\n'
    cfg = tmp / "gateway.toml"
    cfg.write_text(
        f'[gateway]\nid = "{GATEWAY_ID}"\nstate_dir = "{state}"\nshutdown_timeout_s = 2\n'
        f'[cloud]\nurl = "http://127.0.0.1:{free_port()}"\nbackoff_max_s = 5\n'
        '[identity]\nenroll = "off"\n'
        "[adapters.coap]\nenabled = false\n"
        f"{ble_section}"
        f'[local]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nmdns = false\n{extra}'
    )
    return cfg


async def wait_listening(port: int, timeout: float = 20.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            await asyncio.sleep(0.05)
            continue
        w.close()
        with contextlib.suppress(OSError):
            await w.wait_closed()
        return


@contextlib.asynccontextmanager
async def gateway(config_path: Path, port: int) -> AsyncIterator[gateway_daemon.Daemon]:
    """The real daemon, in this event loop, until the ``with`` ends (then stopped as on SIGTERM)."""
    config = load(config_path)
    ready: asyncio.Future[gateway_daemon.Daemon] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(gateway_daemon.run(config, ready=ready.set_result), name="test gateway")
    try:
        async with asyncio.timeout(30):
            d = await ready
        await wait_listening(port)
        yield d
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await task


def tls_for(state_dir: Path) -> ssl.SSLContext:
    """A client context that trusts only the page's own certificate file."""
    return ssl.create_default_context(cafile=str(state_dir / "local" / "cert.pem"))


class Browser:
    """An HTTPS client with its own cookies, verifying the page's certificate and its name."""

    def __init__(self, port: int, state_dir: Path, *, remote: str = "127.0.0.1") -> None:
        self.base = f"https://{remote}:{port}"
        self.tls = tls_for(state_dir)
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        """Close the connection pool."""
        await self.session.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        """Status, body text and response (redirects followed unless ``allow_redirects=False``)."""
        async with asyncio.timeout(20):
            async with self.session.request(
                method, self.base + path, ssl=self.tls, server_hostname=HOST, **kwargs
            ) as r:
                return r.status, await r.text(), r

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        """GET: status and body."""
        status, text, _ = await self.request("GET", path, **kwargs)
        return status, text

    async def post(self, path: str, data: dict[str, str], *, csrf: str | None = None, **kwargs: Any) -> tuple[int, str]:
        """POST a form (with the page's CSRF token unless ``csrf=""``): status and body of where it led."""
        form = dict(data)
        if csrf is None:
            csrf = await self.csrf()
        if csrf:
            form["csrf"] = csrf
        status, text, _ = await self.request("POST", path, data=form, **kwargs)
        return status, text

    async def csrf(self, path: str = "/") -> str:
        """The CSRF token of the page at ``path``."""
        _status, text = await self.get(path)
        return csrf_of(text)

    async def sign_in(self, pin_text: str = PIN) -> tuple[int, str]:
        """Fill in and send the sign-in form."""
        _status, form = await self.get("/signin")
        return await self.post("/signin", {"pin": pin_text}, csrf=csrf_of(form))


def csrf_of(page: str) -> str:
    """The hidden ``csrf`` field's value in ``page``."""
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m is not None, f"no CSRF field in {page[:300]!r}"
    return m.group(1)


async def until(done: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``done`` (sync or async) every 50 ms until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
