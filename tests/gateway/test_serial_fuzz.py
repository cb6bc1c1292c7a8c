"""Fuzzing the serial adapter's protocol handlers: random and mutated input is stored or counted, never raised."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.nmea_talker import frame
from drivers.roostserial import messages as m
from gateway.adapters.serial.adapter import SerialAdapter
from gateway.adapters.serial.config import SerialPortSection
from gateway.hub import Hub
from gateway.pairing import Pairing
from wire.reading import Reading

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ROOST = [
    m.encode_message(m.Announce("node-7", "1.0.0", 7, 2, 60), 0),
    m.encode_message(m.encode_readings([{0: "temp", 1: "Cel", 2: 21.5, 6: -5}]), 1),
    m.encode_message(m.encode_readings([{0: "hum", 2: 40}]), 2),
    m.encode_message(m.Result(m.ResultStatus.DONE), 3),
]
_TEXT = [
    b"temp=21.5,hum=40\n",
    frame("GPGGA,123520.00,4807.040,N,01131.002,E,1,08,0.9,545.4,M,46.9,M,,").encode() + b"\r\n",
    frame("GPRMC,123519.00,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,A").encode() + b"\r\n",
]


class MemorySink:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    async def append(self, readings: Sequence[Reading]) -> None:
        self.readings.extend(readings)


def _feed(chunks: list[bytes]) -> tuple[SerialAdapter, MemorySink]:
    sink = MemorySink()
    adapter = SerialAdapter(
        [
            SerialPortSection(path="/dev/r", accept="any"),
            SerialPortSection(path="/dev/n", protocol="nmea", sensor="gps"),
            SerialPortSection(path="/dev/l", protocol="line", sensor="a-1", max_line=64),
        ],
        Hub(sink),
        Pairing([]),
    )
    written: list[bytes] = []

    async def run() -> None:
        for h in adapter.handlers:
            h.connected(written.append)
        for chunk in chunks:
            for h in adapter.handlers:
                await h.handle(chunk)

    asyncio.run(run())
    return adapter, sink


@st.composite
def mutated(draw: st.DrawFn, pieces: list[bytes]) -> list[bytes]:
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=8))))
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "insert" or pos == len(data):
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        else:
            del data[pos]
    cut = draw(st.integers(1, 64))
    return [bytes(data[i : i + cut]) for i in range(0, len(data), cut)]


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_on_every_protocol(chunks: list[bytes]) -> None:
    adapter, sink = _feed(chunks)
    assert adapter.accepted == len(sink.readings)
    assert "internal" not in adapter.rejected


@SETTINGS
@given(mutated(_ROOST + _TEXT))
def test_mutated_frames_and_lines_on_every_protocol(chunks: list[bytes]) -> None:
    adapter, sink = _feed(chunks)
    assert adapter.accepted == len(sink.readings)
    assert "internal" not in adapter.rejected
