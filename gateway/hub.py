"""The hub: where adapters hand in Readings, and where rules and observers see them.

Adapters call :meth:`Hub.publish` and await it: it returns only once the readings are durable
in the sink (the buffer), so an adapter can acknowledge its source after it (CoAP 2.04, a serial
frame ACK). The same readings are then pushed to :attr:`Hub.readings`, a reactivex Subject that
the rules engine and local observers subscribe to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from reactivex.subject import Subject

from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)


class ReadingSink(Protocol):
    """Where readings go to become durable (the buffer)."""

    async def append(self, readings: Sequence[Reading]) -> None:
        """Return once ``readings`` are durable; raise BufferFull if they were refused."""


class Hub:
    """The gateway's reading bus."""

    def __init__(self, sink: ReadingSink) -> None:
        self._sink = sink
        self.readings: Subject[Reading] = Subject()
        self.published = 0
        self.observer_errors = 0

    async def publish(self, readings: Sequence[Reading]) -> None:
        """Make ``readings`` durable, then show them to subscribers; raises what the sink raises."""
        if not readings:
            return
        await self._sink.append(readings)
        self.published += len(readings)
        if not self.readings.observers:
            return  # nobody listens: skip a per-reading call into reactivex
        for r in readings:
            try:
                self.readings.on_next(r)
            except Exception:  # an observer's bug must never cost the adapter its acknowledgement
                self.observer_errors += 1
                _LOGGER.exception("a reading observer failed on %s", r.name)

    def close(self) -> None:
        """Complete the reading stream (on shutdown)."""
        self.readings.on_completed()
