"""Counting bad input on a port, and logging it once per incident rather than once per byte of noise."""

from __future__ import annotations

import logging
from collections import Counter

_LOGGER = logging.getLogger("gateway.adapters.serial")
TRACE = 5


class Rejects:
    """Counts refusals into the adapter's counter (and the port's); WARNING once per incident, INFO on recovery."""

    def __init__(self, path: str, adapter_counter: Counter[str]) -> None:
        self.path = path
        self._adapter = adapter_counter
        self.counts: Counter[str] = Counter()
        self._active = 0  # bad inputs in the incident under way (0: none)

    def bad(self, reason: str, detail: str, raw: bytes = b"") -> None:
        """One refused input (frame, line, sentence)."""
        self._adapter[reason] += 1
        self.counts[reason] += 1
        if raw and _LOGGER.isEnabledFor(TRACE):
            _LOGGER.log(TRACE, "Serial port %s: refused bytes %s", self.path, raw.hex(" "))
        if not self._active:
            _LOGGER.warning(
                "Serial port %s: %s (%s); further bad input is counted until good input arrives",
                self.path,
                detail,
                reason,
                extra={"adapter": "serial"},  # journal field ADAPTER
            )
        else:
            _LOGGER.debug("Serial port %s: %s (%s)", self.path, detail, reason)
        self._active += 1

    def good(self) -> None:
        """Good input arrived: the incident (if any) is over."""
        if self._active:
            _LOGGER.info("Serial port %s: good input again, after %d refused", self.path, self._active)
            self._active = 0
