"""NMEA fuzzing: whatever the text, the decoder answers an NmeaResult or raises NmeaError, nothing else."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import nmea_talker
from drivers.nmea import NmeaError, NmeaResult, decode_sentence
from drivers.nmea_talker import Position

VALID = [
    "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
    "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
    "$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39",
    "$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48",
    "$GPGLL,4916.45,N,12311.12,W,225444,A,*1D",
    "$GNRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,D,V*0B",
]
NMEA_CHARS = st.sampled_from(list("$*,.-+0123456789ABCDEFGNSWEMTKVPXYZabc \r\n"))


def _decodes_or_refuses(text: str, day: date | None = None) -> None:
    try:
        result = decode_sentence(text, day=day)
    except NmeaError as exc:
        assert str(exc)
        return
    assert isinstance(result, NmeaResult)
    for m in result.measurements:
        assert m.metric and ":" not in m.metric


def _reframe(text: str) -> str:
    """Give a mutated sentence a correct checksum again, so the mutation reaches the field parsers."""
    body = text[1:].rpartition("*")[0] if "*" in text else text[1:]
    return nmea_talker.frame(body)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_random_text(text: str) -> None:
    _decodes_or_refuses(text)


@settings(max_examples=400, deadline=None)
@given(st.text(NMEA_CHARS, max_size=100).map(lambda s: "$GP" + s))
def test_random_nmea_looking_text(text: str) -> None:
    _decodes_or_refuses(text)
    _decodes_or_refuses(_reframe(text), date(2024, 2, 29))


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 200), st.sampled_from(["del", "ins", "sub"]), NMEA_CHARS), max_size=4),
    st.booleans(),
)
def test_mutated_valid_sentences(sentence: str, edits: list[tuple[int, str, str]], reframe: bool) -> None:
    text = sentence
    for pos, op, ch in edits:
        i = pos % (len(text) + 1)
        if op == "del":
            text = text[:i] + text[i + 1 :]
        elif op == "ins":
            text = text[:i] + ch + text[i:]
        else:
            text = text[:i] + ch + text[i + 1 :]
    _decodes_or_refuses(_reframe(text) if reframe and text.startswith("$") else text)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-89.9999, 89.9999),
    st.floats(-179.9999, 179.9999),
    st.floats(-400.0, 9000.0).map(lambda a: round(a, 1)),
    st.datetimes(min_value=datetime(1980, 1, 6), max_value=datetime(2079, 12, 31)),
    st.sampled_from(["GP", "GN", "GL", "GA", "BD"]),
)
def test_talker_round_trip(lat: float, lon: float, alt: float, when: datetime, talker: str) -> None:
    when = when.replace(tzinfo=UTC, microsecond=when.microsecond // 10_000 * 10_000)
    pos = Position(lat, lon, alt)
    r = decode_sentence(nmea_talker.gga(pos, when, talker=talker, time_decimals=2), day=when.date())
    assert r.talker == talker and r.fix is not None and r.fix.utc is not None
    assert abs(r.fix.lat - lat) <= 1e-6 and abs(r.fix.lon - lon) <= 1e-6
    assert r.fix.alt_m == alt
    assert abs(r.fix.utc - when) < timedelta(milliseconds=1)
    rmc = decode_sentence(nmea_talker.rmc(pos, when, talker=talker))
    assert rmc.fix is not None and rmc.utc is not None and rmc.utc.date() == when.date()
