"""Text lines on a port: the ``metric=value[,metric=value]`` line protocol, and the base the NMEA handler shares.

Lines end at ``\\n`` (a ``\\r`` before it is dropped). A line longer than ``max_line`` is counted
(``oversize``) and skipped up to the next newline. The readings of one chunk of bytes go to the hub
together (one buffer append); their time is when the gateway received them. Nothing is
acknowledged on these protocols: a bad line is counted and logged once per incident.
"""

from __future__ import annotations

import abc
import logging
import time
from typing import TYPE_CHECKING, Any

from drivers import linetext
from gateway.adapters.serial.config import SerialPortSection
from gateway.adapters.serial.port import PortHandler, Write
from gateway.adapters.serial.rejects import Rejects
from gateway.errors import BufferFull
from gateway.hub import Hub
from wire.errors import PayloadError
from wire.reading import Reading

if TYPE_CHECKING:
    from gateway.adapters.base import Adapter

_LOGGER = logging.getLogger(__name__)


class BadLine(ValueError):
    """A line that does not parse; ``reason`` is its counter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class TextLineHandler(PortHandler):
    """Splits a port's bytes into lines, parses each with :meth:`parse`, publishes their readings."""

    protocol = "text"

    def __init__(self, section: SerialPortSection, hub: Hub, owner: Adapter) -> None:
        self.section = section
        self.sensor = section.sensor
        self._hub = hub
        self._owner = owner
        self._rejects = Rejects(section.path, owner.rejected)
        self._buf = b""
        self._skipping = False
        self._first = True
        self.lines = 0
        self.accepted = 0
        self.ignored = 0
        self.lost = 0

    def stats(self) -> dict[str, Any]:
        """This port's protocol counters."""
        return {
            "protocol": self.protocol,
            "sensor": self.sensor,
            "lines": self.lines,
            "accepted": self.accepted,
            "ignored": self.ignored,
            "lost": self.lost,
            "rejected": dict(self._rejects.counts),
        }

    @abc.abstractmethod
    def parse(self, text: str, now: float) -> list[Reading]:
        """The readings of one line; raise BadLine."""

    def connected(self, write: Write) -> None:
        """Port open: the first line may be the tail of one cut by the opening."""
        self._buf = b""
        self._skipping = False
        self._first = True

    def disconnected(self) -> None:
        """Nothing to undo."""

    async def handle(self, data: bytes) -> None:
        """Parse the complete lines in ``data`` (with what was left over) and publish their readings."""
        now = round(time.time(), 6)
        *lines, tail = (self._buf + data).split(b"\n")
        self._buf = b""
        readings: list[Reading] = []
        for raw in lines:
            if self._skipping:
                self._skipping = False  # the over-long line ends here, already counted
                continue
            self._line(raw, now, readings)
        if len(tail) > self.section.max_line:
            if not self._skipping:
                self._rejects.bad("oversize", f"a line runs past {self.section.max_line} bytes", tail[:64])
            self._skipping = True
        elif not self._skipping:
            self._buf = tail
        if readings:
            await self._publish(readings)

    def _line(self, raw: bytes, now: float, out: list[Reading]) -> None:
        first, self._first = self._first, False
        line = raw.rstrip(b"\r")
        if not line.strip():
            return
        self.lines += 1
        try:
            if len(line) > self.section.max_line:
                raise BadLine("oversize", f"a line of {len(line)} bytes is over the limit of {self.section.max_line}")
            try:
                text = line.decode("ascii")
            except UnicodeDecodeError as exc:
                raise BadLine("malformed", f"a line holds a byte that is not ASCII (0x{line[exc.start]:02x})") from exc
            got = self.parse(text, now)
        except BadLine as exc:
            if first:
                _LOGGER.debug("Serial port %s: first line after opening skipped: %s", self.section.path, exc.detail)
                return
            self._rejects.bad(exc.reason, exc.detail, line)
            return
        self._rejects.good()
        out.extend(got)

    async def _publish(self, readings: list[Reading]) -> None:
        try:
            await self._hub.publish(readings)
        except BufferFull:
            self.lost += len(readings)
            self._owner.rejected["buffer-full"] += 1
            return
        except Exception:
            self.lost += len(readings)
            self._owner.rejected["internal"] += 1
            _LOGGER.exception("Serial port %s: storing %d readings failed", self.section.path, len(readings))
            return
        self.accepted += len(readings)
        self._owner.accepted += len(readings)


class LineHandler(TextLineHandler):
    """``metric=value[,metric=value]`` per line (drivers.linetext), for the simplest Arduinos."""

    protocol = "line"

    def parse(self, text: str, now: float) -> list[Reading]:
        """The line's readings, named by the port's sensor id."""
        try:
            pairs = linetext.parse(text)
        except PayloadError as exc:
            raise BadLine("malformed", f"line {text[:40]!r}: {exc.reason}") from exc
        return [Reading(self.sensor, metric, value, now) for metric, value in pairs]
