"""What the service tests share: a unix datagram socket standing in for systemd, configs, a CoAP sender."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiocoap

ROOT = Path(__file__).resolve().parents[2]
ROOST = ROOT / ".venv" / "bin" / "roost"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody uses now (TCP, or UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Message:
    """One notification: when it arrived and its fields."""

    at: float
    fields: dict[str, str]


@dataclass
class NotifySocket:
    """systemd's end of sd_notify: a bound unix datagram socket; a thread stamps each message as it arrives."""

    path: Path
    sock: socket.socket = field(init=False)
    messages: list[Message] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._receive, name="notify-socket", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.messages.append(Message(time.monotonic(), fields))

    def drain(self) -> list[Message]:
        """Everything received so far."""
        return list(self.messages)

    def with_field(self, key: str, value: str | None = None) -> list[Message]:
        """Messages carrying ``key`` (with ``value``, when given)."""
        return [m for m in self.drain() if key in m.fields and (value is None or m.fields[key] == value)]

    def wait_for(self, key: str, value: str | None = None, timeout: float = 20.0) -> Message:
        """The first message carrying ``key`` (=``value``), waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.with_field(key, value)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value or '*'} within {timeout} s; got {[m.fields for m in self.messages]}")

    async def await_for(self, key: str, value: str | None = None, timeout: float = 20.0) -> Message:
        """:meth:`wait_for` for a test running the daemon in its own event loop."""
        async with asyncio.timeout(timeout):
            while True:
                found = self.with_field(key, value)
                if found:
                    return found[0]
                await asyncio.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.sock.close()


def gateway_toml(
    state: Path,
    *,
    coap_port: int,
    metrics_port: int | None = None,
    accept: str = "any",
    paired: tuple[str, ...] = (),
    rules: Path | None = None,
) -> str:
    """A gateway with CoAP on loopback, no cloud reachable (it buffers), fake privileged actions."""
    metrics = f'[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = {metrics_port}\n' if metrics_port else ""
    metrics += f'[rules]\nfiles = ["{rules}"]\n' if rules else ""
    return (
        f"paired = [{', '.join(repr(p).replace(chr(39), chr(34)) for p in paired)}]\n"
        f'[gateway]\nstate_dir = "{state}"\nshutdown_timeout_s = 2.0\n'
        '[cloud]\nurl = "http://127.0.0.1:1"\nbackoff_max_s = 1.0\n'
        '[identity]\nenroll = "off"\n'
        '[dm]\nprivileged = "fake"\nnetwork = "fake"\n'
        f'[adapters.coap]\nhost = "127.0.0.1"\nport = {coap_port}\naccept = "{accept}"\n' + metrics
    )


async def post_text(port: int, sensor: str, body: str) -> str:
    """POST ``metric=value,...`` to /telemetry/{sensor} over CoAP; the response code as text."""
    ctx = await aiocoap.Context.create_client_context()
    try:
        msg = aiocoap.Message(
            code=aiocoap.POST, uri=f"coap://127.0.0.1:{port}/telemetry/{sensor}", payload=body.encode()
        )
        async with asyncio.timeout(10):
            resp = await ctx.request(msg).response
        return str(resp.code)
    finally:
        await ctx.shutdown()


def rss_kb(pid: int) -> int:
    """A process' resident set size (kB) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def env_for(notify: Path | None = None, watchdog_usec: int | None = None, **extra: str) -> dict[str, str]:
    """The environment systemd would give the service (NOTIFY_SOCKET, WATCHDOG_USEC), on top of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["PYTHONUNBUFFERED"] = "1"
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify)
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    env.update(extra)
    return env


@contextlib.contextmanager
def ready_gateway(config: Path, notify_path: Path, *, timeout: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    """``roost gateway run --config config`` as its own process, yielded once it said READY=1; stopped after."""
    notify = NotifySocket(notify_path)
    proc = subprocess.Popen(
        [str(ROOST), "gateway", "run", "--config", str(config)],
        env=env_for(notify.path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        notify.wait_for("READY", "1", timeout=timeout)  # sd_notify: CoAP is listening
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        notify.close()
