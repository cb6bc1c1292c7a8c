"""Fuzzing the Roost serial decoders: random and mutated frames give a frame or a counted error, never an exception."""

from __future__ import annotations

import contextlib

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.roostserial import frame as f
from drivers.roostserial import messages as m
from drivers.roostserial.node_emulator import NodeEmulator

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_GOOD = [
    m.encode_message(m.Announce("node-7", "1.0.0", 7, 2, 60), 0),
    m.encode_message(m.Readings(cbor2.dumps([{0: "temp", 1: "Cel", 2: 21.5, 6: -5}, {0: "hum", 2: 40}])), 1),
    m.encode_message(m.Ack(m.AckStatus.OK), 1),
    m.encode_message(m.SetInterval(300), 42),
    m.encode_message(m.Actuate(1, -3), 43),
    m.encode_message(m.Result(m.ResultStatus.DONE), 42),
]


def _decode_all(data: bytes, chunk: int) -> tuple[f.Deframer, list[f.Frame | f.FrameError]]:
    d = f.Deframer()
    out: list[f.Frame | f.FrameError] = []
    for i in range(0, len(data), chunk):
        out.extend(d.feed(data[i : i + chunk]))
    for item in out:
        if isinstance(item, f.FrameError):
            continue
        try:
            msg = m.decode_message(item)
        except f.FrameError:
            continue
        if isinstance(msg, m.Readings):
            with contextlib.suppress(f.FrameError):
                m.decode_readings(msg.pack, sensor="node-7", now=1_800_000_000.0)
    return d, out


@SETTINGS
@given(st.binary(max_size=2048), st.integers(1, 300))
def test_random_bytes_never_raise_and_every_error_is_counted(data: bytes, chunk: int) -> None:
    d, out = _decode_all(data, chunk)
    errors = [x for x in out if isinstance(x, f.FrameError)]
    assert sum(d.errors.values()) == len(errors)
    assert d.frames == len(out) - len(errors)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, int]:
    frames = draw(st.lists(st.sampled_from(_GOOD), min_size=1, max_size=6))
    data = bytearray(b"".join(frames))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "zero", "truncate"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos]
        elif op == "zero":
            data[pos] = 0
        else:
            del data[pos:]
    return bytes(data), draw(st.integers(1, 64))


@SETTINGS
@given(mutated())
def test_mutated_frames_never_raise(case: tuple[bytes, int]) -> None:
    data, chunk = case
    _decode_all(data, chunk)


@SETTINGS
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=f.MAX_PAYLOAD))
def test_any_frame_round_trips_and_every_single_bit_flip_is_caught(type_: int, seq: int, payload: bytes) -> None:
    wire = f.encode_frame(type_, seq, payload)
    assert f.Deframer().feed(wire) == [f.Frame(type_, seq, payload)]
    raw = bytearray(wire)
    for pos in range(0, len(raw) - 1, max(1, len(raw) // 16)):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x10
        got = f.Deframer().feed(bytes(flipped) + b"\x00")
        assert f.Frame(type_, seq, payload) not in got


@SETTINGS
@given(st.binary(max_size=f.MAX_PAYLOAD))
def test_random_readings_payloads_decode_or_are_malformed(pack: bytes) -> None:
    try:
        m.decode_readings(pack, sensor="node-7", now=1_800_000_000.0)
    except f.FrameError as exc:
        assert exc.reason == "malformed"


@SETTINGS
@given(st.binary(max_size=600), st.floats(0, 100))
def test_the_node_emulator_survives_any_input(data: bytes, now: float) -> None:
    node = NodeEmulator("node-1")
    node.tick(0.0)
    node.receive(data, now)
    node.tick(now + 1)
