"""Modbus register maps: what a register holds, how to decode it, and how to read a map in few requests.

Pure (no I/O). A :class:`RegisterDef` names one value of a device: its table (holding or input
registers, coils or discrete inputs), its 0-based protocol address, its type and the order of its
words and bytes, and the scale and offset that turn the raw number into the unit named.

Word and byte order: Modbus sends each 16-bit register big-endian (high byte first), but devices
disagree on the order of registers within a 32- or 64-bit value, and a few swap the bytes inside
each register too. The float32 123.456 is ``42 F6 E9 79`` in IEEE 754; its two registers are

=========== =========== ============ ==========================
word order  byte order  registers    common name
=========== =========== ============ ==========================
big         big         42F6 E979    ABCD (the Modbus default)
little      big         E979 42F6    CDAB ("word swap")
big         little      F642 79E9    BADC ("byte swap")
little      little      79E9 F642    DCBA
=========== =========== ============ ==========================

:func:`plan_reads` groups the definitions of one table into as few read requests as the protocol
allows (at most 125 registers or 2000 bits a request), bridging gaps of at most ``max_gap`` unused
addresses.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64", "bool"]
Order = Literal["big", "little"]

MAX_READ_REGISTERS = 125
"""Most registers one read request may ask for (Modbus application protocol, functions 3 and 4)."""
MAX_READ_BITS = 2000
"""Most coils or discrete inputs one read request may ask for (functions 1 and 2)."""

BIT_KINDS: tuple[Kind, ...] = ("coil", "discrete")
REGISTER_KINDS: tuple[Kind, ...] = ("holding", "input")
# type -> (registers, struct format of its big-endian bytes)
_FORMATS: dict[str, tuple[int, str]] = {
    "int16": (1, ">h"),
    "uint16": (1, ">H"),
    "int32": (2, ">i"),
    "uint32": (2, ">I"),
    "float32": (2, ">f"),
    "int64": (4, ">q"),
    "uint64": (4, ">Q"),
    "float64": (4, ">d"),
}
FUNCTION_CODES: dict[Kind, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


class RegisterValueError(ValueError):
    """Raw data that does not decode to a usable value (wrong length, NaN or infinity)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterDef:
    """One value in a device's register map."""

    name: str
    kind: Kind = "holding"
    address: int
    type: DataType = "uint16"
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"address {self.address} is not 0-65535")
        if self.kind in BIT_KINDS and self.type != "bool":
            raise ValueError(f"a {self.kind} is a single bit: its type is bool, not {self.type}")
        if self.kind in REGISTER_KINDS and self.type == "bool":
            raise ValueError(f"a {self.kind} register holds a number: int16, uint16, ..., not bool")
        if self.address + self.count - 1 > 0xFFFF:
            raise ValueError(f"{self.type} at address {self.address} runs past address 65535")
        if not (math.isfinite(self.scale) and math.isfinite(self.offset)) or self.scale == 0:
            raise ValueError("scale must be a finite number other than 0, offset a finite number")

    @property
    def count(self) -> int:
        """How many registers (or bits) the value spans."""
        return 1 if self.type == "bool" else _FORMATS[self.type][0]

    @property
    def end(self) -> int:
        """The address just past the value."""
        return self.address + self.count


def _to_bytes(defn: RegisterDef, registers: Sequence[int]) -> bytes:
    words = list(registers)
    if defn.word_order == "little":
        words.reverse()
    return b"".join(w.to_bytes(2, defn.byte_order) for w in words)


def decode_raw(defn: RegisterDef, raw: Sequence[int] | Sequence[bool]) -> int | float | bool:
    """The raw value (before scale and offset) of ``defn`` from its own registers or bit."""
    if len(raw) != defn.count:
        raise RegisterValueError(f"{defn.name}: got {len(raw)} values for a {defn.type} that spans {defn.count}")
    if defn.type == "bool":
        return bool(raw[0])
    if any(isinstance(r, bool) or not 0 <= int(r) <= 0xFFFF for r in raw):
        raise RegisterValueError(f"{defn.name}: registers must be 16-bit numbers, got {list(raw)!r}")
    value: int | float = struct.unpack(_FORMATS[defn.type][1], _to_bytes(defn, [int(r) for r in raw]))[0]
    return value


def decode(defn: RegisterDef, raw: Sequence[int] | Sequence[bool]) -> float | bool:
    """The value of ``defn`` (scaled and offset, a float; a bool for coils) from its own registers or bit."""
    value = decode_raw(defn, raw)
    if isinstance(value, bool):
        return value
    if defn.type.startswith("float") and not math.isfinite(value):
        raise RegisterValueError(f"{defn.name}: the device reports {value} (no value)")
    scaled = value * defn.scale + defn.offset if (defn.scale != 1.0 or defn.offset != 0.0) else float(value)
    if not math.isfinite(scaled):
        raise RegisterValueError(f"{defn.name}: {value} scaled by {defn.scale} is out of range")
    return float(scaled)


def encode(defn: RegisterDef, value: float | bool) -> list[int] | list[bool]:
    """The registers (or bit) a device would hold for ``value``: the inverse of :func:`decode`."""
    if defn.type == "bool":
        return [bool(value)]
    raw: int | float
    if isinstance(value, int) and defn.scale == 1.0 and defn.offset == 0.0:
        raw = value  # exact, even past the 53 bits a float holds
    else:
        raw = (float(value) - defn.offset) / defn.scale
    fmt = _FORMATS[defn.type][1]
    try:
        packed = struct.pack(fmt, raw if defn.type.startswith("float") else round(raw))
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{defn.name}: {value} does not fit a {defn.type}") from exc
    words = [int.from_bytes(packed[i : i + 2], defn.byte_order) for i in range(0, len(packed), 2)]
    if defn.word_order == "little":
        words.reverse()
    return words


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: ``count`` registers (or bits) of ``kind`` from ``address``, covering ``defs``."""

    kind: Kind
    address: int
    count: int
    defs: tuple[RegisterDef, ...]

    @property
    def function_code(self) -> int:
        """The Modbus function that reads it (1, 2, 3 or 4)."""
        return FUNCTION_CODES[self.kind]

    def values(self, data: Sequence[int] | Sequence[bool], defn: RegisterDef) -> Sequence[int] | Sequence[bool]:
        """The slice of a response to this block that holds ``defn``."""
        start = defn.address - self.address
        return data[start : start + defn.count]


def plan_reads(
    defs: Iterable[RegisterDef], *, max_registers: int = MAX_READ_REGISTERS, max_gap: int = 8
) -> list[ReadBlock]:
    """Group ``defs`` into as few read requests as possible, table by table, in address order.

    A request spans at most ``max_registers`` registers (``MAX_READ_BITS`` bits for coils and
    discrete inputs) and bridges at most ``max_gap`` unused addresses between two values.
    """
    if not 1 <= max_registers <= MAX_READ_REGISTERS:
        raise ValueError(f"max_registers must be 1-{MAX_READ_REGISTERS}")
    if max_gap < 0:
        raise ValueError("max_gap must be 0 or more")
    blocks: list[ReadBlock] = []
    by_kind: dict[Kind, list[RegisterDef]] = {}
    for d in defs:
        by_kind.setdefault(d.kind, []).append(d)
    for kind in ("coil", "discrete", "holding", "input"):
        members = sorted(by_kind.get(kind, ()), key=lambda d: (d.address, d.count))
        limit = MAX_READ_BITS if kind in BIT_KINDS else max_registers
        current: list[RegisterDef] = []
        start = end = 0
        for d in members:
            if current and d.address - end <= max_gap and max(end, d.end) - start <= limit:
                current.append(d)
                end = max(end, d.end)
                continue
            if current:
                blocks.append(ReadBlock(kind, start, end - start, tuple(current)))
            current, start, end = [d], d.address, d.end
        if current:
            blocks.append(ReadBlock(kind, start, end - start, tuple(current)))
    return blocks


def single_reads(block: ReadBlock) -> list[ReadBlock]:
    """``block`` as one request per value (to find which value a device refuses)."""
    return [ReadBlock(block.kind, d.address, d.count, (d,)) for d in block.defs]
