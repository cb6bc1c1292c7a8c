"""The hub: where adapters hand in Readings, and where rules and observers see them.

Adapters call :meth:`Hub.publish` and await it: it returns only once the readings are durable
in the sink (the buffer), so an adapter can acknowledge its source after it (CoAP 2.04, a serial
frame ACK). The same readings are then pushed to :attr:`Hub.readings`, a reactivex Subject that
the rules engine and local observers subscribe to.

Events (rule alerts, annotations, device events) take the same path: :meth:`Hub.publish_events`
returns once they are durable in the buffer's event queue, then shows them on :attr:`Hub.events`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from reactivex.subject import Subject

from gateway.errors import BufferError_
from wire.events import Event
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)


class ReadingSink(Protocol):
    """Where readings go to become durable (the buffer)."""

    async def append(self, readings: Sequence[Reading]) -> None:
        """Return once ``readings`` are durable; raise BufferFull if they were refused."""


@runtime_checkable
class EventSink(Protocol):
    """Where events go to become durable (the buffer)."""

    async def append_events(self, events: Sequence[Event]) -> None:
        """Return once ``events`` are durable; raise BufferFull if they were refused."""


class Hub:
    """The gateway's reading bus."""

    def __init__(self, sink: ReadingSink, events: EventSink | None = None) -> None:
        """``events`` defaults to ``sink`` when it can hold events too (the buffer can)."""
        self._sink = sink
        self._event_sink = events if events is not None else sink if isinstance(sink, EventSink) else None
        self.readings: Subject[Reading] = Subject()
        self.events: Subject[Event] = Subject()
        self.published = 0
        self.published_events = 0
        self.observer_errors = 0
        self.shaper: Callable[[Sequence[Reading]], list[Reading]] | None = None
        """Uplink shaping (the rules engine's deadband and downsample): what the buffer keeps of a batch.

        Subscribers still see every reading; what shaping leaves out was left out by the operator's design.
        """
        self.shaped_out = 0
        self.batch_observers: list[Callable[[Sequence[Reading]], None]] = []
        """Called with each whole batch once it is durable (the rules engine works in batches)."""

    async def publish(self, readings: Sequence[Reading]) -> None:
        """Make ``readings`` durable, then show them to subscribers; raises what the sink raises."""
        if not readings:
            return
        kept: Sequence[Reading] = readings
        if self.shaper is not None:
            try:
                kept = self.shaper(readings)
            except Exception:  # shaping is an optimisation: on a bug, keep everything
                _LOGGER.exception("uplink shaping failed: keeping the whole batch")
                kept = readings
            self.shaped_out += len(readings) - len(kept)
        if kept:
            await self._sink.append(kept)
        self.published += len(readings)
        for observe in self.batch_observers:
            try:
                observe(readings)
            except Exception:  # an observer's bug must never cost the adapter its acknowledgement
                self.observer_errors += 1
                _LOGGER.exception("a batch observer failed")
        if not self.readings.observers:
            return  # nobody listens: skip a per-reading call into reactivex
        for r in readings:
            try:
                self.readings.on_next(r)
            except Exception:  # an observer's bug must never cost the adapter its acknowledgement
                self.observer_errors += 1
                _LOGGER.exception("a reading observer failed on %s", r.name)

    async def publish_events(self, events: Sequence[Event]) -> None:
        """Make ``events`` durable, then show them on :attr:`events`; raises what the sink raises.

        BufferError_ when the hub has no event sink; wire's PayloadError for an event the cloud would refuse.
        """
        if not events:
            return
        if self._event_sink is None:
            raise BufferError_("this hub has no event sink")
        await self._event_sink.append_events(events)
        self.published_events += len(events)
        if not self.events.observers:
            return
        for e in events:
            try:
                self.events.on_next(e)
            except Exception:  # an observer's bug must never cost the producer its acknowledgement
                self.observer_errors += 1
                _LOGGER.exception("an event observer failed on %s", e.id)

    def close(self) -> None:
        """Complete the reading and event streams (on shutdown)."""
        self.readings.on_completed()
        self.events.on_completed()
