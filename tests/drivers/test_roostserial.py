"""Roost serial protocol v1: the spec's vectors, the deframer's resynchronisation, the node emulator."""

from __future__ import annotations

import binascii
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from drivers.measurement import Measurement
from drivers.roostserial import frame as f
from drivers.roostserial import messages as m
from drivers.roostserial.node_emulator import NodeEmulator

ROOT = Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests/vectors/roostserial").glob("*.json"))
SPEC = (ROOT / "docs/protocols/serial.md").read_text()


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _message_dict(msg: m.Message) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": type(msg).__name__}
    for field in dataclasses.fields(msg):
        value = getattr(msg, field.name)
        out[field.name] = (
            value.hex(" ") if isinstance(value, bytes) else int(value) if isinstance(value, int) else value
        )
    return out


def test_crc_is_xmodem_with_the_documented_check_value() -> None:
    assert f.crc16(b"123456789") == 0x31C3
    assert "0x31C3" in SPEC


def test_the_limits_are_the_documented_ones() -> None:
    assert (f.MAX_FRAME, f.MAX_PAYLOAD, f.MAX_ENCODED) == (256, 251, 258)
    assert "at most **256 bytes**" in SPEC and "258 bytes" in SPEC


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector(path: Path) -> None:
    v = _load(path)
    wire = _hex(v["wire"])
    assert wire.endswith(b"\x00")
    error = v.get("error")
    deframer = f.Deframer()
    items = deframer.feed(wire)
    assert len(items) == 1
    item = items[0]
    if error is not None and error["stage"] == "frame":
        assert isinstance(item, f.FrameError), item
        assert item.reason == error["reason"]
        assert error["contains"] in str(item)
        assert deframer.errors[error["reason"]] == 1
        return
    assert isinstance(item, f.Frame), item
    if "frame" in v:
        assert item == f.Frame(v["frame"]["type"], v["frame"]["seq"], _hex(v["frame"]["payload"]))
    if error is not None and error["stage"] == "message":
        with pytest.raises(f.FrameError) as caught:
            m.decode_message(item)
        assert caught.value.reason == error["reason"]
        assert error["contains"] in str(caught.value)
        return
    msg = m.decode_message(item)
    if error is not None:  # readings
        assert isinstance(msg, m.Readings)
        with pytest.raises(f.FrameError) as caught:
            m.decode_readings(msg.pack, sensor="node-7", now=1_800_000_000.0)
        assert caught.value.reason == error["reason"]
        assert error["contains"] in str(caught.value)
        return
    assert _message_dict(msg) == v["message"]
    # round trip: encoding the message gives the vector's bytes
    assert m.encode_message(msg, item.seq) == wire
    if "readings" in v:
        assert isinstance(msg, m.Readings)
        r = v["readings"]
        got = m.decode_readings(msg.pack, sensor=r["sensor"], now=r["now"])
        assert [g._asdict() for g in got] == r["expected"]


@pytest.mark.parametrize("path", [p for p in VECTORS if "(the spec's example)" in _load(p)["description"]], ids=str)
def test_every_spec_example_is_in_the_spec(path: Path) -> None:
    assert _load(path)["wire"] in SPEC


def test_crc_over_a_frame_with_its_crc_is_zero() -> None:
    raw = _hex("01 03 01 00 1c d5")
    assert binascii.crc_hqx(raw, 0) == 0


def test_deframer_resynchronises_after_noise_and_splits_anywhere() -> None:
    good = m.encode_message(m.Ack(m.AckStatus.OK), 7)
    stream = good + b"\x13\x37\xff" + b"\x00" + good + _hex("04 01 03 01 03 1c d4 00") + good
    for step in (1, 2, 3, 5, 64, len(stream)):
        d = f.Deframer()
        out: list[f.Frame | f.FrameError] = []
        for i in range(0, len(stream), step):
            out.extend(d.feed(stream[i : i + step]))
        frames = [x for x in out if isinstance(x, f.Frame)]
        assert frames == [f.Frame(m.MsgType.ACK, 7, b"\x00")] * 3
        assert sum(d.errors.values()) == 2 and d.errors["crc"] == 1


def test_an_over_long_run_is_dropped_once_and_the_next_frame_decodes() -> None:
    good = m.encode_message(m.Result(m.ResultStatus.DONE), 1)
    d = f.Deframer()
    out = []
    for _ in range(10):
        out.extend(d.feed(b"\x55" * 100))
    out.extend(d.feed(b"\x00" + good))
    assert [x.reason for x in out if isinstance(x, f.FrameError)] == ["oversize"]
    assert out[-1] == f.Frame(m.MsgType.RESULT, 1, b"\x00")
    assert d.errors == {"oversize": 1}


def test_empty_frames_are_not_errors() -> None:
    d = f.Deframer()
    assert d.feed(b"\x00\x00\x00") == []
    assert not d.errors


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="over the limit"):
        f.encode_frame(2, 0, b"x" * 252)
    with pytest.raises(ValueError):
        f.encode_frame(256, 0)
    longest = max(len(f.encode_frame(2, seq, b"\x01" * 251)) for seq in range(1, 256))
    assert longest == f.MAX_ENCODED + 1  # with the delimiter


def test_trailing_payload_bytes_are_ignored_for_forward_compatibility() -> None:
    frame = f.Frame(m.MsgType.COMMAND, 1, _hex("01 00 3c ff ff"))
    assert m.decode_message(frame) == m.SetInterval(60)


# -- the node emulator, driven by hand -------------------------------------------------------------


class Gateway:
    """The gateway's side, minimal: decodes what the node sends."""

    def __init__(self) -> None:
        self.deframer = f.Deframer()

    def messages(self, data: bytes) -> list[tuple[int, m.Message]]:
        return [(x.seq, m.decode_message(x)) for x in self.deframer.feed(data) if isinstance(x, f.Frame)]


def _ack(seq: int, status: m.AckStatus = m.AckStatus.OK) -> bytes:
    return m.encode_message(m.Ack(status), seq)


def test_node_announces_first_and_holds_readings_until_acknowledged() -> None:
    node = NodeEmulator("node-1", interval_s=1, retransmit_s=0.5, sampler=lambda now: [Measurement("t", now, "s")])
    gw = Gateway()
    [(seq, announce)] = gw.messages(node.tick(0.0))
    assert announce == m.Announce("node-1", "1.0.0", 7, 2, 1)
    assert gw.messages(node.tick(1.0)) == [(0, announce)]  # retransmitted, nothing else before the ACK
    assert node.pending == 1
    [(seq, readings)] = gw.messages(node.receive(_ack(0), 1.1))
    assert seq == 1 and isinstance(readings, m.Readings)
    got = m.decode_readings(readings.pack, sensor="node-1", now=1001.1)
    assert [(r.metric, r.value, r.ts) for r in got] == [("t", 1.0, 1001.0)]  # relative time: 0.1 s ago
    assert gw.messages(node.tick(1.7)) == [(1, readings)]  # no ACK within 0.5 s: the same bytes again
    node.receive(_ack(1), 1.8)
    assert node.acked_readings == 1 and node.retransmits == 2


def test_node_reannounces_on_announce_first_and_resends_the_frame() -> None:
    node = NodeEmulator("node-1", interval_s=1, sampler=lambda now: [Measurement("t", 1.0)])
    gw = Gateway()
    gw.messages(node.tick(0.0))
    gw.messages(node.receive(_ack(0), 0.0))
    [(seq, readings)] = gw.messages(node.tick(1.0))
    [(seq2, again)] = gw.messages(node.receive(_ack(seq, m.AckStatus.ANNOUNCE_FIRST), 1.0))
    assert isinstance(again, m.Announce)
    [(_, resent)] = gw.messages(node.receive(_ack(seq2), 1.0))
    assert resent == readings


def test_node_acts_once_on_a_repeated_command_and_answers_again() -> None:
    node = NodeEmulator("node-1", interval_s=10)
    gw = Gateway()
    node.tick(0.0)
    cmd = m.encode_message(m.SetInterval(30), 9)
    assert gw.messages(node.receive(cmd, 1.0)) == [(9, m.Result(m.ResultStatus.DONE))]
    assert gw.messages(node.receive(cmd, 1.5)) == [(9, m.Result(m.ResultStatus.DONE))]
    assert node.commands == [m.SetInterval(30)] and node.repeated_commands == 1 and node.interval_s == 30
    bad = m.encode_message(m.Actuate(5, 1), 10)
    assert gw.messages(node.receive(bad, 2.0)) == [(10, m.Result(m.ResultStatus.BAD_ARGUMENT))]


def test_node_reboot_answers_then_announces_from_seq_zero() -> None:
    node = NodeEmulator("node-1", interval_s=10)
    gw = Gateway()
    gw.messages(node.tick(0.0))
    node.receive(_ack(0), 0.1)
    out = gw.messages(node.receive(m.encode_message(m.Reboot(), 3), 1.0))
    assert out == [(3, m.Result(m.ResultStatus.DONE))]
    assert gw.messages(node.tick(1.1)) == [(0, m.Announce("node-1", "1.0.0", 7, 2, 10))]
    assert node.reboots == 1
