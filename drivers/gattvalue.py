"""A GATT characteristic's bytes as a number: fixed-width integers and floats, scaled (pure, no I/O).

``decode_value(b"\\x2c\\x08", "s16le", scale=0.01)`` is 20.92: the Environmental Sensing service's
Temperature characteristic (0x2A6E) in degrees Celsius.
"""

from __future__ import annotations

import struct
from typing import Literal, NamedTuple


class ValueFormat(NamedTuple):
    """How many bytes a format takes and how they are read."""

    size: int
    signed: bool
    byteorder: Literal["little", "big"]
    float32: bool = False


FORMATS: dict[str, ValueFormat] = {
    "u8": ValueFormat(1, False, "little"),
    "s8": ValueFormat(1, True, "little"),
    "u16le": ValueFormat(2, False, "little"),
    "s16le": ValueFormat(2, True, "little"),
    "u16be": ValueFormat(2, False, "big"),
    "s16be": ValueFormat(2, True, "big"),
    "u24le": ValueFormat(3, False, "little"),
    "s24le": ValueFormat(3, True, "little"),
    "u32le": ValueFormat(4, False, "little"),
    "s32le": ValueFormat(4, True, "little"),
    "f32le": ValueFormat(4, True, "little", float32=True),
}


class GattValueError(ValueError):
    """Bytes that do not hold a value of the configured format."""


def decode_value(raw: bytes, fmt: str, *, scale: float = 1.0, offset: float = 0.0) -> float:
    """The value in the first bytes of ``raw`` read as ``fmt``, times ``scale`` plus ``offset``."""
    spec = FORMATS.get(fmt)
    if spec is None:
        raise GattValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if len(raw) < spec.size:
        raise GattValueError(f"{len(raw)} bytes is too short for {fmt} ({spec.size} bytes)")
    head = bytes(raw[: spec.size])
    if spec.float32:
        number: float = struct.unpack("<f", head)[0]
    else:
        number = int.from_bytes(head, spec.byteorder, signed=spec.signed)
    value = number * scale + offset
    return round(value, 9)  # 0.01 * 2092 is 20.920000000000002; keep what the device meant
