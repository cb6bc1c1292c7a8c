"""Modbus register maps: hand-computed vectors, round trips through the encoder, and read planning."""

from __future__ import annotations

import itertools
import json
import math
import struct
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from drivers.modbus_map import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    DataType,
    Order,
    ReadBlock,
    RegisterDef,
    RegisterValueError,
    decode,
    encode,
    plan_reads,
    single_reads,
)

VECTORS = json.loads((Path(__file__).resolve().parent.parent / "vectors" / "modbus" / "decode.json").read_text())
CASES: list[dict[str, Any]] = VECTORS["cases"]
NUMERIC: list[DataType] = [t for t in get_args(DataType) if t != "bool"]
ORDERS: list[Order] = ["big", "little"]


def _defn(case: dict[str, Any]) -> RegisterDef:
    return RegisterDef(
        name="v",
        address=100,
        type=case["type"],
        word_order=case.get("word_order", "big"),
        byte_order=case.get("byte_order", "big"),
        scale=case.get("scale", 1.0),
        offset=case.get("offset", 0.0),
        unit=case.get("unit"),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    defn = _defn(case)
    if "registers_hex" in case:
        assert [int(h, 16) for h in case["registers_hex"]] == case["registers"]
    if "error" in case:
        with pytest.raises(RegisterValueError, match=case["error"]):
            decode(defn, case["registers"])
        return
    got = decode(defn, case["registers"])
    assert isinstance(got, float)
    assert math.isclose(got, case["value"], rel_tol=1e-7, abs_tol=1e-9)
    if case["value"] == 0 and math.copysign(1, case["value"]) < 0:
        assert math.copysign(1, got) < 0


@pytest.mark.parametrize("case", [c for c in CASES if "error" not in c], ids=lambda c: c["name"])
def test_vector_encodes_back(case: dict[str, Any]) -> None:
    defn = _defn(case)
    if defn.type == "float32" and (defn.scale, defn.offset) != (1.0, 0.0):
        value = struct.unpack(">f", struct.pack(">f", case["value"]))[0] * defn.scale + defn.offset
    else:
        value = case["value"]
    assert encode(defn, value) == case["registers"]


@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("word_order", ORDERS)
def test_agrees_with_pymodbus_for_big_endian_registers(dtype: DataType, word_order: Order) -> None:
    """pymodbus's own converter (registers big-endian, either word order) reads what encode writes."""
    defn = RegisterDef(name="v", address=0, type=dtype, word_order=word_order)
    value = {"int16": -1234, "uint16": 54321, "int32": -7654321, "uint32": 4000000000, "float32": 123.456}.get(
        dtype, -1234567890123 if dtype == "int64" else (12345678901234567 if dtype == "uint64" else 1.0e-300)
    )
    registers = encode(defn, value)
    theirs = ModbusClientMixin.convert_from_registers(
        [int(r) for r in registers], getattr(ModbusClientMixin.DATATYPE, dtype.upper()), word_order=word_order
    )
    assert isinstance(theirs, int | float)
    assert math.isclose(decode(defn, registers), float(theirs), rel_tol=1e-7)


def test_coils_are_bools() -> None:
    coil = RegisterDef(name="relay", kind="coil", address=3, type="bool")
    assert decode(coil, [True]) is True
    assert decode(coil, [False]) is False
    assert encode(coil, True) == [True]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"kind": "coil", "type": "uint16"}, "its type is bool"),
        ({"kind": "holding", "type": "bool"}, "not bool"),
        ({"address": 70000}, "not 0-65535"),
        ({"address": 65535, "type": "float32"}, "runs past address 65535"),
        ({"scale": 0.0}, "scale"),
        ({"offset": math.inf}, "offset"),
    ],
)
def test_bad_definitions(kwargs: dict[str, Any], words: str) -> None:
    args: dict[str, Any] = {"name": "x", "address": 0, **kwargs}
    with pytest.raises(ValueError, match=words):
        RegisterDef(**args)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["int16", "uint16", "int32", "uint32", "int64", "uint64"]),
    st.sampled_from(ORDERS),
    st.sampled_from(ORDERS),
    st.data(),
)
def test_integer_round_trip(dtype: DataType, word_order: Order, byte_order: Order, data: st.DataObject) -> None:
    bits = {"int16": 16, "uint16": 16, "int32": 32, "uint32": 32, "int64": 64, "uint64": 64}[dtype]
    signed = dtype.startswith("int")
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    # a float carries 53 bits exactly: stay within them for an exact round trip
    value = data.draw(st.integers(max(low, -(1 << 53)), min(high, 1 << 53)))
    defn = RegisterDef(name="v", address=10, type=dtype, word_order=word_order, byte_order=byte_order)
    registers = encode(defn, value)
    assert len(registers) == defn.count and all(0 <= int(r) <= 0xFFFF for r in registers)
    assert decode(defn, registers) == value


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["float32", "float64"]),
    st.sampled_from(ORDERS),
    st.sampled_from(ORDERS),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([1.0, 0.1, 0.001, 10.0]),
    st.sampled_from([0.0, -273.15, 40.0]),
)
def test_float_round_trip(
    dtype: DataType, word_order: Order, byte_order: Order, value: float, scale: float, offset: float
) -> None:
    defn = RegisterDef(
        name="v", address=0, type=dtype, word_order=word_order, byte_order=byte_order, scale=scale, offset=offset
    )
    try:
        registers = encode(defn, value)
    except ValueError:
        return  # (value - offset) / scale overflows a float32: nothing to round-trip
    raw = (value - offset) / scale
    if dtype == "float32":
        raw = struct.unpack(">f", struct.pack(">f", raw))[0]
    if not math.isfinite(raw):
        return
    assert decode(defn, registers) == pytest.approx(raw * scale + offset, rel=1e-12, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=4), st.sampled_from(NUMERIC))
def test_any_registers_decode_or_refuse(registers: list[int], dtype: DataType) -> None:
    defn = RegisterDef(name="v", address=0, type=dtype)
    try:
        value = decode(defn, registers)
    except RegisterValueError:
        return
    assert isinstance(value, float) and math.isfinite(value)


def _reg(name: str, address: int, dtype: DataType = "uint16", kind: str = "holding") -> RegisterDef:
    return RegisterDef(name=name, kind=kind, address=address, type=dtype)  # type: ignore[arg-type]


def test_plan_groups_adjacent_registers_into_one_read() -> None:
    defs = [_reg("a", 0), _reg("b", 1, "float32"), _reg("c", 3, "int32"), _reg("d", 5)]
    assert plan_reads(defs) == [ReadBlock("holding", 0, 6, tuple(defs))]


def test_plan_bridges_small_gaps_only() -> None:
    a, b, c = _reg("a", 0), _reg("b", 10), _reg("c", 30)
    blocks = plan_reads([c, a, b], max_gap=9)
    assert [(blk.address, blk.count, [d.name for d in blk.defs]) for blk in blocks] == [
        (0, 11, ["a", "b"]),
        (30, 1, ["c"]),
    ]
    assert len(plan_reads([a, b, c], max_gap=0)) == 3
    assert len(plan_reads([a, b, c], max_gap=20)) == 1


def test_plan_keeps_tables_apart() -> None:
    defs = [
        _reg("h", 0),
        _reg("i", 0, kind="input"),
        _reg("c", 0, "bool", "coil"),
        _reg("d", 0, "bool", "discrete"),
        _reg("c2", 1, "bool", "coil"),
    ]
    blocks = plan_reads(defs)
    assert [(b.kind, b.function_code, b.count) for b in blocks] == [
        ("coil", 1, 2),
        ("discrete", 2, 1),
        ("holding", 3, 1),
        ("input", 4, 1),
    ]


def test_plan_splits_at_125_registers() -> None:
    defs = [_reg(f"r{i}", i * 2, "float32") for i in range(100)]  # 200 registers back to back
    blocks = plan_reads(defs)
    assert [b.count for b in blocks] == [124, 76]  # a float32 never straddles two requests
    assert all(b.count <= MAX_READ_REGISTERS for b in blocks)
    assert sum(len(b.defs) for b in blocks) == 100
    small = plan_reads(defs, max_registers=10)
    assert all(b.count <= 10 for b in small) and len(small) == 20


def test_plan_splits_bits_at_2000() -> None:
    defs = [_reg(f"c{i}", i, "bool", "coil") for i in range(2500)]
    assert [b.count for b in plan_reads(defs)] == [MAX_READ_BITS, 500]


def test_plan_overlapping_views_share_a_read() -> None:
    whole, low = _reg("whole", 4, "uint32"), _reg("high_word", 4)
    (block,) = plan_reads([whole, low])
    assert (block.address, block.count) == (4, 2)
    data = [0x0001, 0x0002]
    assert decode(whole, block.values(data, whole)) == 65538.0
    assert decode(low, block.values(data, low)) == 1.0


def test_single_reads() -> None:
    defs = [_reg("a", 0), _reg("b", 1, "int32")]
    (block,) = plan_reads(defs)
    assert single_reads(block) == [ReadBlock("holding", 0, 1, (defs[0],)), ReadBlock("holding", 1, 2, (defs[1],))]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2000), st.sampled_from(NUMERIC), st.sampled_from(["holding", "input"])),
        min_size=1,
        max_size=60,
    ),
    st.integers(4, 125),
    st.integers(0, 20),
)
def test_plan_covers_every_value_within_limits(
    specs: list[tuple[int, DataType, str]], max_registers: int, max_gap: int
) -> None:
    defs = [_reg(f"r{i}", a, t, k) for i, (a, t, k) in enumerate(specs)]
    blocks = plan_reads(defs, max_registers=max_registers, max_gap=max_gap)
    seen = [d for b in blocks for d in b.defs]
    assert sorted(d.name for d in seen) == sorted(d.name for d in defs)
    for b in blocks:
        assert b.count <= max_registers
        assert all(d.kind == b.kind and b.address <= d.address and d.end <= b.address + b.count for d in b.defs)
    # as few requests as the rules allow: two neighbouring blocks of a table could not have been one
    for prev, nxt in itertools.pairwise(blocks):
        if prev.kind == nxt.kind:
            first = nxt.defs[0]
            gap = first.address - (prev.address + prev.count)
            assert gap > max_gap or max(prev.address + prev.count, first.end) - prev.address > max_registers
