"""What the service manager sees of the daemon: readiness, a status line, and a watchdog fed only while healthy.

Under ``roost-gateway.service`` (``Type=notify``, ``WatchdogSec=``) the daemon says ``READY=1`` once its
parts are started, keeps ``STATUS=`` current (``online, 3 adapters, buffer 0``), pings ``WATCHDOG=1`` at
half the watchdog interval from its event loop while :func:`check` finds it healthy, and says
``STOPPING=1`` when it shuts down. A blocked event loop stops the pings by itself; a dead part stops
them on purpose. Either way systemd kills and restarts the service (``Restart=always``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway import sdnotify

if TYPE_CHECKING:
    from gateway.buffer import DurableBuffer
    from gateway.daemon import Daemon

_LOGGER = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
"""Seconds between status refreshes when no watchdog is configured."""
READY_WAIT_S = 20.0
"""Longest READY=1 waits for adapters that can say when they listen (CoAP's socket bound)."""


@dataclass(frozen=True, slots=True)
class Health:
    """The daemon's health as the watchdog judges it."""

    ok: bool
    problems: list[str] = field(default_factory=list)


def buffer_writable(buffer: DurableBuffer) -> bool:
    """Whether the buffer is open and its writer (the task that commits readings) is still running."""
    writer = buffer._writer_task  # the buffer's own task: no public view of it yet
    return buffer._open and not buffer._closing and writer is not None and not writer.done()


def check(daemon: Daemon, parts: Sequence[asyncio.Task[None]]) -> Health:
    """Healthy: the buffer can take readings and no essential part (uplink, adapters, rules, control) has ended.

    The event loop being alive is implied: this runs on it. The uplink being disconnected is *not* a
    fault (the buffer holds readings through an outage); its task having ended is.
    """
    problems: list[str] = []
    if not buffer_writable(daemon.buffer):
        problems.append(f"buffer {daemon.buffer.path} cannot take readings")
    for task in parts:
        if not task.done():
            continue
        if task.cancelled():
            problems.append(f"{task.get_name()} was cancelled")
        else:
            exc = task.exception()
            problems.append(f"{task.get_name()} failed: {exc}" if exc is not None else f"{task.get_name()} ended")
    return Health(ok=not problems, problems=problems)


def status_line(daemon: Daemon, health: Health) -> str:
    """One line for ``systemctl status``: connection, adapters, buffer depth (and what is wrong)."""
    link = "online" if daemon.uplink.connected else "offline"
    n = len(daemon.adapters)
    text = f"{link}, {n} adapter{'s' if n != 1 else ''}, buffer {daemon.buffer.stats()['buffered']}"
    if not health.ok:
        text = f"unhealthy ({'; '.join(health.problems)}), {text}"
    return text


def ready(daemon: Daemon) -> None:
    """Tell systemd the daemon's parts are started."""
    if sdnotify.notify("READY=1", f"STATUS={status_line(daemon, Health(ok=True))}"):
        _LOGGER.debug("told the service manager the gateway is ready")


def stopping() -> None:
    """Tell systemd the daemon is shutting down (so a slow shutdown is not taken for a hang)."""
    sdnotify.notify("STOPPING=1", "STATUS=stopping")


async def _listening(daemon: Daemon, timeout: float) -> None:
    """Wait (at most ``timeout``) for the adapters that can tell when they are listening."""
    waits = [w() for a in daemon.adapters if callable(w := getattr(a, "wait_ready", None))]
    if not waits:
        return
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*waits)
    except TimeoutError:
        _LOGGER.warning("Some adapters were not listening after %.0f s: telling systemd the gateway is up", timeout)


async def watch(daemon: Daemon, parts: Sequence[asyncio.Task[None]], *, ready_wait_s: float = READY_WAIT_S) -> None:
    """Until cancelled: READY=1 once the adapters listen, then ping the watchdog while healthy, keep STATUS current."""
    interval = sdnotify.watchdog_interval()
    if interval is None and not sdnotify.enabled():
        return  # not under a service manager: nothing to tell anyone
    await _listening(daemon, ready_wait_s)
    ready(daemon)
    period = interval if interval is not None else STATUS_EVERY_S
    last_status = ""
    was_ok = True
    while True:
        health = check(daemon, parts)
        if health.ok != was_ok:
            if health.ok:
                _LOGGER.info("The gateway is healthy again")
            else:
                _LOGGER.error(
                    "The gateway is unhealthy (%s): the service manager's watchdog will restart it",
                    "; ".join(health.problems),
                )
            was_ok = health.ok
        fields = []
        if health.ok and interval is not None:
            fields.append("WATCHDOG=1")
        status = status_line(daemon, health)
        if status != last_status:
            fields.append(f"STATUS={status}")
            last_status = status
        if fields:
            sdnotify.notify(*fields)
        await asyncio.sleep(period)


async def idle(why: str) -> None:
    """Until cancelled, with no parts running on purpose (factory state): keep the watchdog fed, say why."""
    interval = sdnotify.watchdog_interval()
    sdnotify.notify(f"STATUS=idle: {why}")
    try:
        while True:
            if interval is None:
                await asyncio.Event().wait()  # no watchdog: nothing to feed
            else:
                sdnotify.notify("WATCHDOG=1")
                await asyncio.sleep(interval)
    finally:
        stopping()
