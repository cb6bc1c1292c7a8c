"""Check an Intel HEX firmware image before it goes near a node: every record, and where its bytes land.

A node flashed with a cut or corrupted image does not boot, and a technician has to walk to it.
So an image is taken only when every line is a well-formed record with a right checksum, the
record types are Intel HEX's, an end-of-file record closes it, its bytes fit the application area
(below the bootloader) without overlapping, it is not empty, and it has code at the reset vector.
The first problem found is raised as :class:`HexError` naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA, EOF, EXT_SEGMENT, START_SEGMENT, EXT_LINEAR, START_LINEAR = range(6)
_ADDRESS_RECORD_LENGTH = {EXT_SEGMENT: 2, START_SEGMENT: 4, EXT_LINEAR: 2, START_LINEAR: 4}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class HexError(ValueError):
    """The image is refused; ``line`` is the 1-based line at fault (0 for the file as a whole)."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}" if line else problem)
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class HexImage:
    """A checked image: how many bytes it programs and the highest address it reaches."""

    size: int
    """Data bytes in the image."""
    end: int
    """One past the highest address written."""
    records: int
    """Data records."""


def _record(text: str, line: int) -> tuple[int, int, bytes]:
    """One line's record: (type, 16-bit address, data); raise HexError when it is not a sound record."""
    if not text.startswith(":"):
        raise HexError(line, f"does not start with ':' ({text[:16]!r}): this is not an Intel HEX file")
    digits = text[1:]
    bad = next((c for c in digits if c not in _HEX_DIGITS), None)
    if bad is not None:
        raise HexError(line, f"{bad!r} is not a hexadecimal digit")
    if len(digits) % 2:
        raise HexError(line, "has an odd number of hexadecimal digits (cut short?)")
    raw = bytes.fromhex(digits)
    if len(raw) < 5:
        raise HexError(line, "is too short for a record (a record has at least 5 bytes)")
    count = raw[0]
    if len(raw) != count + 5:
        raise HexError(line, f"says {count} data bytes but holds {len(raw) - 5} (cut short or joined with another?)")
    if sum(raw) & 0xFF:
        expected = (-sum(raw[:-1])) & 0xFF
        raise HexError(
            line, f"checksum 0x{raw[-1]:02X} is wrong (its bytes give 0x{expected:02X}): the file is corrupted"
        )
    return raw[3], (raw[1] << 8) | raw[2], raw[4:-1]


def check(text: str, *, application_bytes: int) -> HexImage:
    """Check ``text`` (a whole .hex file) for a node whose application area is ``application_bytes`` long."""
    owner = [0] * application_bytes  # the line that wrote each byte, 0: none yet
    base = 0
    size = records = end = 0
    finished = 0
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if finished:
            raise HexError(number, f"comes after the end-of-file record of line {finished}")
        kind, offset, data = _record(line, number)
        if kind == DATA:
            if not data:
                continue
            start = base + offset
            stop = start + len(data)
            if stop > application_bytes:
                raise HexError(
                    number,
                    f"bytes 0x{start:04X}-0x{stop - 1:04X} lie outside the application area "
                    f"0x0000-0x{application_bytes - 1:04X} (the bootloader's or past the flash): "
                    "the image does not fit this node",
                )
            for address in range(start, stop):
                if owner[address]:
                    raise HexError(number, f"address 0x{address:04X} was already written by line {owner[address]}")
                owner[address] = number
            size += len(data)
            records += 1
            end = max(end, stop)
        elif kind == EOF:
            if data:
                raise HexError(number, "the end-of-file record carries data")
            finished = number
        elif kind in _ADDRESS_RECORD_LENGTH:
            if len(data) != _ADDRESS_RECORD_LENGTH[kind]:
                raise HexError(number, f"record type {kind:02X} must carry {_ADDRESS_RECORD_LENGTH[kind]} bytes")
            if kind == EXT_SEGMENT:
                base = int.from_bytes(data, "big") << 4
            elif kind == EXT_LINEAR:
                base = int.from_bytes(data, "big") << 16
        else:
            raise HexError(number, f"record type {kind:02X} is not an Intel HEX record type (00-05)")
    if not finished:
        raise HexError(0, "there is no end-of-file record (:00000001FF): the file is cut short")
    if size == 0:
        raise HexError(0, "the image holds no program bytes")
    if not owner[0]:
        raise HexError(0, "nothing is written at address 0x0000 (the reset vector): this is not an application image")
    return HexImage(size=size, end=end, records=records)
