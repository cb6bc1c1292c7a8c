"""GATT reads on a schedule and writes, through bleak's real BleakClient with a virtual-peripheral backend."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.adapters.ble.adapter import AVAILABLE, BleAdapter
from gateway.adapters.ble.config import BleDeviceSection, BleSection, GattPollSection
from gateway.adapters.ble.errors import GattFailed, GattTimeout
from gateway.adapters.ble.gatt import GattLink
from gateway.hub import Hub
from gateway.pairing import Pairing
from tests.gateway import ble_rig
from tests.gateway.ble_rig import VirtualGattClient, VirtualPeripheral, VirtualRadio, buffered, run_until

TEMP = "00002a6e-0000-1000-8000-00805f9b34fb"
BATTERY = "00002a19-0000-1000-8000-00805f9b34fb"
MACS = [f"C0:FF:EE:00:00:0{i}" for i in range(1, 4)]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async for h in ble_rig.hub_at(tmp_path / "buf.sqlite"):
        yield h


def gatt_device(address: str, interval: float = 1.0) -> BleDeviceSection:
    return BleDeviceSection(
        address=address,
        gatt=(
            GattPollSection(characteristic="2a6e", metric="temperature", interval_s=interval, scale=0.01, unit="Cel"),
            GattPollSection(characteristic="2a19", metric="battery", interval_s=interval, format="u8", unit="%EL"),
        ),
    )


def radio(**kwargs: object) -> VirtualRadio:
    return VirtualRadio(
        {m: VirtualPeripheral({TEMP: (2092 + i).to_bytes(2, "little"), BATTERY: b"\x57"}) for i, m in enumerate(MACS)},
        **kwargs,  # type: ignore[arg-type]
    )


async def test_reads_on_a_schedule_within_the_connection_limit(hub: Hub) -> None:
    air = radio(connect_delay=0.1)
    cfg = BleSection(enabled=True, devices=tuple(gatt_device(m) for m in MACS), max_connections=1, watchdog_s=0)
    adapter = BleAdapter(
        cfg,
        hub,
        Pairing([]),
        client_backend=VirtualGattClient,
        client_kwargs={"radio": air},
        **ble_rig.replay_kwargs([]),
    )
    await run_until(adapter, lambda: air.connects >= 6, timeout=5)
    assert air.most_open == 1 and adapter.link.stats.most_open == 1
    readings = await buffered(hub)
    by = {(r.sensor, r.metric) for r in readings}
    assert by >= {(m, "temperature") for m in MACS} | {(m, "battery") for m in MACS}
    temps = {r.sensor: r.value for r in readings if r.metric == "temperature"}
    assert temps == {MACS[0]: 20.92, MACS[1]: 20.93, MACS[2]: 20.94}
    assert all(r.unit == "Cel" for r in readings if r.metric == "temperature")
    # each device twice in about 1 s: a grid, not a burst
    assert all(s.rounds >= 2 for s in adapter.gatt.states.values())


@pytest.mark.slow  # waits out real deadlines (make test runs it)
async def test_a_hanging_read_times_out_and_the_device_is_retried(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    air = radio()
    air.peripherals[MACS[0]].hang = True
    cfg = BleSection(enabled=True, devices=(gatt_device(MACS[0]),), gatt_timeout_s=0.2, watchdog_s=0)
    adapter = BleAdapter(
        cfg,
        hub,
        Pairing([]),
        client_backend=VirtualGattClient,
        client_kwargs={"radio": air},
        **ble_rig.replay_kwargs([]),
    )
    with caplog.at_level(logging.DEBUG, logger="gateway.adapters.ble"):
        task = asyncio.create_task(adapter.run())
        await asyncio.sleep(1.5)
        state = adapter.gatt.states[MACS[0]]
        assert state.failing and state.failures >= 2 and adapter.link.stats.timeouts >= 2
        assert air.open_now == 0, "a timed-out connection is closed"
        air.peripherals[MACS[0]].hang = False
        await asyncio.sleep(1.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not state.failing
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "GATT reads" in warnings[0]
    assert any("work again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert [r.metric for r in await buffered(hub)] == ["temperature", "battery"]


# GATT reads every second keep a device whose silence limit is 2 s available for 3.5 s with no advertisement
# (a 1 s limit raced the 1 s reads under load).
@pytest.mark.slow  # waits out real deadlines (make test runs it)
async def test_gatt_reads_keep_a_device_available(hub: Hub) -> None:
    air = radio()
    device = BleDeviceSection(
        address=MACS[0],
        expected_interval_s=2.0,
        gatt=(GattPollSection(characteristic="2a19", metric="battery", interval_s=1.0, format="u8"),),
    )
    cfg = BleSection(enabled=True, devices=(device,), watchdog_s=0)
    adapter = BleAdapter(
        cfg,
        hub,
        Pairing([]),
        client_backend=VirtualGattClient,
        client_kwargs={"radio": air},
        **ble_rig.replay_kwargs([]),
    )
    t0 = time.monotonic()
    await run_until(adapter, lambda: time.monotonic() - t0 > 3.5, timeout=5)
    readings = await buffered(hub)
    assert AVAILABLE not in {r.metric for r in readings}
    assert [r.value for r in readings if r.metric == "battery"][:2] == [87, 87]


async def test_write_to_actuate_and_its_errors(hub: Hub) -> None:
    air = radio()
    cfg = BleSection(enabled=True, devices=(BleDeviceSection(address=MACS[0], name="valve"),), gatt_timeout_s=0.2)
    adapter = BleAdapter(
        cfg,
        hub,
        Pairing([]),
        client_backend=VirtualGattClient,
        client_kwargs={"radio": air},
        **ble_rig.replay_kwargs([]),
    )
    assert adapter.owns("valve") and adapter.owns(MACS[0].lower()) and not adapter.owns("pump")
    assert adapter.actions("valve") == ["write"]
    result = await adapter.actuate("valve", "write", {"characteristic": "2a19", "value": "01ff"})
    assert result["result"] == "done"
    assert air.peripherals[MACS[0]].writes == [(BATTERY, b"\x01\xff", True)]
    assert air.open_now == 0

    from gateway.adapters.base import ActuationError

    with pytest.raises(ActuationError, match="write needs"):
        await adapter.actuate("valve", "write", {"value": "01"})
    with pytest.raises(ActuationError, match="not found"):
        await adapter.actuate("C0:FF:EE:00:00:09", "write", {"characteristic": "2a19", "value": "01"})


async def test_the_link_translates_bleak_errors_and_timeouts() -> None:
    air = radio(connect_delay=0.5)
    cfg = BleSection(enabled=True, connect_timeout_s=0.1)
    link = GattLink(cfg, backend=VirtualGattClient, backend_kwargs={"radio": air})
    with pytest.raises(GattTimeout, match="no connection within"):
        async with link.connect(MACS[0]):
            pass
    air.connect_delay = 0
    with pytest.raises(GattFailed, match="cannot connect"):
        async with link.connect("C0:FF:EE:00:00:09"):
            pass
    assert link.stats.connect_failures == 2 and link.stats.timeouts == 1 and link.stats.open_now == 0
