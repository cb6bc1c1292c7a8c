"""Frames of the Roost serial protocol v1: COBS-encoded, 0x00-delimited, CRC-16/XMODEM checked.

A frame before COBS is ``version type seq payload... crc_hi crc_lo`` (docs/protocols/serial.md).
:class:`Deframer` accumulates bytes from a port and cuts them into :class:`Frame` values or
:class:`FrameError` values (counted by reason); nothing that arrives on the wire makes it raise.
"""

from __future__ import annotations

import binascii
from collections import Counter
from typing import NamedTuple

from cobs import cobs

VERSION = 1
DELIMITER = b"\x00"
HEADER_LEN = 3
CRC_LEN = 2
MIN_FRAME = HEADER_LEN + CRC_LEN
MAX_FRAME = 256
"""Largest frame before COBS: header, payload and CRC."""
MAX_PAYLOAD = MAX_FRAME - MIN_FRAME
MAX_ENCODED = MAX_FRAME + (MAX_FRAME + 253) // 254
"""Largest COBS-encoded frame without its delimiter (COBS adds one byte per 254, at least one)."""

# The reasons a frame is refused; each one is a counter.
CRC = "crc"
TRUNCATED = "truncated"
OVERSIZE = "oversize"
VERSION_MISMATCH = "version"
REASONS = (CRC, TRUNCATED, OVERSIZE, VERSION_MISMATCH)


class Frame(NamedTuple):
    """A frame whose CRC checked out: message ``type``, sequence number ``seq`` (0-255), ``payload``."""

    type: int
    seq: int
    payload: bytes


class FrameError(ValueError):
    """A frame (or message) that cannot be used; ``reason`` is its counter, the message says what is wrong."""

    def __init__(self, reason: str, detail: str, raw: bytes = b"") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.raw = raw[:64]
        """The first bytes of the offending frame, for a TRACE log."""


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0): avr-libc's ``_crc_xmodem_update``; "123456789" gives 0x31C3."""
    return binascii.crc_hqx(data, 0)


def encode_frame(type_: int, seq: int, payload: bytes = b"", *, version: int = VERSION) -> bytes:
    """One frame ready for the wire: COBS of header, payload and CRC (big-endian), then 0x00."""
    if not 0 <= type_ <= 255 or not 0 <= seq <= 255 or not 0 <= version <= 255:
        raise ValueError("version, type and seq are one byte each (0-255)")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD}")
    body = bytes((version, type_, seq)) + payload
    crc = crc16(body)
    return bytes(cobs.encode(body + bytes((crc >> 8, crc & 0xFF)))) + DELIMITER


def decode_frame(encoded: bytes) -> Frame:
    """Decode one COBS-encoded frame (without its 0x00 delimiter) and check it; raise FrameError."""
    if len(encoded) > MAX_ENCODED:
        raise FrameError(OVERSIZE, f"frame of {len(encoded)} bytes is over the limit of {MAX_ENCODED}", encoded)
    if DELIMITER in encoded:
        raise FrameError(TRUNCATED, "a 0x00 inside the frame: it ends there", encoded)
    try:
        raw = cobs.decode(encoded)
    except cobs.DecodeError as exc:
        # COBS's only failure without zeros: a length code pointing past the end
        raise FrameError(TRUNCATED, f"truncated frame: COBS {exc}", encoded) from exc
    if len(raw) < MIN_FRAME:
        raise FrameError(TRUNCATED, f"truncated frame: {len(raw)} bytes, a frame has at least {MIN_FRAME}", encoded)
    if len(raw) > MAX_FRAME:
        raise FrameError(OVERSIZE, f"frame of {len(raw)} bytes is over the limit of {MAX_FRAME}", encoded)
    # The CRC over the frame with its own (big-endian) CRC is 0 exactly when it checks out.
    if binascii.crc_hqx(raw, 0):
        stated = (raw[-2] << 8) | raw[-1]
        raise FrameError(
            CRC, f"CRC mismatch: the frame says 0x{stated:04X}, its bytes give 0x{crc16(raw[:-2]):04X}", encoded
        )
    if raw[0] != VERSION:
        raise FrameError(
            VERSION_MISMATCH, f"protocol version {raw[0]} is not supported (this gateway speaks {VERSION})", encoded
        )
    return Frame(raw[1], raw[2], bytes(raw[HEADER_LEN:-CRC_LEN]))


class Deframer:
    """Cuts a byte stream into frames; bad ones become counted FrameErrors and it resynchronises at the next 0x00.

    Memory is bounded: a run of more than :data:`MAX_ENCODED` bytes without a delimiter is dropped
    (counted once as ``oversize``) up to the next 0x00.
    """

    __slots__ = ("_buf", "_skipping", "errors", "frames")

    def __init__(self) -> None:
        self._buf = b""
        self._skipping = False
        self.frames = 0
        """Good frames cut so far."""
        self.errors: Counter[str] = Counter()
        """Bad frames by reason."""

    def reset(self) -> None:
        """Forget a partial frame (the port was reopened)."""
        self._buf = b""
        self._skipping = False

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Frames (and errors) completed by ``data``, in order; never raises."""
        if DELIMITER not in data:
            if not self._skipping:
                self._buf += data
                if len(self._buf) > MAX_ENCODED:
                    return [self._overflow()]
            return []
        parts = data.split(DELIMITER)
        out: list[Frame | FrameError] = []
        first = True
        for piece in parts[:-1]:  # every part but the last ends at a delimiter
            part = piece
            if first:
                first = False
                if self._skipping:
                    self._skipping = False  # the over-long run ends here; already counted
                    continue
                if self._buf:
                    part = self._buf + part
                    self._buf = b""
            if not part:
                continue  # back-to-back delimiters: a sender's resynchronisation, not an error
            try:
                out.append(decode_frame(part))
                self.frames += 1
            except FrameError as exc:
                self.errors[exc.reason] += 1
                out.append(exc)
        tail = parts[-1]
        if tail:
            self._buf = tail
            if len(tail) > MAX_ENCODED:
                out.append(self._overflow())
        return out

    def _overflow(self) -> FrameError:
        raw = self._buf
        self._buf = b""
        self._skipping = True
        self.errors[OVERSIZE] += 1
        return FrameError(
            OVERSIZE, f"more than {MAX_ENCODED} bytes without a 0x00 delimiter: dropped up to the next one", raw
        )
