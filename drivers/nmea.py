"""NMEA 0183 sentences from GPS receivers: GGA, RMC, GLL, GSA and VTG from any talker (GP, GN, GL, GA, ...).

Pure: :func:`decode_sentence` turns one sentence (``$GPGGA,...*47``) into an :class:`NmeaResult`
(the sentence type, the talker, SenML-ready measurements and the position fix it carries) or raises
:class:`NmeaError` with a message that names what is wrong. The checksum is required: NMEA 0183 makes
it optional for some sentences, but GPS receivers always send it, and a serial line without one
cannot tell a corrupted position from a good one.

Measurements (metric, SenML unit): ``latitude`` (lat), ``longitude`` (lon), ``altitude`` (m),
``fix_quality`` (GGA's 0-8; 0 = no fix), ``satellites`` (in use), ``hdop``/``pdop``/``vdop``,
``fix_type`` (GSA's 1 = none, 2 = 2D, 3 = 3D), ``speed`` over ground (m/s), ``course`` over ground
(deg, true), ``valid`` (RMC/GLL status A, or false for V), ``time`` (the receiver's UTC as seconds
since the Unix epoch, s) and, for sentences that carry no date (GGA, GLL) when no date is known,
``time_of_day`` (seconds since UTC midnight, s). Without a fix (GGA quality 0, RMC/GLL status V,
mode N) there is no position: the measurements say so and ``fix`` is None.

GGA and GLL carry only the time of day; :class:`NmeaStream` remembers the date of the last RMC so a
receiver's stream of sentences yields full times, midnight roll-over included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce

from drivers.measurement import Measurement

KNOT_MPS = 1852.0 / 3600.0
"""One knot in m/s."""
MAX_LENGTH = 256
"""Longest sentence accepted. The standard says 82 characters with ``$`` and CR LF; some receivers send
longer ones, nothing sends three times as long."""
SUPPORTED = ("GGA", "RMC", "GLL", "GSA", "VTG")

# RMC/GLL mode indicator (NMEA 2.3+) -> the GGA fix-quality number it corresponds to.
_MODE_QUALITY = {"A": 1, "D": 2, "P": 3, "R": 4, "F": 5, "E": 6, "M": 7, "S": 8, "N": 0}

_ADDRESS = re.compile(r"[A-Z0-9]{5}", re.ASCII)
_CHECKSUM = re.compile(r"[0-9A-Fa-f]{2}", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_INT = re.compile(r"[0-9]{1,3}", re.ASCII)
_LAT = re.compile(r"([0-9]{1,2})([0-9]{2}(?:\.[0-9]*)?)", re.ASCII)
_LON = re.compile(r"([0-9]{1,3})([0-9]{2}(?:\.[0-9]*)?)", re.ASCII)
_TIME = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})(\.[0-9]{1,9})?", re.ASCII)
_DATE = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})", re.ASCII)


class NmeaError(ValueError):
    """A sentence that cannot be decoded; the message says what is wrong (``sentence_type`` when known)."""

    def __init__(self, problem: str, sentence_type: str | None = None) -> None:
        super().__init__(f"{sentence_type}: {problem}" if sentence_type else problem)
        self.problem = problem
        self.sentence_type = sentence_type


@dataclass(frozen=True, slots=True)
class Fix:
    """A position fix: decimal degrees (north and east positive), altitude above mean sea level."""

    lat: float
    lon: float
    alt_m: float | None
    quality: int
    """GGA's fix quality (1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 estimated, ...); from the mode for RMC/GLL."""
    satellites: int | None
    hdop: float | None
    utc: datetime | None
    """The receiver's UTC time of the fix; None when the sentence carries no date and none is known."""


@dataclass(frozen=True, slots=True)
class NmeaResult:
    """One decoded sentence."""

    sentence: str
    """The sentence type: ``GGA``, ``RMC``, ..."""
    talker: str
    """The talker id: ``GP`` (GPS), ``GN`` (several systems), ``GL`` (GLONASS), ``GA`` (Galileo), ..."""
    measurements: list[Measurement]
    fix: Fix | None
    utc: datetime | None = None
    """The time the sentence carries, as a full UTC datetime (None without one, or without a date)."""


def checksum(body: str) -> int:
    """The NMEA checksum: XOR of every character between ``$`` and ``*``."""
    return reduce(lambda acc, ch: acc ^ ord(ch), body, 0)


def decode_sentence(text: str, *, day: date | None = None) -> NmeaResult:
    """Decode one NMEA sentence; ``day`` dates a time-of-day-only sentence (GGA, GLL). Raises NmeaError."""
    talker, kind, fields = split_sentence(text)
    spec = _SPECS.get(kind)
    if spec is None:
        raise NmeaError(f"sentence type {kind!r} is not supported (supported: {', '.join(SUPPORTED)})")
    if len(fields) not in spec.field_counts:
        counts = " or ".join(str(n) for n in spec.field_counts)
        raise NmeaError(f"has {len(fields)} fields after the address, expected {counts}", kind)
    try:
        measurements, fix, utc = spec.parse(fields, day)
    except NmeaError as exc:
        raise NmeaError(exc.problem, kind) from None
    return NmeaResult(sentence=kind, talker=talker, measurements=measurements, fix=fix, utc=utc)


def split_sentence(text: str) -> tuple[str, str, list[str]]:
    """Check framing and checksum; return (talker, sentence type, fields after the address). Raises NmeaError."""
    if not isinstance(text, str):
        raise NmeaError(f"a sentence is text, not {type(text).__name__}")
    line = text.strip()
    if not line:
        raise NmeaError("empty sentence")
    if len(line) > MAX_LENGTH:
        raise NmeaError(f"sentence of {len(line)} characters is too long (at most {MAX_LENGTH})")
    bad = next((ch for ch in line if not " " <= ch <= "~"), None)
    if bad is not None:
        raise NmeaError(f"character {bad!r} does not belong in an NMEA sentence (printable ASCII only)")
    if line[0] == "!":
        raise NmeaError("encapsulated sentences ('!', e.g. AIS) are not supported; GPS sentences start with '$'")
    if line[0] != "$":
        raise NmeaError(f"does not start with '$' (it starts with {line[:12]!r})")
    body, star, given = line[1:].rpartition("*")
    if not star:
        raise NmeaError(
            "has no checksum ('*' and two hex digits at the end): Roost requires it; NMEA 0183 makes it "
            "optional for some sentences, but GPS receivers always send it"
        )
    if not _CHECKSUM.fullmatch(given):
        raise NmeaError(f"checksum {given[:8]!r} is not two hex digits")
    computed = checksum(body)
    if int(given, 16) != computed:
        raise NmeaError(f"checksum mismatch: the sentence says {given.upper()}, computed {computed:02X}")
    if "$" in body or "*" in body:
        raise NmeaError("holds a second '$' or '*': two sentences run together?")
    address, *fields = body.split(",")
    if address[:1] == "P":
        raise NmeaError(f"proprietary sentence {address!r} is not supported (supported: {', '.join(SUPPORTED)})")
    if not _ADDRESS.fullmatch(address):
        raise NmeaError(f"address field {address[:12]!r} is not a talker id and a sentence type (like GPGGA)")
    return address[:2], address[2:], fields


class NmeaStream:
    """Decodes a receiver's sentences in order, dating GGA/GLL times with the last RMC's date."""

    def __init__(self) -> None:
        self._last: datetime | None = None

    def decode(self, text: str) -> NmeaResult:
        """Decode one sentence (see :func:`decode_sentence`); raises NmeaError."""
        day = self._last.date() if self._last is not None else None
        result = decode_sentence(text, day=day)
        if result.utc is None:
            return result
        utc = result.utc
        if self._last is not None and result.sentence != "RMC" and utc < self._last - timedelta(hours=12):
            # a time-of-day sentence just after midnight, dated with the day before's RMC
            utc += timedelta(days=1)
            result = _redate(result, utc)
        if self._last is None or utc > self._last:
            self._last = utc
        return result


# --- field parsers ------------------------------------------------------------------------------


def _number(raw: str, what: str) -> float:
    if not _NUMBER.fullmatch(raw):
        raise NmeaError(f"{what} {raw[:16]!r} is not a number")
    return float(raw)


def _optional(raw: str, what: str) -> float | None:
    return _number(raw, what) if raw else None


def _count(raw: str, what: str) -> int | None:
    if not raw:
        return None
    if not _INT.fullmatch(raw):
        raise NmeaError(f"{what} {raw[:16]!r} is not a whole number")
    return int(raw)


def _angle(raw: str, hemi: str, *, lat: bool) -> float:
    what, pattern, limit, hemis = ("latitude", _LAT, 90, ("N", "S")) if lat else ("longitude", _LON, 180, ("E", "W"))
    if not raw:
        raise NmeaError(f"{what} is empty")
    m = pattern.fullmatch(raw)
    if m is None:
        width = "DDMM.MMMM" if lat else "DDDMM.MMMM"
        raise NmeaError(f"{what} {raw[:16]!r} is not {width} (degrees and minutes)")
    degrees, minutes = int(m.group(1)), float(m.group(2))
    if minutes >= 60:
        raise NmeaError(f"{what} {raw!r} has {minutes:g} minutes (at most 59.999...)")
    value = degrees + minutes / 60.0
    if value > limit:
        raise NmeaError(f"{what} {raw!r} is beyond {limit} degrees")
    if hemi not in hemis:
        raise NmeaError(f"{what} hemisphere {hemi[:4]!r} is not {' or '.join(hemis)}")
    return round(-value if hemi in ("S", "W") else value, 9)


def _time_of_day(raw: str) -> time | None:
    if not raw:
        return None
    m = _TIME.fullmatch(raw)
    if m is None:
        raise NmeaError(f"UTC time {raw[:16]!r} is not hhmmss[.sss]")
    hh, mm, ss = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if hh > 23 or mm > 59 or ss > 59:
        raise NmeaError(f"UTC time {raw!r} is not a time of day")
    micro = min(999_999, round(float(m.group(4) or "0") * 1_000_000))
    return time(hh, mm, ss, micro, tzinfo=UTC)


def _date(raw: str) -> date | None:
    if not raw:
        return None
    m = _DATE.fullmatch(raw)
    if m is None:
        raise NmeaError(f"date {raw[:16]!r} is not ddmmyy")
    dd, mo, yy = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        # two-digit years: GPS started in 1980, so 80-99 are the 1900s
        return date(1900 + yy if yy >= 80 else 2000 + yy, mo, dd)
    except ValueError:
        raise NmeaError(f"date {raw!r} is not a calendar date") from None


def _status(raw: str, what: str) -> bool:
    if raw not in ("A", "V"):
        raise NmeaError(f"{what} {raw[:8]!r} is not A (valid) or V (void)")
    return raw == "A"


def _mode(raw: str) -> str | None:
    if not raw:
        return None
    if raw not in _MODE_QUALITY:
        raise NmeaError(f"mode indicator {raw[:8]!r} is not one of {''.join(_MODE_QUALITY)}")
    return raw


def _timestamps(tod: time | None, day: date | None) -> tuple[list[Measurement], datetime | None]:
    if tod is None:
        return [], None
    if day is None:
        seconds = tod.hour * 3600 + tod.minute * 60 + tod.second + tod.microsecond / 1e6
        return [Measurement("time_of_day", seconds, "s")], None
    utc = datetime.combine(day, tod)
    return [Measurement("time", utc.timestamp(), "s")], utc


def _redate(result: NmeaResult, utc: datetime) -> NmeaResult:
    ms = [Measurement("time", utc.timestamp(), "s") if m.metric == "time" else m for m in result.measurements]
    fix = result.fix
    if fix is not None:
        fix = Fix(fix.lat, fix.lon, fix.alt_m, fix.quality, fix.satellites, fix.hdop, utc)
    return NmeaResult(result.sentence, result.talker, ms, fix, utc)


def _position(fields: Sequence[str], at: int) -> tuple[float, float, list[Measurement]]:
    lat = _angle(fields[at], fields[at + 1], lat=True)
    lon = _angle(fields[at + 2], fields[at + 3], lat=False)
    return lat, lon, [Measurement("latitude", lat, "lat"), Measurement("longitude", lon, "lon")]


# --- sentences ------------------------------------------------------------------------------------

Parsed = tuple[list[Measurement], Fix | None, datetime | None]


def _gga(f: Sequence[str], day: date | None) -> Parsed:
    # time, lat, N/S, lon, E/W, quality, satellites, hdop, altitude, M, geoid separation, M, DGPS age, station
    tod = _time_of_day(f[0])
    quality = _count(f[5], "fix quality")
    if quality is None or quality > 8:
        raise NmeaError(f"fix quality {f[5][:8]!r} is not 0-8")
    satellites = _count(f[6], "satellites")
    hdop = _optional(f[7], "hdop")
    ms: list[Measurement] = []
    fix: Fix | None = None
    stamps, utc = _timestamps(tod, day)
    if quality > 0:
        lat, lon, ms = _position(f, 1)
        alt = _optional(f[8], "altitude")
        if alt is not None:
            if f[9] != "M":
                raise NmeaError(f"altitude unit {f[9][:8]!r} is not M (metres)")
            ms.append(Measurement("altitude", alt, "m"))
        fix = Fix(lat, lon, alt, quality, satellites, hdop, utc)
    ms.append(Measurement("fix_quality", float(quality)))
    if satellites is not None:
        ms.append(Measurement("satellites", float(satellites)))
    if hdop is not None:
        ms.append(Measurement("hdop", hdop))
    return ms + stamps, fix, utc


def _rmc(f: Sequence[str], day: date | None) -> Parsed:
    # time, status, lat, N/S, lon, E/W, speed (knots), course (true), ddmmyy, variation, E/W[, mode[, nav status]]
    tod = _time_of_day(f[0])
    valid = _status(f[1], "status")
    mode = _mode(f[11]) if len(f) > 11 else None
    if mode == "N":
        valid = False
    stamps, utc = _timestamps(tod, _date(f[8]) or day)
    ms: list[Measurement] = []
    fix: Fix | None = None
    if valid:
        lat, lon, ms = _position(f, 2)
        speed, course = _optional(f[6], "speed"), _optional(f[7], "course")
        if speed is not None:
            ms.append(Measurement("speed", round(speed * KNOT_MPS, 6), "m/s"))
        if course is not None:
            ms.append(Measurement("course", course, "deg"))
        fix = Fix(lat, lon, None, _MODE_QUALITY[mode or "A"], None, None, utc)
    return [*ms, Measurement("valid", valid), *stamps], fix, utc


def _gll(f: Sequence[str], day: date | None) -> Parsed:
    # lat, N/S, lon, E/W, time, status[, mode]
    tod = _time_of_day(f[4])
    valid = _status(f[5], "status")
    mode = _mode(f[6]) if len(f) > 6 else None
    if mode == "N":
        valid = False
    stamps, utc = _timestamps(tod, day)
    ms: list[Measurement] = []
    fix: Fix | None = None
    if valid:
        lat, lon, ms = _position(f, 0)
        fix = Fix(lat, lon, None, _MODE_QUALITY[mode or "A"], None, None, utc)
    return [*ms, Measurement("valid", valid), *stamps], fix, utc


def _gsa(f: Sequence[str], _day: date | None) -> Parsed:
    # M/A, fix type (1 none, 2 2D, 3 3D), 12 satellite ids, PDOP, HDOP, VDOP[, system id]
    if f[0] not in ("M", "A"):
        raise NmeaError(f"selection mode {f[0][:8]!r} is not M (manual) or A (automatic)")
    fix_type = _count(f[1], "fix type")
    if fix_type is None or not 1 <= fix_type <= 3:
        raise NmeaError(f"fix type {f[1][:8]!r} is not 1 (none), 2 (2D) or 3 (3D)")
    for raw in f[2:14]:
        _count(raw, "satellite id")
    ms = [Measurement("fix_type", float(fix_type))]
    for name, raw in (("pdop", f[14]), ("hdop", f[15]), ("vdop", f[16])):
        value = _optional(raw, name)
        if value is not None:
            ms.append(Measurement(name, value))
    return ms, None, None


def _vtg(f: Sequence[str], _day: date | None) -> Parsed:
    # course (true), T, course (magnetic), M, speed (knots), N, speed (km/h), K[, mode]
    for at, unit in ((1, "T"), (3, "M"), (5, "N"), (7, "K")):
        if f[at] not in (unit, ""):
            raise NmeaError(f"field {at + 1} {f[at][:8]!r} should be {unit}")
    mode = _mode(f[8]) if len(f) > 8 else None
    if mode == "N":
        return [Measurement("valid", False)], None, None
    ms: list[Measurement] = []
    course = _optional(f[0], "course")
    if course is not None:
        ms.append(Measurement("course", course, "deg"))
    knots, kmh = _optional(f[4], "speed"), _optional(f[6], "speed")
    if knots is not None:
        ms.append(Measurement("speed", round(knots * KNOT_MPS, 6), "m/s"))
    elif kmh is not None:
        ms.append(Measurement("speed", round(kmh / 3.6, 6), "m/s"))
    return ms, None, None


@dataclass(frozen=True, slots=True)
class _Spec:
    field_counts: tuple[int, ...]
    """How many fields may follow the address (NMEA versions added trailing fields)."""
    parse: Callable[[Sequence[str], date | None], Parsed]


_SPECS: dict[str, _Spec] = {
    "GGA": _Spec((14,), _gga),
    "RMC": _Spec((11, 12, 13), _rmc),
    "GLL": _Spec((6, 7), _gll),
    "GSA": _Spec((17, 18), _gsa),
    "VTG": _Spec((8, 9), _vtg),
}
