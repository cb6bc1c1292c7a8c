"""NMEA 0183: the vectors in tests/vectors/nmea/*.json, the talker emulator and a recorded drive.

Each vector holds a ``sentence`` (and optionally the ``day`` that dates a time-of-day-only sentence) and
either ``result`` (the whole decoded result: sentence type, talker, every measurement in order and the
fix) or ``error`` (a substring of the NmeaError's message).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drivers import nmea, nmea_talker
from drivers.nmea import NmeaError, NmeaResult, NmeaStream, decode_sentence
from drivers.nmea_talker import Position, Talker

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "nmea"
FILES = sorted(VECTORS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


def _close(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


def _as_json(result: NmeaResult) -> dict[str, Any]:
    fix = result.fix
    return {
        "sentence": result.sentence,
        "talker": result.talker,
        "measurements": [{"metric": m.metric, "value": m.value, "unit": m.unit} for m in result.measurements],
        "fix": None
        if fix is None
        else {
            "lat": fix.lat,
            "lon": fix.lon,
            "alt_m": fix.alt_m,
            "quality": fix.quality,
            "satellites": fix.satellites,
            "hdop": fix.hdop,
            "utc": None if fix.utc is None else fix.utc.isoformat().replace("+00:00", "Z"),
        },
    }


def _same(got: Any, want: Any, where: str = "") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    else:
        assert _close(got, want), f"{where}: {got!r} != {want!r}"


def test_there_are_vectors() -> None:
    names = {p.stem for p in FILES}
    assert {"ref-gga", "ref-rmc", "ref-gsa", "ref-vtg", "ref-gll", "err-checksum", "err-no-checksum"} <= names
    assert sum(1 for n in names if n.startswith("err-")) >= 20


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    vector = _load(path)
    day = date.fromisoformat(vector["day"]) if "day" in vector else None
    if "error" in vector:
        with pytest.raises(NmeaError) as info:
            decode_sentence(vector["sentence"], day=day)
        assert vector["error"] in str(info.value)
        return
    _same(_as_json(decode_sentence(vector["sentence"], day=day)), vector["result"], path.stem)


def test_reference_gga_checksum_is_the_published_one() -> None:
    body = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert nmea.checksum(body) == 0x47
    assert nmea_talker.frame(body) == f"${body}*47"


def test_checksum_error_names_both_values() -> None:
    with pytest.raises(NmeaError, match=r"checksum mismatch: the sentence says 00, computed 47"):
        decode_sentence("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*00")


def test_error_is_a_value_error_with_the_sentence_type() -> None:
    with pytest.raises(ValueError) as info:
        decode_sentence(nmea_talker.frame("GPGGA,123519"))
    assert isinstance(info.value, NmeaError)
    assert info.value.sentence_type == "GGA"
    assert "fields" in info.value.problem


def test_no_fix_gga_says_so() -> None:
    r = decode_sentence(nmea_talker.gga(None, datetime(2024, 1, 1, tzinfo=UTC), satellites=2))
    assert r.fix is None
    assert ("fix_quality", 0.0) in [(m.metric, m.value) for m in r.measurements]
    assert not any(m.metric in ("latitude", "longitude", "altitude") for m in r.measurements)


def test_void_rmc_says_so() -> None:
    r = decode_sentence(nmea_talker.rmc(None, datetime(2024, 1, 1, 12, tzinfo=UTC)))
    assert r.fix is None
    assert ("valid", False) in [(m.metric, m.value) for m in r.measurements]
    assert r.utc == datetime(2024, 1, 1, 12, tzinfo=UTC)


def test_units_are_senml() -> None:
    when = datetime(2024, 5, 17, 10, 0, 0, tzinfo=UTC)
    pos = Position(52.52, 13.405, 34.0)
    units: dict[str, str | None] = {}
    for s in Talker(pos, when, speed_mps=10.0, course_deg=90.0).epoch():
        for m in NmeaStream().decode(s).measurements:
            units[m.metric] = m.unit
    assert units["latitude"] == "lat" and units["longitude"] == "lon" and units["altitude"] == "m"
    assert units["speed"] == "m/s" and units["course"] == "deg" and units["time"] == "s"
    assert units["fix_quality"] is None and units["satellites"] is None and units["hdop"] is None


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(0.0, 0.0), (48.1173, 11.516666667), (-33.8688, 151.2093), (89.99999, -179.99999), (-0.5, -0.5), (45.0, 180.0)],
)
def test_talker_round_trip(lat: float, lon: float) -> None:
    when = datetime(2023, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
    pos = Position(lat, lon, 123.4)
    r = decode_sentence(nmea_talker.gga(pos, when, time_decimals=2), day=when.date())
    assert r.fix is not None
    assert abs(r.fix.lat - lat) < 1e-6 and abs(r.fix.lon - lon) < 1e-6
    assert r.fix.alt_m == 123.4
    assert r.fix.utc == when
    rmc = decode_sentence(nmea_talker.rmc(pos, when, speed_mps=5.0, course_deg=270.0))
    assert rmc.fix is not None and abs(rmc.fix.lat - lat) < 1e-6
    speed = next(m.value for m in rmc.measurements if m.metric == "speed")
    assert isinstance(speed, float) and abs(speed - 5.0) < 0.01


def test_minutes_that_round_up_carry_into_degrees() -> None:
    assert nmea_talker.lat_field(47.999999999) == ("4800.0000", "N")
    assert nmea_talker.lon_field(-7.999999999) == ("00800.0000", "W")


def test_stream_dates_gga_with_the_last_rmc_across_midnight() -> None:
    talker = Talker(Position(52.52, 13.405, 30.0), datetime(2024, 5, 17, 23, 59, 58, tzinfo=UTC), speed_mps=10.0)
    stream = NmeaStream()
    times = []
    for s in talker.sentences(4):
        r = stream.decode(s)
        if r.sentence == "GGA":
            times.append(r.utc)
    # the first GGA comes before any RMC: no date yet
    assert times[0] is None
    assert times[1:] == [datetime(2024, 5, 17, 23, 59, 59, tzinfo=UTC)] + [
        datetime(2024, 5, 18, 0, 0, s, tzinfo=UTC) for s in (0, 1)
    ]


def test_replay_of_a_recorded_drive() -> None:
    path = VECTORS / "drive.nmea"
    with path.open(newline="") as fh:
        sentences = list(nmea_talker.replay(fh))
    stream = NmeaStream()
    results: list[NmeaResult] = []
    errors: list[str] = []
    for s in sentences:
        try:
            results.append(stream.decode(s))
        except NmeaError as exc:
            errors.append(str(exc))
    # the torn first line and the sentence corrupted on the wire are refused, everything else decodes
    assert len(errors) == 2
    assert "does not start with '$'" in errors[0] and "checksum mismatch" in errors[1]
    fixes = [r for r in results if r.sentence == "GGA" and r.fix is not None]
    assert len(fixes) == 5
    assert sum(1 for r in results if r.sentence == "GGA" and r.fix is None) == 2
    # moving north-east at about 13.9 m/s: 1 s apart is about 13.9 m apart
    a, b = fixes[-2].fix, fixes[-1].fix
    assert a is not None and b is not None and a.utc is not None and b.utc is not None
    assert b.utc - a.utc == timedelta(seconds=1)
    dy = (b.lat - a.lat) * 111_195
    dx = (b.lon - a.lon) * 111_195 * math.cos(math.radians(a.lat))
    assert 12.5 < math.hypot(dx, dy) < 15.5
    assert b.utc.date() == date(2024, 5, 18)


def test_replay_is_bounded() -> None:
    lines = [nmea_talker.frame("GPGSA,A,1,,,,,,,,,,,,,,,")] * 10
    assert len(list(nmea_talker.replay(iter(lines), limit=3))) == 3


def test_a_live_receiver_speaks_one_epoch_per_interval_with_the_current_time() -> None:
    from datetime import UTC, datetime

    from drivers.nmea import NmeaStream
    from drivers.nmea_talker import LiveReceiver, Position

    when = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    gps = LiveReceiver(Position(48.1173, 11.5167, 545.4), interval_s=1.0, wall=lambda: when)
    first = gps.tick(100.0)
    assert gps.tick(100.5) == b"", "nothing before the next epoch is due"
    assert gps.tick(101.0) != b""
    assert gps.receive(b"$PUBX,40*00\r\n", 101.0) == b""
    stream = NmeaStream()
    fixes = [stream.decode(line) for line in first.decode().splitlines()]
    gga = next(r for r in fixes if r.sentence == "GGA")
    assert gga.fix is not None
    assert abs(gga.fix.lat - 48.1173) < 1e-5 and abs(gga.fix.lon - 11.5167) < 1e-5
    rmc = next(r for r in fixes if r.sentence == "RMC")
    assert rmc.utc == when
