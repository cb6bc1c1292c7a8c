"""An emulated GPS receiver: builds valid NMEA 0183 sentences (checksum included) from a position and a time.

Pure (no I/O): the tests and the demo write what it builds into a serial pty, or decode it directly.
:class:`Talker` moves along a course and speaks GGA, RMC, GSA and VTG once per epoch, like a
receiver at 1 Hz; :func:`replay` yields the sentences of a recorded log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from drivers.nmea import KNOT_MPS, checksum

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class Position:
    """Decimal degrees (north and east positive) and metres above mean sea level."""

    lat: float
    lon: float
    alt_m: float = 0.0


def frame(body: str) -> str:
    """``$body*HH``: a sentence with its checksum (``body`` without ``$`` and ``*``)."""
    return f"${body}*{checksum(body):02X}"


def _angle(value: float, width: int, hemis: str, decimals: int) -> tuple[str, str]:
    minutes_total = round(abs(value) * 60.0, decimals)
    degrees = int(minutes_total // 60)
    minutes = minutes_total - degrees * 60
    return f"{degrees:0{width}d}{minutes:0{decimals + 3}.{decimals}f}", hemis[0] if value >= 0 else hemis[1]


def lat_field(lat: float, decimals: int = 4) -> tuple[str, str]:
    """Latitude as ``DDMM.MMMM`` and ``N``/``S``."""
    return _angle(lat, 2, "NS", decimals)


def lon_field(lon: float, decimals: int = 4) -> tuple[str, str]:
    """Longitude as ``DDDMM.MMMM`` and ``E``/``W``."""
    return _angle(lon, 3, "EW", decimals)


def _tod(when: datetime, decimals: int) -> str:
    base = when.strftime("%H%M%S")
    if decimals <= 0:
        return base
    frac = f"{when.microsecond / 1e6:.{decimals}f}"[1:]
    return base + frac


def gga(
    pos: Position | None,
    when: datetime,
    *,
    talker: str = "GP",
    quality: int = 1,
    satellites: int = 8,
    hdop: float = 0.9,
    geoid_m: float = 46.9,
    decimals: int = 4,
    time_decimals: int = 0,
) -> str:
    """A GGA sentence; ``pos`` None (or ``quality`` 0) gives a no-fix sentence with empty position fields."""
    if pos is None or quality == 0:
        return frame(f"{talker}GGA,{_tod(when, time_decimals)},,,,,0,{satellites:02d},,,M,,M,,")
    lat, ns = lat_field(pos.lat, decimals)
    lon, ew = lon_field(pos.lon, decimals)
    return frame(
        f"{talker}GGA,{_tod(when, time_decimals)},{lat},{ns},{lon},{ew},{quality},{satellites:02d},"
        f"{hdop:.1f},{pos.alt_m:.1f},M,{geoid_m:.1f},M,,"
    )


def rmc(
    pos: Position | None,
    when: datetime,
    *,
    speed_mps: float = 0.0,
    course_deg: float = 0.0,
    talker: str = "GP",
    mode: str | None = "A",
    decimals: int = 4,
    time_decimals: int = 0,
) -> str:
    """An RMC sentence (NMEA 2.3 with a mode indicator unless ``mode`` is None); ``pos`` None: status V."""
    tail = "" if mode is None else f",{mode if pos is not None else 'N'}"
    day = when.strftime("%d%m%y")
    if pos is None:
        return frame(f"{talker}RMC,{_tod(when, time_decimals)},V,,,,,,,{day},,{tail}")
    lat, ns = lat_field(pos.lat, decimals)
    lon, ew = lon_field(pos.lon, decimals)
    knots = speed_mps / KNOT_MPS
    return frame(
        f"{talker}RMC,{_tod(when, time_decimals)},A,{lat},{ns},{lon},{ew},{knots:.2f},{course_deg:.2f},{day},,{tail}"
    )


def gsa(
    satellite_ids: Iterable[int], *, fix_type: int = 3, pdop: float = 1.6, hdop: float = 0.9, vdop: float = 1.3
) -> str:
    """A GPGSA sentence for up to 12 satellites in use."""
    ids = [f"{i:02d}" for i in list(satellite_ids)[:12]]
    ids += [""] * (12 - len(ids))
    return frame(f"GPGSA,A,{fix_type},{','.join(ids)},{pdop:.1f},{hdop:.1f},{vdop:.1f}")


def vtg(speed_mps: float, course_deg: float, *, talker: str = "GP", mode: str = "A") -> str:
    """A VTG sentence (NMEA 2.3) with the speed in knots and km/h."""
    return frame(f"{talker}VTG,{course_deg:.2f},T,,M,{speed_mps / KNOT_MPS:.3f},N,{speed_mps * 3.6:.3f},K,{mode}")


def moved(pos: Position, distance_m: float, course_deg: float) -> Position:
    """``pos`` moved ``distance_m`` along ``course_deg`` (true), on a sphere: fine for metres to kilometres."""
    d = distance_m / EARTH_RADIUS_M
    lat1, lon1, brg = math.radians(pos.lat), math.radians(pos.lon), math.radians(course_deg)
    lat2 = math.asin(math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(brg))
    east = math.sin(brg) * math.sin(d) * math.cos(lat1)
    lon2 = lon1 + math.atan2(east, math.cos(d) - math.sin(lat1) * math.sin(lat2))
    lon_deg = (math.degrees(lon2) + 540.0) % 360.0 - 180.0
    return Position(math.degrees(lat2), lon_deg, pos.alt_m)


@dataclass(slots=True)
class Talker:
    """A receiver moving at a constant speed and course, one epoch of sentences per call to :meth:`epoch`."""

    position: Position
    when: datetime
    speed_mps: float = 0.0
    course_deg: float = 0.0
    talker: str = "GP"
    satellites: tuple[int, ...] = (2, 5, 12, 13, 15, 18, 20, 25, 29)
    interval_s: float = 1.0
    epochs: int = field(default=0, init=False)

    def epoch(self) -> list[str]:
        """The sentences of one epoch (GGA, GSA, RMC, VTG), then advance by ``interval_s``."""
        out = [
            gga(self.position, self.when, talker=self.talker, satellites=len(self.satellites), time_decimals=2),
            gsa(self.satellites),
            rmc(
                self.position,
                self.when,
                speed_mps=self.speed_mps,
                course_deg=self.course_deg,
                talker=self.talker,
                time_decimals=2,
            ),
            vtg(self.speed_mps, self.course_deg, talker=self.talker),
        ]
        self.position = moved(self.position, self.speed_mps * self.interval_s, self.course_deg)
        self.when += timedelta(seconds=self.interval_s)
        self.epochs += 1
        return out

    def sentences(self, epochs: int) -> Iterator[str]:
        """``epochs`` epochs' worth of sentences, in order."""
        for _ in range(epochs):
            yield from self.epoch()


def replay(lines: Iterable[str], *, limit: int = 100_000) -> Iterator[str]:
    """The sentences of a recorded log, in order: line endings stripped, blank and ``#`` lines skipped.

    Everything else is yielded as recorded (a recording may hold a torn first line or a corrupted
    sentence; the decoder's job is to refuse those). Stops after ``limit`` sentences.
    """
    count = 0
    for line in lines:
        if count >= limit:
            return
        text = line.rstrip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        count += 1
        yield text


@dataclass(slots=True)
class LiveReceiver:
    """A stationary receiver speaking at ``interval_s`` with the current UTC time: a serial peer for the demo.

    Implements the pty peer interface (``receive``/``tick``); ``wall`` gives the UTC time of each epoch.
    """

    position: Position
    interval_s: float = 1.0
    talker: str = "GP"
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    epochs: int = field(default=0, init=False)
    _next: float | None = field(default=None, init=False, repr=False)

    def receive(self, data: bytes, now: float) -> bytes:
        """A receiver does not listen (configuration sentences are ignored)."""
        return b""

    def tick(self, now: float) -> bytes:
        """One epoch's sentences when one is due."""
        if self._next is not None and now < self._next:
            return b""
        self._next = now + self.interval_s if self._next is None else max(self._next + self.interval_s, now)
        talker = Talker(self.position, self.wall(), talker=self.talker, interval_s=self.interval_s)
        self.epochs += 1
        return "".join(f"{s}\r\n" for s in talker.epoch()).encode("ascii")
