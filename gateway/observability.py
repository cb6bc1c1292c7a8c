"""The daemon's tasks for the people and programs watching it: systemd's watchdog and status, Prometheus metrics.

The daemon calls :func:`tasks` once its parts run (the watchdog task says READY=1 once the adapters
listen) and :func:`stopping` when it shuts down. prometheus-client is imported only when ``[metrics] enabled``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway import watchdog

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.daemon import Daemon
    from gateway.dm.commands import Dispatcher


def tasks(
    config: GatewayConfig, daemon: Daemon, agent: Dispatcher, parts: Sequence[asyncio.Task[None]]
) -> list[asyncio.Task[None]]:
    """The watchdog task, and the metrics endpoint's when enabled; ``parts``: the tasks whose end is a fault."""
    out = [asyncio.create_task(watchdog.watch(daemon, parts), name="watchdog")]
    if config.metrics.enabled:
        from gateway import metrics

        collector = metrics.GatewayCollector(daemon, commands=lambda: agent.counts, parts=parts)
        out.append(asyncio.create_task(metrics.serve(config.metrics, collector), name="metrics"))
    return out


def stopping() -> None:
    """Shutting down: STOPPING=1 for systemd."""
    watchdog.stopping()


async def idle(why: str) -> None:
    """No parts run on purpose (factory state): idle until cancelled, the watchdog still fed."""
    await watchdog.idle(why)
