"""Readiness and the watchdog against a real daemon, with a unix datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway import config as gwconfig
from gateway import watchdog
from gateway.daemon import Daemon, run
from tests.systemd.rig import NotifySocket, free_port, gateway_toml, post_text

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s


@dataclass
class Running:
    daemon: Daemon
    notify: NotifySocket
    task: asyncio.Task[None]
    coap_port: int


@contextlib.asynccontextmanager
async def running_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    """The daemon in this event loop, with NOTIFY_SOCKET and WATCHDOG_USEC as systemd sets them."""
    notify = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    port = free_port(__import__("socket").SOCK_DGRAM)
    cfg = gwconfig.loads(gateway_toml(tmp_path / "state", coap_port=port), base_dir=tmp_path)
    started: list[Daemon] = []
    up = asyncio.Event()
    task = asyncio.create_task(run(cfg, ready=lambda d: (started.append(d), up.set())[0]))
    try:
        async with asyncio.timeout(20):
            await up.wait()
        yield Running(started[0], notify, task, port)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await task
        notify.close()


def _pings_between(notify: NotifySocket, start: float, end: float) -> int:
    return sum(1 for m in notify.with_field("WATCHDOG", "1") if start <= m.at <= end)


@pytest.mark.slow
async def test_ready_then_pings_at_half_the_interval_then_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_daemon(tmp_path, monkeypatch) as r:
        ready = await r.notify.await_for("READY", "1")
        assert "adapter" in ready.fields["STATUS"] and "buffer 0" in ready.fields["STATUS"]
        # READY comes once CoAP listens: a reading posted right after it is taken.
        assert await post_text(r.coap_port, "kitchen-1", "temp=21.5") == "2.04 Changed"
        t0 = time.monotonic()
        await asyncio.sleep(2.0)
        n = _pings_between(r.notify, ready.at, ready.at + 2.0)
        # 0.5 s apart: 4 or 5 in 2 s; a loaded machine may lose one, never gain.
        assert 3 <= n <= 5, f"{n} pings in 2 s"
        gaps = [b.at - a.at for a, b in itertools.pairwise(r.notify.with_field("WATCHDOG"))]
        assert max(gaps) < WATCHDOG_USEC / 1e6, f"a gap of {max(gaps):.2f} s would let systemd's watchdog fire"
        assert time.monotonic() - t0 >= 2.0
        status = [m.fields["STATUS"] for m in r.notify.with_field("STATUS")]
        assert any("buffer 1" in s for s in status), status  # the status line follows the buffer
    assert r.notify.with_field("STOPPING", "1"), "no STOPPING=1 on shutdown"


@pytest.mark.slow
async def test_pings_stop_when_the_buffer_cannot_take_readings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_daemon(tmp_path, monkeypatch) as r:
        await r.notify.await_for("WATCHDOG", "1")
        await r.daemon.buffer.close()  # its writer ends: appends now fail
        closed_at = time.monotonic()
        bad = await r.notify.await_for("STATUS", timeout=5.0)
        await asyncio.sleep(1.5)
        late = [m for m in r.notify.with_field("WATCHDOG", "1") if m.at > closed_at + 0.25]
        assert not late, f"{len(late)} pings after the buffer closed"
        unhealthy = [m.fields["STATUS"] for m in r.notify.with_field("STATUS") if "unhealthy" in m.fields["STATUS"]]
        assert unhealthy and "buffer" in unhealthy[0], bad.fields


@pytest.mark.slow
async def test_pings_stop_when_an_adapter_task_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_daemon(tmp_path, monkeypatch) as r:
        await r.notify.await_for("WATCHDOG", "1")
        coap = next(t for t in asyncio.all_tasks() if t.get_name() == "adapter coap")
        coap.cancel()
        cancelled_at = time.monotonic()
        await asyncio.sleep(1.5)
        late = [m for m in r.notify.with_field("WATCHDOG", "1") if m.at > cancelled_at + 0.25]
        assert not late, f"{len(late)} pings after the CoAP adapter stopped"
        assert any("adapter coap was cancelled" in m.fields["STATUS"] for m in r.notify.with_field("STATUS"))
        assert not r.task.done(), "the daemon itself keeps running: systemd's watchdog ends it"


@pytest.mark.slow
async def test_health_check_names_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_daemon(tmp_path, monkeypatch) as r:

        async def ends() -> None:
            return None

        async def fails() -> None:
            raise OSError("port gone")

        alive = asyncio.create_task(asyncio.sleep(60), name="adapter alive")
        ended = asyncio.create_task(ends(), name="adapter ended")
        failed = asyncio.create_task(fails(), name="adapter failed")
        await asyncio.sleep(0.05)
        assert watchdog.check(r.daemon, [alive]).ok
        health = watchdog.check(r.daemon, [alive, ended, failed])
        assert not health.ok
        assert health.problems == ["adapter ended ended", "adapter failed failed: port gone"]
        assert "unhealthy (adapter ended ended" in watchdog.status_line(r.daemon, health)
        alive.cancel()
        await asyncio.gather(alive, return_exceptions=True)


async def test_idle_keeps_the_watchdog_fed_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        task = asyncio.create_task(watchdog.idle("factory state"))
        await asyncio.sleep(0.55)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await notify.await_for("STOPPING", "1", timeout=5)
        assert notify.with_field("STATUS", "idle: factory state")
        assert 4 <= len(notify.with_field("WATCHDOG", "1")) <= 7
    finally:
        notify.close()
