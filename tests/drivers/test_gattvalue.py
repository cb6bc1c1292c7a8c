"""GATT characteristic values: every format, scaling, and bytes that are too short."""

from __future__ import annotations

import struct

import pytest

from drivers.gattvalue import FORMATS, GattValueError, decode_value


@pytest.mark.parametrize(
    ("raw", "fmt", "scale", "expected"),
    [
        (b"\x2c\x08", "s16le", 0.01, 20.92),  # Temperature 0x2A6E: 20.92 Cel
        (b"\x18\xfc", "s16le", 0.01, -10.0),
        (b"\x57", "u8", 1, 87),  # Battery Level 0x2A19
        (b"\xff", "s8", 1, -1),
        (b"\xa0\x86\x01", "u24le", 1, 100_000),
        (b"\xff\xff\xff", "s24le", 1, -1),
        (b"\x01\x02", "u16be", 1, 258),
        (b"\xff\xfe", "s16be", 1, -2),
        (b"\x10\x27\x00\x00", "u32le", 0.1, 1000.0),
        (b"\xfe\xff\xff\xff", "s32le", 1, -2),
        (struct.pack("<f", 1.5), "f32le", 2, 3.0),
        (b"\x10\x27\x00\x00\x99", "u16le", 1, 10000),  # longer values: the first bytes
    ],
)
def test_formats(raw: bytes, fmt: str, scale: float, expected: float) -> None:
    assert decode_value(raw, fmt, scale=scale) == expected


def test_offset_after_scale() -> None:
    assert decode_value(b"\x64", "u8", scale=0.5, offset=-40) == 10.0


def test_too_short_and_unknown_formats_are_refused() -> None:
    for fmt, spec in FORMATS.items():
        with pytest.raises(GattValueError, match="too short"):
            decode_value(b"\x00" * (spec.size - 1), fmt)
    with pytest.raises(GattValueError, match="unknown format"):
        decode_value(b"\x00", "u12")
