"""Live readings and device events for the page: one Hub subscription, a bounded queue per browser.

The hub calls :meth:`LiveFeed._on_reading` synchronously while it publishes; a browser that reads
slowly must never hold the hub up, so each client's queue is bounded and, when full, loses its oldest
message (counted in ``dropped``) instead of blocking. The latest value of each sensor's metric is kept
(bounded too) so a page that opens shows values at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.hub import Hub
from wire.events import Event
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

RECENT_EVENTS = 20
"""Device events kept for the pairing page (who joined lately)."""
MAX_LATEST = 2000
"""Sensor metrics whose latest value is kept for a page that opens (a busy site must not grow memory)."""


class TooManyClients(Exception):
    """Every live stream slot is taken."""


def reading_json(r: Reading) -> dict[str, Any]:
    """A reading as the page's JavaScript expects it."""
    return {"type": "reading", "sensor": r.sensor, "metric": r.metric, "value": r.value, "unit": r.unit or "",
            "ts": r.ts}  # fmt: skip


def event_json(e: Event) -> dict[str, Any]:
    """A device event (a Zigbee device joined, was interviewed, left) for the pairing page."""
    data = {k: v for k, v in e.data.items() if isinstance(v, str | int | float | bool)}
    return {"type": "event", "kind": e.kind, "sensor": e.sensor or "", "what": e.value, "message": e.message,
            "ts": e.ts, "data": data}  # fmt: skip


@dataclass(eq=False)
class LiveClient:
    """One browser's stream: a bounded queue of JSON-ready messages."""

    size: int
    queue: collections.deque[dict[str, Any]] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    closed: bool = False
    """The page is stopping: the stream should end."""

    def put(self, message: dict[str, Any]) -> None:
        """Queue ``message``; the oldest goes when the queue is full (never blocks)."""
        if len(self.queue) >= self.size:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(message)
        self.wake.set()

    async def get(self, timeout: float) -> list[dict[str, Any]]:
        """What is queued (waiting up to ``timeout`` for something); [] on timeout."""
        if not self.queue:
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.wake.wait()
        out = list(self.queue)
        self.queue.clear()
        return out


class LiveFeed:
    """Subscribes to the hub while the page runs; hands every reading and event to each open stream."""

    def __init__(self, hub: Hub, *, queue_size: int, max_clients: int) -> None:
        self._hub = hub
        self._queue_size = queue_size
        self._max_clients = max_clients
        self.clients: set[LiveClient] = set()
        self.latest: collections.OrderedDict[tuple[str, str], dict[str, Any]] = collections.OrderedDict()
        self.dropped = 0
        """Messages slow browsers lost (their queue was full)."""
        self.recent_events: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_EVENTS)
        self._subscriptions: list[Any] = []

    def start(self) -> None:
        """Subscribe to the hub's readings and events."""
        self._subscriptions = [
            self._hub.readings.subscribe(on_next=self._on_reading),
            self._hub.events.subscribe(on_next=self._on_event),
        ]

    def stop(self) -> None:
        """Unsubscribe (the page is stopping)."""
        for s in self._subscriptions:
            s.dispose()
        self._subscriptions = []
        for c in self.clients:
            c.closed = True
            c.wake.set()

    def _on_reading(self, r: Reading) -> None:
        message = reading_json(r)
        key = (r.sensor, r.metric)
        self.latest[key] = message
        self.latest.move_to_end(key)
        if len(self.latest) > MAX_LATEST:
            self.latest.popitem(last=False)
        self._fan_out(message)

    def _on_event(self, e: Event) -> None:
        if e.kind == "device":
            message = event_json(e)
            self.recent_events.append(message)
            self._fan_out(message)

    def _fan_out(self, message: dict[str, Any]) -> None:
        for c in self.clients:
            before = c.dropped
            c.put(message)
            self.dropped += c.dropped - before

    def open(self) -> LiveClient:
        """A stream for one browser; TooManyClients when every slot is taken. Close it with :meth:`close`."""
        if len(self.clients) >= self._max_clients:
            raise TooManyClients(f"{self._max_clients} live pages are open already")
        c = LiveClient(self._queue_size)
        self.clients.add(c)
        return c

    def close(self, c: LiveClient) -> None:
        """The browser went away."""
        self.clients.discard(c)
        if c.dropped:
            _LOGGER.info("A live page was too slow and missed %d readings", c.dropped)
