"""The new version confirms itself: connected to the cloud with its adapters running, before its deadline.

The daemon runs :func:`confirm_when_healthy` beside its parts. When the slots show a switch still on
probation, it waits until the uplink is connected and no adapter has stopped, for ``healthy_for_s`` in a
row, and records the update as confirmed. Past the deadline it raises :class:`NotHealthy`, which ends the
daemon: the service manager starts it again, and the boot check before that start rolls back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.dm.ota import slots

_LOGGER = logging.getLogger(__name__)

POLL_S = 0.5


class NotHealthy(Exception):
    """The new version did not become healthy before its deadline."""


async def confirm_when_healthy(
    root: Path,
    *,
    connected: Callable[[], bool],
    parts: Sequence[asyncio.Task[None]],
    healthy_for_s: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> None:
    """Confirm a switched update once healthy; return at once when there is none; NotHealthy past the deadline."""
    state = await asyncio.to_thread(slots.load_state, root)
    upd = state.get("update") or {}
    if state["phase"] != "switched" or slots.active_slot(root) != upd.get("to_slot"):
        return
    deadline = float(upd.get("deadline") or 0)
    version = upd.get("version")
    _LOGGER.info("update: version %s is on probation until it is connected with its adapters running", version)
    healthy_since: float | None = None
    for _ in range(int(max(0.0, deadline - clock()) / POLL_S) + 2):
        now = clock()
        ok = connected() and not any(t.done() for t in parts)
        healthy_since = (healthy_since or now) if ok else None
        if healthy_since is not None and now - healthy_since >= healthy_for_s:
            await asyncio.to_thread(slots.confirm, root)
            _LOGGER.info("update: version %s confirmed healthy", version)
            return
        if now > deadline:
            break
        await asyncio.sleep(POLL_S)
    _LOGGER.error("update: version %s was not healthy by its deadline: stopping so the boot check rolls back", version)
    raise NotHealthy(f"version {version} was not connected with its adapters running by its deadline")
