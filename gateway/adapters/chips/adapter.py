"""The I2C/SPI chip adapter: one polled device per chip (per input for an SPI ADC), read in a worker thread.

Drivers are blocking (smbus2 and spidev are ioctls), so each read runs in the default executor
under its bus's lock; the poller (:mod:`gateway.adapters.polling`) schedules them, marks chips
that stop answering unavailable and recovers them. Sensor ids: ``i2c-{bus}-0x{address}`` and
``spi{bus}.{device}-{input}`` (metric ``voltage``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from drivers.errors import BusError
from drivers.measurement import Measurement
from gateway.adapters.chips.buses import Buses
from gateway.adapters.chips.config import I2cChipSection, PollingSection, SpiChipSection
from gateway.adapters.polling import PolledDevice, Poller
from gateway.hub import Hub

Reader = Callable[[], list[Measurement]]


class ChipDevice:
    """A chip (or one ADC input) as the poller sees it: a sensor id, an interval and a blocking read."""

    def __init__(
        self, sensor: str, interval_s: float, read: Reader, lock: threading.Lock, before: Callable[[], None]
    ) -> None:
        self.sensor = sensor
        self.interval_s = interval_s
        self._read = read
        self._lock = lock
        self._before = before

    def _locked_read(self) -> list[Measurement]:
        with self._lock:
            self._before()
            return self._read()

    async def poll(self) -> Sequence[Measurement]:
        """Read the chip in a worker thread (the event loop never blocks on the bus)."""
        return await asyncio.to_thread(self._locked_read)


def _i2c_reader(chip: I2cChipSection, buses: Buses) -> Reader:
    """Build the driver on first use (opening the bus may fail and is retried by the poller)."""
    driver: list[Callable[[], list[Measurement]]] = []

    def read() -> list[Measurement]:
        if not driver:
            driver.append(_i2c_driver(chip, buses))
        try:
            return driver[0]()
        except BusError:
            if not chip.emulated:  # a bus that vanished (USB adapter unplugged) is reopened next time
                driver.clear()
                buses.forget_i2c(chip)
            raise

    return read


def _i2c_driver(chip: I2cChipSection, buses: Buses) -> Reader:
    bus = buses.i2c(chip)
    address = chip.chip_address
    if chip.chip == "bme280":
        from drivers.i2c.bme280 import Bme280, Bme280Config, Mode, Oversampling

        osrs = Oversampling[f"X{chip.oversampling}"]
        mode = Mode.NORMAL if chip.mode == "normal" else Mode.FORCED
        cfg = Bme280Config(mode=mode, temperature=osrs, pressure=osrs, humidity=osrs)
        return Bme280(bus, address, config=cfg).read
    if chip.chip == "sht3x":
        from drivers.i2c.sht3x import Sht3x

        return Sht3x(bus, address).read
    from drivers.i2c.ads1115 import Ads1115

    return Ads1115(bus, address, inputs=chip.inputs, full_scale=chip.full_scale_v).read


def _spi_devices(chip: SpiChipSection, buses: Buses) -> list[ChipDevice]:
    from drivers.spi.mcp3008 import RESOLUTION, Mcp3008

    adc: list[Mcp3008] = []
    if chip.emulated:
        buses.spi(chip)  # the emulated chip exists from the start, so tests and the demo can reach it
    lock = buses.lock("spi", chip.emulated, chip.bus, chip.device)
    before = buses.environment.step if chip.emulated else _nothing

    def reader(inp: str) -> Reader:
        def read() -> list[Measurement]:
            if not adc:
                adc.append(
                    Mcp3008(
                        buses.spi(chip),
                        vref=chip.vref,
                        inputs=chip.inputs,
                        speed_hz=chip.speed_hz,
                        bus=chip.bus,
                        device=chip.device,
                    )
                )
            code = adc[0].read_code(inp)
            return [Measurement("voltage", round(code * chip.vref / RESOLUTION, 4), "V")]

        return read

    return [ChipDevice(chip.sensor_id(inp), chip.interval_s, reader(inp), lock, before) for inp in chip.inputs]


def _nothing() -> None:
    return None


def build_devices(
    i2c: Sequence[I2cChipSection], spi: Sequence[SpiChipSection], buses: Buses | None = None
) -> list[PolledDevice]:
    """The polled devices for the configured chips."""
    buses = buses if buses is not None else Buses()
    for chip in i2c:
        if chip.emulated:
            buses.add_emulated_i2c(chip)
    devices: list[PolledDevice] = []
    for chip in i2c:
        lock = buses.lock("i2c", chip.emulated, chip.bus)
        before = buses.environment.step if chip.emulated else _nothing
        devices.append(ChipDevice(chip.sensor_id, chip.interval_s, _i2c_reader(chip, buses), lock, before))
    for spi_chip in spi:
        devices.extend(_spi_devices(spi_chip, buses))
    return devices


class ChipAdapter(Poller):
    """Polls the configured I2C and SPI chips."""

    def __init__(
        self,
        i2c: Sequence[I2cChipSection],
        spi: Sequence[SpiChipSection],
        polling: PollingSection,
        hub: Hub,
        *,
        buses: Buses | None = None,
    ) -> None:
        super().__init__(
            "chips",
            hub,
            build_devices(i2c, spi, buses),
            fail_threshold=polling.fail_threshold,
            backoff_max_s=polling.backoff_max_s,
        )
