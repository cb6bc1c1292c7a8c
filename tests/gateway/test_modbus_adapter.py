"""The Modbus RTU adapter against pymodbus's own RTU server, over a real pty line.

Values of every type and table decode with their word and byte order, scale and offset; a register
the unit refuses is reported on its own while the others arrive; timeouts and retries are counted;
a unit that stops answering is marked unavailable after N polls and comes back by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.measurement import Measurement
from gateway.adapters.modbus.adapter import ModbusAdapter, ModbusPollError, ModbusUnit
from gateway.adapters.modbus.config import ModbusPortSection, ModbusRegisterSection
from gateway.adapters.modbus.line import ModbusLine, NoAnswer, PortError
from gateway.adapters.polling import AVAILABLE
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection
from gateway.hub import Hub
from tests.gateway.modbus_peer import PtyBridge, RtuServer, bits, registers, unit
from wire.reading import Reading

from pymodbus.simulator import SimData  # isort: skip
from pymodbus.simulator.simutils import DataType  # isort: skip

HOLDING = [
    0xFF38,  # 0 int16 -200 -> temp -20.0 Cel (scale 0.1)
    2301,  # 1 uint16 -> voltage 230.1 V
    0xFFFE,  # 2-3 int32 -123456 ABCD -> power W
    0x1DC0,
    0x86A0,  # 4-5 uint32 100000 CDAB -> energy 1000.0 kWh (scale 0.01)
    0x0001,
    0xF642,  # 6-7 float32 123.456 BADC -> flow
    0x79E9,
    0x0000,  # 8-9 float32 50.0 DCBA -> frequency Hz
    0x4842,
    0x3FF8,  # 10-13 float64 1.5
    0,
    0,
    0,
    0xFFFF,  # 14-17 int64 -5
    0xFFFF,
    0xFFFF,
    0xFFFB,
]  # 18-19 are not there: reading them is an illegal data address
EXPECTED = {
    "temp": (-20.0, "Cel"),
    "voltage": (230.1, "V"),
    "power": (-123456.0, "W"),
    "energy": (1000.0, "kWh"),
    "flow": (123.456, "m3/h"),
    "frequency": (50.0, "Hz"),
    "f64": (1.5, None),
    "i64": (-5.0, None),
    "kelvin": (25.05, "Cel"),
    "input_float": (123.456, None),
    "answer": (42.0, None),
    "relay1": (True, None),
    "relay3": (True, None),
    "relay2": (False, None),
    "door": (True, None),
}


def _reg(name: str, address: int, **kw: Any) -> ModbusRegisterSection:
    return ModbusRegisterSection(name=name, address=address, **kw)


REGISTER_MAP = (
    _reg("temp", 0, type="int16", scale=0.1, unit="Cel"),
    _reg("voltage", 1, scale=0.1, unit="V"),
    _reg("power", 2, type="int32", unit="W"),
    _reg("energy", 4, type="uint32", word_order="little", scale=0.01, unit="kWh"),
    _reg("flow", 6, type="float32", byte_order="little", unit="m3/h"),
    _reg("frequency", 8, type="float32", word_order="little", byte_order="little", unit="Hz"),
    _reg("f64", 10, type="float64"),
    _reg("i64", 14, type="int64"),
    _reg("missing", 18),
    _reg("kelvin", 20, scale=0.1, offset=-273.15, unit="Cel"),
    _reg("input_float", 0, kind="input", type="float32"),
    _reg("answer", 2, kind="input"),
    _reg("relay1", 0, kind="coil"),
    _reg("relay2", 1, kind="coil"),
    _reg("relay3", 2, kind="coil"),
    _reg("door", 0, kind="discrete"),
)


def _meter(unit_id: int = 1) -> Any:
    return unit(
        unit_id,
        holding=[registers(0, HOLDING), registers(20, [2982])],
        inputs=[SimData(0, values=123.456, datatype=DataType.FLOAT32), registers(2, [42])],
        coils=[bits(0, [True, False, True])],
        discrete=[bits(0, [True])],
    )


def _section(path: str, **kw: Any) -> ModbusPortSection:
    args: dict[str, Any] = {
        "path": path,
        "unit": 1,
        "name": "rtu0",
        "baud": 19200,
        "parity": "none",
        "interval_s": 0.2,
        "timeout_s": 0.2,
        "retries": 1,
        "registers": REGISTER_MAP,
    }
    args.update(kw)
    return ModbusPortSection(**args)


@pytest.fixture
async def bridge() -> AsyncIterator[PtyBridge]:
    b = PtyBridge()
    b.open()
    yield b
    b.close()


@pytest.fixture
async def server(bridge: PtyBridge) -> AsyncIterator[RtuServer]:
    s = RtuServer(bridge.server_path, [_meter(1), _meter(2)])
    await s.start()
    yield s
    await s.stop()


def _line(section: ModbusPortSection) -> ModbusLine:
    baud, parity, stopbits = section.serial_settings()
    return ModbusLine(section.path, baud=baud, parity=parity, stopbits=stopbits, timeout_s=section.timeout_s)


def _values(ms: list[Measurement] | tuple[Measurement, ...]) -> dict[str, tuple[object, str | None]]:
    return {m.metric: (m.value, m.unit) for m in ms}


def _check_all(got: dict[str, tuple[object, str | None]]) -> None:
    assert sorted(got) == sorted(EXPECTED)
    for name, (value, unit_) in EXPECTED.items():
        v, u = got[name]
        assert u == unit_, name
        if isinstance(value, bool):
            assert v is value, name
        else:
            assert isinstance(v, float) and v == pytest.approx(value, rel=1e-6), name


async def test_every_type_and_table_decodes_and_a_refused_register_is_reported_alone(
    bridge: PtyBridge, server: RtuServer, caplog: pytest.LogCaptureFixture
) -> None:
    section = _section(bridge.client_path)
    line = _line(section)
    device = ModbusUnit(section, line)
    assert device.sensor == "rtu0-1"
    # coils 0-2, discrete 0, holding 0-20 (18-19 bridged), input 0-2
    assert [(b.kind, b.address, b.count) for b in device.blocks] == [
        ("coil", 0, 3),
        ("discrete", 0, 1),
        ("holding", 0, 21),
        ("input", 0, 3),
    ]
    try:
        with caplog.at_level(logging.INFO, logger="gateway.adapters.modbus"):
            first = await device.poll()
        _check_all(_values(list(first)))
        # the holding block ran into 18-19: the unit refused it, its values were then read one by one
        assert device.splits == 1
        assert list(device.register_errors) == ["missing"]
        assert "exception 2 (illegal data address)" in device.register_errors["missing"]
        assert line.exceptions[2] == 2  # the whole block, then "missing" alone
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "rtu0-1:missing" in warnings[0].getMessage()
        requests = line.requests
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gateway.adapters.modbus"):
            second = await device.poll()
        _check_all(_values(list(second)))
        # then the values that read well are joined again without gaps: coils, discrete, holding 0-17,
        # holding 20, the refused holding 18 alone, inputs
        assert device.splits == 1 and line.requests - requests == 6
        assert sorted((b.kind, b.address, b.count) for b in device.blocks) == [
            ("coil", 0, 3),
            ("discrete", 0, 1),
            ("holding", 0, 18),
            ("holding", 18, 1),
            ("holding", 20, 1),
            ("input", 0, 3),
        ]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # an incident is logged once
        assert device.register_failures["missing"] == 2
        stats = device.stats()
        assert stats["register_errors"] == {"missing": device.register_errors["missing"]}
        assert line.timeouts == 0 and line.retries == 0
    finally:
        line.close()


async def test_two_units_share_one_line(bridge: PtyBridge, server: RtuServer) -> None:
    one = _section(bridge.client_path, unit=1, registers=REGISTER_MAP[:2])
    two = _section(bridge.client_path, unit=2, registers=REGISTER_MAP[10:12])
    line = _line(one)
    a, b = ModbusUnit(one, line), ModbusUnit(two, line)
    try:
        results = await asyncio.gather(*(d.poll() for d in (a, b, a, b, a, b)))
        for i, r in enumerate(results):
            names = {"temp", "voltage"} if i % 2 == 0 else {"input_float", "answer"}
            assert {m.metric for m in r} == names
        assert line.opens == 1 and line.timeouts == 0 and line.answers == 6
    finally:
        line.close()


async def test_a_lost_request_is_retried_and_counted(bridge: PtyBridge, server: RtuServer) -> None:
    section = _section(bridge.client_path, registers=REGISTER_MAP[:2], retries=2)
    line = _line(section)
    device = ModbusUnit(section, line)
    try:
        await device.poll()  # opens the port
        bridge.drop_requests = 1
        got = _values(list(await device.poll()))
        assert got["voltage"] == (pytest.approx(230.1), "V")
        assert line.timeouts == 1 and line.retries == 1
        assert line.stats()["timeouts"] == 1
    finally:
        line.close()


async def test_a_silent_unit_fails_the_poll_after_its_retries(bridge: PtyBridge, server: RtuServer) -> None:
    section = _section(bridge.client_path, registers=REGISTER_MAP[:2], retries=2, timeout_s=0.1)
    line = _line(section)
    device = ModbusUnit(section, line)
    try:
        bridge.cut = True
        started = time.monotonic()
        with pytest.raises(NoAnswer, match=r"unit 1 on .*: no answer within 0.1 s \(3 tries\)"):
            await device.poll()
        assert time.monotonic() - started < 2.0
        assert line.timeouts == 3 and line.retries == 2
        assert device.register_errors == {}  # the unit is silent, not one register: the poller reports it
    finally:
        line.close()


async def test_an_absent_unit_does_not_disturb_its_neighbour(bridge: PtyBridge, server: RtuServer) -> None:
    here = _section(bridge.client_path, unit=1, registers=REGISTER_MAP[:2])
    absent = _section(bridge.client_path, unit=9, registers=REGISTER_MAP[:2], retries=0)
    line = _line(here)
    bridge.absent.add(9)
    try:
        with pytest.raises(NoAnswer):
            await ModbusUnit(absent, line).poll()
        assert {m.metric for m in await ModbusUnit(here, line).poll()} == {"temp", "voltage"}
    finally:
        line.close()


async def test_a_map_of_refused_registers_fails_the_poll(bridge: PtyBridge, server: RtuServer) -> None:
    section = _section(bridge.client_path, registers=(_reg("nothing", 500), _reg("nada", 501)))
    line = _line(section)
    device = ModbusUnit(section, line)
    try:
        with pytest.raises(ModbusPollError, match="no value came back"):
            await device.poll()
        assert set(device.register_errors) == {"nothing", "nada"}
    finally:
        line.close()


async def test_a_missing_port_says_so(tmp_path: Path) -> None:
    section = _section(str(tmp_path / "ttyUSB9"))
    line = _line(section)
    with pytest.raises(PortError, match="no such device"):
        await ModbusUnit(section, line).poll()


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with DurableBuffer.from_config(tmp_path / "buf.sqlite", BufferSection()) as buffer:
        yield Hub(buffer)


async def _taken(hub: Hub) -> list[Reading]:
    buffer = hub._sink
    assert isinstance(buffer, DurableBuffer)
    batch = await buffer.take(10_000)
    return [] if batch is None else batch.readings


async def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_unavailable_after_n_failed_polls_then_recovers(
    bridge: PtyBridge, server: RtuServer, hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    section = _section(bridge.client_path, registers=REGISTER_MAP[:2], interval_s=0.1, timeout_s=0.05, retries=0)
    adapter = ModbusAdapter([section], hub, fail_threshold=3, backoff_max_s=0.2)
    state = adapter.states["rtu0-1"]
    task = asyncio.create_task(adapter.run())
    try:
        await _until(lambda: state.readings >= 4, 5.0, "readings")
        bridge.cut = True
        await _until(lambda: not state.available, 5.0, "unavailable")
        assert state.consecutive_failures == 3
        assert "no answer" in state.last_error
        bridge.cut = False
        await _until(lambda: state.available, 5.0, "recovery")
        await _until(lambda: state.readings >= 6, 5.0, "readings after recovery")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    readings = await _taken(hub)
    flags = [r.value for r in readings if r.metric == AVAILABLE]
    assert flags == [False, True]
    assert {r.sensor for r in readings} == {"rtu0-1"}
    temps = [r for r in readings if r.metric == "temp"]
    assert temps and all(r.value == pytest.approx(-20.0) and r.unit == "Cel" for r in temps)
    stats = adapter.stats()
    assert stats["lines"][bridge.client_path]["timeouts"] >= 3  # type: ignore[index]
    assert stats["units"]["rtu0-1"]["register_errors"] == {}  # type: ignore[index]
    assert adapter.lines[bridge.client_path].stats()["connected"] is False  # closed on the way out


async def test_units_recover_after_the_server_restarts(bridge: PtyBridge, hub: Hub) -> None:
    first = RtuServer(bridge.server_path, [_meter(1)])
    await first.start()
    section = _section(bridge.client_path, registers=REGISTER_MAP[:2], interval_s=0.1, timeout_s=0.05, retries=0)
    adapter = ModbusAdapter([section], hub, fail_threshold=2, backoff_max_s=0.2)
    state = adapter.states["rtu0-1"]
    task = asyncio.create_task(adapter.run())
    try:
        await _until(lambda: state.readings >= 2, 5.0, "readings")
        await first.stop()
        await _until(lambda: not state.available, 5.0, "unavailable")
        second = RtuServer(bridge.server_path, [_meter(1)])
        await second.start()
        try:
            await _until(lambda: state.available and state.readings >= 4, 5.0, "recovery")
        finally:
            await second.stop()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
