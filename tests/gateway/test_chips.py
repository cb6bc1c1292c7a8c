"""The I2C/SPI chip adapter: config, emulated chips through the real drivers into the buffer, faults, missing buses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from drivers.i2c.bme280_emulator import Bme280Emulator
from drivers.i2c.emulated_bus import ChipModel
from drivers.spi.mcp3008_emulator import Mcp3008Emulator
from gateway import config
from gateway.adapters.chips.adapter import ChipAdapter
from gateway.adapters.chips.buses import Buses
from gateway.adapters.chips.config import PollingSection
from gateway.adapters.polling import AVAILABLE
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection
from gateway.errors import ConfigError
from gateway.hub import Hub
from wire.reading import Reading

CHIPS = """
[[adapters.i2c]]
chip = "bme280"
emulated = true
interval_s = 0.05

[[adapters.i2c]]
chip = "sht3x"
address = 0x45
emulated = true
interval_s = 0.05

[[adapters.i2c]]
chip = "ads1115"
inputs = ["AIN0", "AIN2-AIN3"]
full_scale_v = 4.096
emulated = true
interval_s = 0.05

[[adapters.spi]]
chip = "mcp3008"
inputs = ["ch0", "ch3", "ch4-ch5"]
vref = 3.3
emulated = true
interval_s = 0.05
"""


def _load(tmp_path: Path, text: str) -> config.GatewayConfig:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return config.load(path)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with DurableBuffer.from_config(tmp_path / "buf.sqlite", BufferSection()) as buffer:
        yield Hub(buffer)


async def _readings(hub: Hub) -> list[Reading]:
    buffer = hub._sink
    assert isinstance(buffer, DurableBuffer)
    batch = await buffer.take(100_000)
    return [] if batch is None else batch.readings


async def _until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (bounded) for ``cond``; polling, so a loaded machine only makes it slower, never wrong."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _run(adapter: ChipAdapter, seconds: float) -> None:
    task = asyncio.create_task(adapter.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_chips_load_from_toml_with_their_sensor_ids(tmp_path: Path) -> None:
    cfg = _load(tmp_path, CHIPS)
    i2c, spi = cfg.adapters.i2c, cfg.adapters.spi
    assert [c.sensor_id for c in i2c] == ["i2c-1-0x76", "i2c-1-0x45", "i2c-1-0x48"]
    assert [spi[0].sensor_id(i) for i in spi[0].inputs] == ["spi0.0-ch0", "spi0.0-ch3", "spi0.0-ch4-ch5"]


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[[adapters.i2c]]\nchip = "bme280"\naddress = 0x40\n', "adapters.i2c[0].address", "0x76, 0x77"),
        ('[[adapters.i2c]]\nchip = "bme281"\n', "adapters.i2c[0].chip", "bme280"),
        ('[[adapters.i2c]]\nchip = "ads1115"\ninputs = ["AIN7"]\n', "adapters.i2c[0].inputs", "AIN7"),
        ('[[adapters.i2c]]\nchip = "sht3x"\n[[adapters.i2c]]\nchip = "sht3x"\n', "adapters.i2c[1].address", "already"),
        ('[[adapters.spi]]\nchip = "mcp3008"\ninputs = ["ch8"]\n', "adapters.spi[0].inputs", "ch8"),
        ('[[adapters.i2c]]\nchip = "sht3x"\ninterval_s = 0\n', "adapters.i2c[0].interval_s", "between"),
        ('[[adapters.i2c]]\nchip = "sht3x"\nsensor = "/dev/x"\n', "adapters.i2c[0].sensor", ""),
        ("[adapters.polling]\nfail_threshold = 0\n", "adapters.polling.fail_threshold", "between"),
    ],
)
def test_bad_chip_config_names_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert caught.value.key_path == key
    assert words in str(caught.value)


async def test_emulated_chips_are_read_through_the_real_drivers_into_the_buffer(tmp_path: Path, hub: Hub) -> None:
    cfg = _load(tmp_path, CHIPS)
    adapter = ChipAdapter(cfg.adapters.i2c, cfg.adapters.spi, cfg.adapters.polling, hub)
    await _run(adapter, 0.6)
    readings = await _readings(hub)
    by = {(r.sensor, r.metric): r for r in readings}
    bme_t = by[("i2c-1-0x76", "temperature")]
    assert bme_t.unit == "Cel" and 15 < float(bme_t.value) < 27
    assert by[("i2c-1-0x76", "pressure")].unit == "Pa"
    assert 95_000 < float(by[("i2c-1-0x76", "pressure")].value) < 106_000
    assert 5 < float(by[("i2c-1-0x76", "humidity")].value) < 95
    assert by[("i2c-1-0x45", "humidity")].unit == "%RH"
    assert abs(float(by[("i2c-1-0x48", "ain0")].value) - 1.65) < 0.3
    assert ("i2c-1-0x48", "ain2-ain3") in by
    ch3 = by[("spi0.0-ch3", "voltage")]
    assert ch3.unit == "V" and abs(float(ch3.value) - 1.6) < 0.3  # the emulated input starts at 1.6 V
    assert ("spi0.0-ch4-ch5", "voltage") in by
    # every chip polled several times, and the values move like a real room's
    temps = [float(r.value) for r in readings if (r.sensor, r.metric) == ("i2c-1-0x76", "temperature")]
    assert len(temps) >= 5 and len(set(temps)) > 1
    assert adapter.rejected_total == 0
    assert not [r for r in readings if r.metric == AVAILABLE]


async def test_a_chip_that_stops_answering_goes_unavailable_and_comes_back(tmp_path: Path, hub: Hub) -> None:
    cfg = _load(tmp_path, CHIPS.replace("interval_s = 0.05", "interval_s = 0.02"))
    buses = Buses()
    adapter = ChipAdapter(
        cfg.adapters.i2c, cfg.adapters.spi, PollingSection(fail_threshold=2, backoff_max_s=0.05), hub, buses=buses
    )
    bme = next(m for m in buses.environment.models if isinstance(m, Bme280Emulator))
    assert isinstance(bme, ChipModel)
    task = asyncio.create_task(adapter.run())
    try:
        state = adapter.states["i2c-1-0x76"]
        await _until(lambda: state.readings > 0, "a first good reading")
        bme.faults.nack = True
        await _until(lambda: not state.available, "the chip marked unavailable")
        assert "BME280 at 0x76" in state.last_error and "no acknowledge" in state.last_error
        assert adapter.states["i2c-1-0x45"].available, "the other chips on the bus go on"
        bme.faults.nack = False
        await _until(lambda: state.available, "the chip back")
        readings_back = state.readings
        await _until(lambda: state.readings > readings_back, "a reading after the recovery")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    readings = await _readings(hub)
    flags = [r.value for r in readings if r.sensor == "i2c-1-0x76" and r.metric == AVAILABLE]
    assert flags == [False, True]
    last_flag = max(i for i, r in enumerate(readings) if r.sensor == "i2c-1-0x76" and r.metric == AVAILABLE)
    assert any(r.sensor == "i2c-1-0x76" and r.metric == "temperature" for r in readings[last_flag:])


async def test_an_spi_adc_with_miso_stuck_high_is_reported_not_read_as_full_scale(tmp_path: Path, hub: Hub) -> None:
    cfg = _load(tmp_path, '[[adapters.spi]]\nchip = "mcp3008"\nemulated = true\ninterval_s = 0.02\n')
    buses = Buses()
    adapter = ChipAdapter((), cfg.adapters.spi, PollingSection(fail_threshold=1), hub, buses=buses)
    adc = next(m for m in buses.environment.models if isinstance(m, Mcp3008Emulator))
    adc.miso_stuck_high = True
    await _run(adapter, 0.2)
    state = adapter.states["spi0.0-ch0"]
    assert not state.available and "MCP3008" in state.last_error
    assert not [r for r in await _readings(hub) if r.metric == "voltage"]


async def test_a_bus_that_is_not_enabled_is_reported_with_what_to_do_and_retried(tmp_path: Path, hub: Hub) -> None:
    cfg = _load(tmp_path, '[[adapters.i2c]]\nchip = "bme280"\nbus = 97\ninterval_s = 0.02\n')
    adapter = ChipAdapter(cfg.adapters.i2c, (), PollingSection(fail_threshold=2, backoff_max_s=0.05), hub)
    await _run(adapter, 0.4)
    state = adapter.states["i2c-97-0x76"]
    assert not state.available
    assert "/dev/i2c-97" in state.last_error and "enable I2C" in state.last_error
    assert state.polls >= 3, "an absent bus is retried, not given up on"
