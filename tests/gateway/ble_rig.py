"""What the BLE adapter tests share: advertisements built by ``drivers.ble.emulator``, a flaky
replay backend, and a virtual GATT peripheral behind a real bleak client backend.

Everything goes through bleak's real facades (``BleakScanner(backend=...)``, ``BleakClient(backend=...)``),
so the adapter code under test is the code that runs on a Pi; only the radio is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakDeviceNotFoundError

from drivers.ble import emulator
from drivers.ble.advertisement import Advertisement, parse_ad_structures
from gateway.adapters.ble.adapter import BleAdapter
from gateway.adapters.ble.scanner import RecordedAdvert, ReplayScannerBackend, ReplaySource
from gateway.buffer import DurableBuffer
from gateway.hub import Hub
from wire.reading import Reading

KEY = emulator.DEMO_BIND_KEY
OTHER_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


def _heard(address: str, raw: bytes, rssi: int) -> Advertisement:
    """The emulator's raw AD structures as a radio at ``rssi`` would report them."""
    return parse_ad_structures(raw, address=address, rssi=rssi)


def bthome(
    address: str,
    temperature: float,
    *,
    packet_id: int | None = None,
    humidity: float | None = None,
    key: bytes | None = None,
    counter: int = 0,
    rssi: int = -60,
) -> Advertisement:
    """A BTHome v2 advertisement (temperature, optional humidity), plain or encrypted with ``key``."""
    objects: list[tuple[int, float]] = [(0x02, temperature)]
    if humidity is not None:
        objects.append((0x03, humidity))
    raw = emulator.bthome_advert(objects, packet_id=packet_id, key=key, address=address, counter=counter, name=None)
    return _heard(address, raw, rssi)


def ruuvi_rawv2(address: str, *, temperature: float, humidity: float, pressure_pa: int, sequence: int) -> Advertisement:
    """A Ruuvi RAWv2 (data format 5) advertisement."""
    raw = emulator.ruuvi_rawv2(
        mac=address, temperature=temperature, humidity=humidity, pressure=pressure_pa, sequence=sequence
    )
    return _heard(address, raw, -70)


def pvvx(address: str, *, temperature: float, humidity: float, counter: int) -> Advertisement:
    """A pvvx custom-format advertisement on 0x181A."""
    raw = emulator.pvvx(
        mac=address,
        temperature=temperature,
        humidity=humidity,
        battery=87,
        battery_voltage=2.95,
        counter=counter,
        name="ATC_0A1B2C",
    )
    return _heard(address, raw, -55)


def ibeacon(address: str, uuid: str, major: int, minor: int, *, rssi: int, tx_power: int = -59) -> Advertisement:
    """An iBeacon advertisement (Apple manufacturer data)."""
    return _heard(address, emulator.ibeacon(uuid, major, minor, tx_power), rssi)


def phone(address: str) -> Advertisement:
    """An advertisement no decoder knows (a phone's manufacturer data)."""
    return _heard(address, emulator.advertisement(manufacturer_data={0x0075: b"\x42\x04\x01\x80"}), -80)


def timed(*adverts: Advertisement, step: float = 0.0, start: float = 0.0) -> list[RecordedAdvert]:
    """Records ``step`` seconds apart."""
    return [RecordedAdvert(start + i * step, a) for i, a in enumerate(adverts)]


class FlakyReplayBackend(ReplayScannerBackend):
    """A replay backend whose start fails like BlueZ without a controller, ``fail_starts`` times."""

    fail_starts = 0
    attempts: list[float] = []  # noqa: RUF012 - reset by each test

    async def start(self) -> None:
        type(self).attempts.append(time.monotonic())
        if type(self).fail_starts > 0:
            type(self).fail_starts -= 1
            raise BleakBluetoothNotAvailableError(
                "No Bluetooth adapters found.", BleakBluetoothNotAvailableReason.NO_BLUETOOTH
            )
        await super().start()


@dataclass
class VirtualPeripheral:
    """A GATT server: characteristic UUID -> value; ``hang`` makes reads never answer."""

    values: dict[str, bytes]
    hang: bool = False
    writes: list[tuple[str, bytes, bool]] = field(default_factory=list)


@dataclass
class VirtualRadio:
    """The air between the gateway and its virtual peripherals: who is in range, how slow, how many links."""

    peripherals: dict[str, VirtualPeripheral]
    connect_delay: float = 0.0
    open_now: int = 0
    most_open: int = 0
    connects: int = 0


class VirtualGattClient(BaseBleakClient):
    """A bleak client backend that talks to a :class:`VirtualRadio` (pass ``radio=`` to BleakClient)."""

    def __init__(self, address_or_ble_device: BLEDevice | str, *, radio: VirtualRadio, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, **kwargs)
        self._radio = radio
        self._connected = False

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return 23

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        peripheral = self._radio.peripherals.get(self.address.upper())
        await asyncio.sleep(self._radio.connect_delay)
        if peripheral is None:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        self._radio.connects += 1
        self._radio.open_now += 1
        self._radio.most_open = max(self._radio.most_open, self._radio.open_now)
        services = BleakGATTServiceCollection()
        service = BleakGATTService(None, 1, "0000181a-0000-1000-8000-00805f9b34fb")
        services.add_service(service)
        for handle, uuid in enumerate(peripheral.values, start=2):
            services.add_characteristic(
                BleakGATTCharacteristic(None, handle, uuid, ["read", "write"], lambda: 20, service)
            )
        self.services = services
        self._connected = True

    async def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self._radio.open_now -= 1

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        peripheral = self._radio.peripherals[self.address.upper()]
        if peripheral.hang:
            await asyncio.sleep(3600)
        return bytearray(peripheral.values[characteristic.uuid])

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        raise NotImplementedError

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        peripheral = self._radio.peripherals[self.address.upper()]
        peripheral.writes.append((characteristic.uuid, bytes(data), response))
        peripheral.values[characteristic.uuid] = bytes(data)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise NotImplementedError

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        raise NotImplementedError

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        raise NotImplementedError


async def buffered(hub: Hub) -> list[Reading]:
    """What became durable in the hub's buffer since the last call (taken and deleted, as the uplink would)."""
    buffer = hub._sink
    assert isinstance(buffer, DurableBuffer)
    batch = await buffer.take(100_000)
    if batch is None:
        return []
    await buffer.delete([batch.id])
    return batch.readings


async def run_until(adapter: BleAdapter, done: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run ``adapter`` until ``done()`` (polled every 10 ms) or ``timeout``, then cancel it."""
    task = asyncio.create_task(adapter.run())
    try:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            if task.done():
                task.result()  # the adapter failed: show why
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def replay_kwargs(records: Sequence[RecordedAdvert], **kwargs: Any) -> dict[str, Any]:
    """BleAdapter keyword arguments for a replay of ``records``."""
    return {"scanner_backend": ReplayScannerBackend, "scanner_kwargs": {"replay": ReplaySource(records, **kwargs)}}


async def hub_at(path: Any) -> AsyncIterator[Hub]:
    """A real Hub over a real DurableBuffer at ``path``."""
    from gateway.config import BufferSection

    async with DurableBuffer.from_config(path, BufferSection()) as buffer:
        yield Hub(buffer)
