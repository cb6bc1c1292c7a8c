"""NMEA 0183 sentences on a port (a GPS receiver): readings named by the port's sensor id, and the last fix.

Sentences Roost does not decode (GSV, proprietary ``$P...``) but whose checksum is right are
ignored and counted as ``ignored``, not as refusals: receivers send them all the time. A sentence
whose checksum or fields are wrong is refused (``malformed``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers import nmea
from gateway.adapters.serial.config import SerialPortSection
from gateway.adapters.serial.line_protocol import BadLine, TextLineHandler
from gateway.adapters.serial.port import Write
from gateway.hub import Hub
from wire.reading import Reading

if TYPE_CHECKING:
    from gateway.adapters.serial.adapter import SerialAdapter


class NmeaHandler(TextLineHandler):
    """One GPS receiver's sentences, decoded in order (so GGA times get the last RMC's date)."""

    protocol = "nmea"

    def __init__(self, section: SerialPortSection, hub: Hub, owner: SerialAdapter) -> None:
        super().__init__(section, hub, owner)
        self._adapter = owner
        self._stream = nmea.NmeaStream()

    def connected(self, write: Write) -> None:
        """Port open: a new stream (the receiver may have been swapped)."""
        super().connected(write)
        self._stream = nmea.NmeaStream()

    def parse(self, text: str, now: float) -> list[Reading]:
        """The sentence's measurements as readings; a fix becomes the gateway's location."""
        try:
            result = self._stream.decode(text)
        except nmea.NmeaError as exc:
            if _intact_but_not_decoded(text):
                self.ignored += 1
                return []
            raise BadLine("malformed", f"NMEA {text.strip()[:24]!r}: {exc}") from exc
        if result.fix is not None:
            self._adapter.note_fix(result.fix, now, self.section.path)
        sensor = self.sensor
        return [Reading(sensor, ms.metric, ms.value, now, ms.unit) for ms in result.measurements]


def _intact_but_not_decoded(text: str) -> bool:
    """A sentence with a good checksum whose type Roost does not decode (``$GPGSV``, ``$PUBX``)."""
    line = text.strip()
    if not line.startswith("$"):
        return False
    body, star, given = line[1:].rpartition("*")
    if not star or len(given) != 2:
        return False
    try:
        if int(given, 16) != nmea.checksum(body):
            return False
    except ValueError:
        return False
    address = body.split(",", 1)[0]
    return address.startswith("P") or address[2:] not in nmea.SUPPORTED
