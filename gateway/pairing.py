"""Which southbound sensors may have their readings bridged (the allow-list), and who asked to be."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

_LOGGER = logging.getLogger(__name__)
MAX_PENDING = 1000
ALLOWED_KIND = "allowed"
"""The registry's kind for sensors allowed by id (CoAP and serial senders paired by command or on site)."""


@dataclass(slots=True)
class PendingSensor:
    """A sensor that sent readings before it was paired: listed for the technician, not forwarded."""

    sensor: str
    source: str
    first_seen: float
    last_seen: float
    readings: int


class Pairing:
    """The allow-list of paired sensors and the list of unknown senders awaiting pairing."""

    def __init__(self, paired: tuple[str, ...] | list[str], *, accept_any: bool = False) -> None:
        self._paired = set(paired)
        self.accept_any = accept_any
        self.pending: dict[str, PendingSensor] = {}
        self.refused_readings = 0

    def allows(self, sensor: str) -> bool:
        """True if readings of ``sensor`` may be bridged."""
        return self.accept_any or sensor in self._paired

    def note_unknown(self, sensor: str, source: str, count: int) -> None:
        """Record readings refused from an unpaired sensor (logged once per sensor)."""
        self.refused_readings += count
        now = time.time()
        entry = self.pending.get(sensor)
        if entry is None:
            if len(self.pending) >= MAX_PENDING:
                return  # bounded: a flood of made-up ids must not grow memory
            self.pending[sensor] = PendingSensor(sensor, source, now, now, count)
            _LOGGER.warning(
                "Sensor %s (from %s) is not paired with this gateway: its readings are held back "
                "until a technician pairs it",
                sensor,
                source,
                extra={"sensor": sensor},  # journal field SENSOR
            )
        else:
            entry.last_seen = now
            entry.readings += count

    def pair(self, sensor: str) -> None:
        """Allow ``sensor`` from now on."""
        self._paired.add(sensor)
        self.pending.pop(sensor, None)

    def unpair(self, sensor: str) -> None:
        """Stop bridging ``sensor``."""
        self._paired.discard(sensor)

    @property
    def paired(self) -> frozenset[str]:
        """The sensors paired now."""
        return frozenset(self._paired)
