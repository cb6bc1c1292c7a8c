"""The messages of the Roost serial protocol v1 (docs/protocols/serial.md, "Messages"), table-driven.

Node to gateway: ANNOUNCE, READINGS (compact SenML CBOR), RESULT (of a command).
Gateway to node: ACK (of an ANNOUNCE or READINGS frame), COMMAND (set-interval, actuate, reboot, identify).
Every field is fixed-size big-endian or length-prefixed, so an 8-bit node parses a COMMAND with a
few byte reads; a receiver ignores bytes after the fields it knows (room to grow within v1).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2

from drivers.roostserial.frame import MAX_PAYLOAD, Frame, FrameError, encode_frame
from wire import senml
from wire.errors import InvalidName, PayloadError
from wire.names import check_sensor
from wire.reading import Reading

UNKNOWN_TYPE = "unknown-type"
MALFORMED = "malformed"

MAX_NODE_ID = 32
MAX_FIRMWARE = 16
MAX_RECORDS = 64
"""A READINGS pack fits in one frame (251 bytes), so this is generous."""


class MsgType(enum.IntEnum):
    """The frame's type byte."""

    ANNOUNCE = 0x01
    READINGS = 0x02
    ACK = 0x03
    COMMAND = 0x04
    RESULT = 0x05


class AckStatus(enum.IntEnum):
    """What an ACK says about the frame it acknowledges."""

    OK = 0
    """Stored durably (READINGS) or known (ANNOUNCE): forget the frame."""
    MALFORMED = 1
    """Could not be decoded: drop it, sending it again will not help."""
    ANNOUNCE_FIRST = 2
    """This gateway does not know the node on this port: send ANNOUNCE, then this frame again."""
    NOT_PAIRED = 3
    """The node is not paired with the gateway: its readings were not kept; drop the frame."""
    BUSY = 4
    """The gateway's buffer is full: send the frame again after at least 5 s."""


class ResultStatus(enum.IntEnum):
    """What a node says about a command."""

    DONE = 0
    UNKNOWN_COMMAND = 1
    BAD_ARGUMENT = 2
    FAILED = 3


class CommandCode(enum.IntEnum):
    """The first payload byte of a COMMAND."""

    SET_INTERVAL = 0x01
    ACTUATE = 0x02
    REBOOT = 0x03
    IDENTIFY = 0x04


class Capability(enum.IntFlag):
    """What an announced node can do (a 16-bit mask; unknown bits are kept)."""

    SET_INTERVAL = 0x0001
    ACTUATE = 0x0002
    REBOOT = 0x0004


@dataclass(frozen=True, slots=True)
class Announce:
    """A node says who it is: its sensor id, firmware version, capabilities, outputs and reporting interval."""

    node_id: str
    firmware: str
    capabilities: int = 0
    outputs: int = 0
    interval_s: int = 0
    """Seconds between readings; 0: the node sends when something changes."""


@dataclass(frozen=True, slots=True)
class Readings:
    """A compact SenML pack (CBOR, integer labels), names without a base name: the node is the sensor."""

    pack: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    """The gateway's answer to the ANNOUNCE or READINGS frame with the same sequence number."""

    status: AckStatus


@dataclass(frozen=True, slots=True)
class SetInterval:
    """Send readings every ``seconds`` (1-65535) from now on."""

    seconds: int


@dataclass(frozen=True, slots=True)
class Actuate:
    """Set output ``output`` (0-255) to ``value`` (-32768..32767: 0/1 for a relay, 0-255 for PWM, ...)."""

    output: int
    value: int


@dataclass(frozen=True, slots=True)
class Reboot:
    """Answer, then restart (and announce again)."""


@dataclass(frozen=True, slots=True)
class Identify:
    """Announce again (once no READINGS frame is in flight)."""


@dataclass(frozen=True, slots=True)
class Result:
    """The node's answer to the COMMAND with the same sequence number."""

    status: ResultStatus


Command = SetInterval | Actuate | Reboot | Identify
Message = Announce | Readings | Ack | Command | Result

_U16 = struct.Struct(">H")
_ACTUATE = struct.Struct(">Bh")


def _text(payload: bytes, pos: int, what: str, limit: int) -> tuple[str, int]:
    if pos >= len(payload):
        raise FrameError(MALFORMED, f"ANNOUNCE ends before its {what}")
    n = payload[pos]
    end = pos + 1 + n
    if n > limit:
        raise FrameError(MALFORMED, f"ANNOUNCE {what} of {n} bytes is over the limit of {limit}")
    if end > len(payload):
        raise FrameError(MALFORMED, f"ANNOUNCE ends inside its {what} ({n} bytes announced)")
    raw = payload[pos + 1 : end]
    if not raw.isascii() or not raw.decode("ascii").isprintable():
        raise FrameError(MALFORMED, f"ANNOUNCE {what} is not printable ASCII")
    return raw.decode("ascii"), end


def _announce(payload: bytes) -> Announce:
    node_id, pos = _text(payload, 0, "node id", MAX_NODE_ID)
    try:
        check_sensor(node_id)
    except InvalidName as exc:
        raise FrameError(MALFORMED, f"ANNOUNCE: {exc}") from exc
    firmware, pos = _text(payload, pos, "firmware version", MAX_FIRMWARE)
    if len(payload) < pos + 5:
        raise FrameError(MALFORMED, "ANNOUNCE ends before capabilities, outputs and interval (5 bytes)")
    (caps,) = _U16.unpack_from(payload, pos)
    outputs = payload[pos + 2]
    (interval,) = _U16.unpack_from(payload, pos + 3)
    return Announce(node_id, firmware, caps, outputs, interval)


def _status(kind: type[enum.IntEnum], name: str) -> Callable[[bytes], Any]:
    def decode(payload: bytes) -> Any:
        if not payload:
            raise FrameError(MALFORMED, f"{name} has no status byte")
        try:
            return kind(payload[0])
        except ValueError as exc:
            raise FrameError(MALFORMED, f"{name} status {payload[0]} is not defined in v1") from exc

    return decode


def _ack(payload: bytes) -> Ack:
    return Ack(_status(AckStatus, "ACK")(payload))


def _result(payload: bytes) -> Result:
    return Result(_status(ResultStatus, "RESULT")(payload))


def _command(payload: bytes) -> Command:
    if not payload:
        raise FrameError(MALFORMED, "COMMAND has no command code")
    code, args = payload[0], payload[1:]
    if code == CommandCode.SET_INTERVAL:
        if len(args) < 2:
            raise FrameError(MALFORMED, "SET_INTERVAL needs 2 bytes of seconds")
        return SetInterval(_U16.unpack_from(args)[0])
    if code == CommandCode.ACTUATE:
        if len(args) < 3:
            raise FrameError(MALFORMED, "ACTUATE needs an output byte and a 2-byte value")
        output, value = _ACTUATE.unpack_from(args)
        return Actuate(output, value)
    if code == CommandCode.REBOOT:
        return Reboot()
    if code == CommandCode.IDENTIFY:
        return Identify()
    raise FrameError(MALFORMED, f"command code 0x{code:02X} is not defined in v1")


def _readings(payload: bytes) -> Readings:
    if not payload:
        raise FrameError(MALFORMED, "READINGS carries no SenML pack")
    return Readings(payload)


_DECODERS: dict[int, Callable[[bytes], Message]] = {
    MsgType.ANNOUNCE: _announce,
    MsgType.READINGS: _readings,
    MsgType.ACK: _ack,
    MsgType.COMMAND: _command,
    MsgType.RESULT: _result,
}


def decode_message(frame: Frame) -> Message:
    """The message a checked frame carries; raise FrameError (``unknown-type``, ``malformed``)."""
    decoder = _DECODERS.get(frame.type)
    if decoder is None:
        raise FrameError(UNKNOWN_TYPE, f"message type 0x{frame.type:02X} is not defined in v1")
    return decoder(frame.payload)


def message_type(msg: Message) -> MsgType:
    """The type byte ``msg`` travels with."""
    return _TYPES[type(msg)]


_TYPES: dict[type[Any], MsgType] = {
    Announce: MsgType.ANNOUNCE,
    Readings: MsgType.READINGS,
    Ack: MsgType.ACK,
    SetInterval: MsgType.COMMAND,
    Actuate: MsgType.COMMAND,
    Reboot: MsgType.COMMAND,
    Identify: MsgType.COMMAND,
    Result: MsgType.RESULT,
}


def encode_payload(msg: Message) -> bytes:
    """The payload bytes of ``msg`` (without header and CRC)."""
    if isinstance(msg, Announce):
        node = msg.node_id.encode("ascii")
        fw = msg.firmware.encode("ascii")
        if len(node) > MAX_NODE_ID or len(fw) > MAX_FIRMWARE:
            raise ValueError(f"node id (at most {MAX_NODE_ID}) or firmware (at most {MAX_FIRMWARE}) too long")
        return (
            bytes((len(node),))
            + node
            + bytes((len(fw),))
            + fw
            + _U16.pack(msg.capabilities)
            + bytes((msg.outputs,))
            + _U16.pack(msg.interval_s)
        )
    if isinstance(msg, Readings):
        return msg.pack
    if isinstance(msg, Ack | Result):
        return bytes((msg.status,))
    if isinstance(msg, SetInterval):
        return bytes((CommandCode.SET_INTERVAL,)) + _U16.pack(msg.seconds)
    if isinstance(msg, Actuate):
        return bytes((CommandCode.ACTUATE,)) + _ACTUATE.pack(msg.output, msg.value)
    if isinstance(msg, Reboot):
        return bytes((CommandCode.REBOOT,))
    return bytes((CommandCode.IDENTIFY,))


def encode_message(msg: Message, seq: int) -> bytes:
    """``msg`` as one frame ready for the wire (COBS, CRC, 0x00 delimiter)."""
    return encode_frame(message_type(msg), seq, encode_payload(msg))


def decode_readings(pack: bytes, *, sensor: str, now: float, max_records: int = MAX_RECORDS) -> list[Reading]:
    """The Readings of a READINGS pack sent by node ``sensor`` and received at ``now``; raise FrameError.

    Records name metrics only (``n``); a base name is refused, since the node's announced id names
    the sensor. Times below 2**28 (``t`` <= 0 in practice) are relative to ``now``.
    """
    if len(pack) > MAX_PAYLOAD:
        raise FrameError(MALFORMED, f"SenML pack of {len(pack)} bytes is over the limit of {MAX_PAYLOAD}")
    try:
        if senml.sniff(pack) != "cbor":
            raise FrameError(MALFORMED, "READINGS must carry a CBOR SenML pack (an array, 0x80-0x9f)")
        records = senml.load_records(pack, max_bytes=MAX_PAYLOAD)
        if not records:
            raise PayloadError("the pack has no records")
        for i, rec in enumerate(records):
            if "bn" in rec:
                raise FrameError(MALFORMED, f"record {i} has a base name: the node's announced id names the sensor")
        first = dict(records[0])
        first["bn"] = sensor + ":"
        records[0] = first
        return senml.resolve(records, now=now, max_records=max_records)
    except PayloadError as exc:
        raise FrameError(MALFORMED, f"SenML pack: {exc.reason}") from exc


def encode_readings(records: list[dict[int, Any]]) -> Readings:
    """A READINGS message from compact SenML records (integer labels), as small as CBOR allows."""
    return Readings(cbor2.dumps(records, canonical=True))
