"""GATT connections within a limit and timeouts: characteristics read on a schedule, and writes to actuate.

Every connection goes through one semaphore of ``max_connections`` (a controller manages only a few
links, and connecting stops some controllers from scanning); opening it may take
``connect_timeout_s``, each read or write ``gatt_timeout_s``, and disconnecting is bounded too.
bleak's and the BLE stack's exceptions become :class:`GattFailed` / :class:`GattTimeout` here.

Reads run on a drift-free schedule per characteristic (``start + k * interval``); the due reads of
one device share one connection; devices are staggered. A device whose reads fail is logged once
(WARNING) and again on recovery (INFO); it is tried again at its next tick, never in a tight loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError

from drivers.gattvalue import GattValueError, decode_value
from gateway.adapters.ble.config import BleDeviceSection, BleSection, GattPollSection, normalize_uuid
from gateway.adapters.ble.errors import GattFailed, GattTimeout
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)
DISCONNECT_TIMEOUT_S = 5.0


@dataclass(slots=True)
class GattStats:
    """Connection counters (reported in health)."""

    connects: int = 0
    connect_failures: int = 0
    timeouts: int = 0
    reads: int = 0
    read_failures: int = 0
    writes: int = 0
    write_failures: int = 0
    open_now: int = 0
    most_open: int = 0
    waiting: int = 0

    def as_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "timeouts": self.timeouts,
            "reads": self.reads,
            "read_failures": self.read_failures,
            "writes": self.writes,
            "write_failures": self.write_failures,
            "open_now": self.open_now,
            "most_open": self.most_open,
        }


class GattLink:
    """Opens GATT connections through bleak's BleakClient, at most ``max_connections`` at once."""

    def __init__(
        self,
        config: BleSection,
        *,
        device_lookup: Callable[[str], BLEDevice | None] = lambda _address: None,
        backend: type[BaseBleakClient] | None = None,
        backend_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self._lookup = device_lookup
        self._backend = backend
        self._backend_kwargs = dict(backend_kwargs or {})
        self._slots = asyncio.Semaphore(config.max_connections)
        self.stats = GattStats()

    @contextlib.asynccontextmanager
    async def connect(self, address: str) -> AsyncIterator[BleakClient]:
        """An open connection to ``address`` (waits for a free slot); GattFailed or GattTimeout if it cannot open."""
        self.stats.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.stats.waiting -= 1
        try:
            # The BLEDevice the scanner saw carries BlueZ's object path; an address alone makes bleak scan again.
            target: BLEDevice | str = self._lookup(address) or address
            client = BleakClient(
                target,
                timeout=self.config.connect_timeout_s,
                bluez={"adapter": self.config.adapter},
                backend=self._backend,
                **self._backend_kwargs,
            )
            try:
                async with asyncio.timeout(self.config.connect_timeout_s):
                    await client.connect()
            except TimeoutError as exc:
                self.stats.connect_failures += 1
                self.stats.timeouts += 1
                raise GattTimeout(address, f"no connection within {self.config.connect_timeout_s:g} s") from exc
            except (BleakError, OSError, EOFError) as exc:
                self.stats.connect_failures += 1
                raise GattFailed(address, f"cannot connect: {exc or type(exc).__name__}") from exc
            self.stats.connects += 1
            self.stats.open_now += 1
            self.stats.most_open = max(self.stats.most_open, self.stats.open_now)
            try:
                yield client
            finally:
                self.stats.open_now -= 1
                try:
                    async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                        await client.disconnect()
                except (TimeoutError, BleakError, OSError, EOFError) as exc:
                    _LOGGER.debug("Disconnecting from %s failed: %s", address, exc)
        finally:
            self._slots.release()

    async def read(self, client: BleakClient, address: str, characteristic: str) -> bytes:
        """Read one characteristic on an open connection, within ``gatt_timeout_s``."""
        self.stats.reads += 1
        try:
            async with asyncio.timeout(self.config.gatt_timeout_s):
                return bytes(await client.read_gatt_char(characteristic))
        except TimeoutError as exc:
            self.stats.read_failures += 1
            self.stats.timeouts += 1
            raise GattTimeout(address, f"reading {characteristic} took over {self.config.gatt_timeout_s:g} s") from exc
        except (BleakError, OSError, EOFError) as exc:
            self.stats.read_failures += 1
            raise GattFailed(address, f"reading {characteristic}: {exc or type(exc).__name__}") from exc

    async def write(self, address: str, characteristic: str, data: bytes, *, response: bool = True) -> None:
        """Connect to ``address`` and write ``data`` to ``characteristic`` (to actuate); GattFailed / GattTimeout."""
        uuid = normalize_uuid(characteristic)
        async with self.connect(address) as client:
            self.stats.writes += 1
            try:
                async with asyncio.timeout(self.config.gatt_timeout_s):
                    await client.write_gatt_char(uuid, data, response=response)
            except TimeoutError as exc:
                self.stats.write_failures += 1
                self.stats.timeouts += 1
                raise GattTimeout(address, f"writing {uuid} took over {self.config.gatt_timeout_s:g} s") from exc
            except (BleakError, OSError, EOFError) as exc:
                self.stats.write_failures += 1
                raise GattFailed(address, f"writing {uuid}: {exc or type(exc).__name__}") from exc


@dataclass(slots=True)
class GattDeviceState:
    """What the GATT scheduler knows about one device (reported in health)."""

    address: str
    rounds: int = 0
    failures: int = 0
    skipped_ticks: int = 0
    readings: int = 0
    failing: bool = False
    last_error: str = ""
    last_success: float | None = None
    due: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "rounds": self.rounds,
            "failures": self.failures,
            "skipped_ticks": self.skipped_ticks,
            "readings": self.readings,
            "failing": self.failing,
            "last_error": self.last_error,
            "last_success": self.last_success,
        }


Publish = Callable[[str, Sequence[Reading]], Awaitable[None]]
"""How the scheduler hands a device's readings back: ``publish(address, readings)``."""


class GattScheduler:
    """Reads every configured characteristic on its interval, through a :class:`GattLink`."""

    def __init__(
        self,
        link: GattLink,
        devices: Sequence[BleDeviceSection],
        sensor_of: Callable[[str], str],
        publish: Publish,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.devices = [d for d in devices if d.gatt]
        self._sensor_of = sensor_of
        self._publish = publish
        self._clock = clock
        self._wall = wall_clock
        self.states = {d.address: GattDeviceState(d.address) for d in self.devices}

    async def run(self) -> None:
        """One task per device with GATT reads, until cancelled."""
        if not self.devices:
            await asyncio.Event().wait()
        shortest = min(p.interval_s for d in self.devices for p in d.gatt)
        spread = min(shortest, 10.0)
        start = self._clock()
        async with asyncio.TaskGroup() as tg:
            for i, device in enumerate(self.devices):
                first = start + spread * i / len(self.devices)
                tg.create_task(self._run_device(device, first), name=f"ble gatt {device.address}")

    async def _run_device(self, device: BleDeviceSection, first: float) -> None:
        state = self.states[device.address]
        state.due = {p.metric: first for p in device.gatt}
        while True:
            delay = min(state.due.values()) - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            now = self._clock()
            due = [p for p in device.gatt if state.due[p.metric] <= now]
            await self.poll_once(device, due)
            now = self._clock()
            for p in due:  # keep each characteristic on its grid; an overrun skips the ticks it missed
                nxt = state.due[p.metric] + p.interval_s
                if nxt <= now:
                    missed = int((now - nxt) // p.interval_s) + 1
                    state.skipped_ticks += missed
                    nxt += missed * p.interval_s
                state.due[p.metric] = nxt

    async def poll_once(self, device: BleDeviceSection, polls: Sequence[GattPollSection]) -> bool:
        """Read ``polls`` of ``device`` over one connection and publish them; False if the device failed."""
        state = self.states[device.address]
        state.rounds += 1
        ts = self._wall()
        sensor = self._sensor_of(device.address)
        readings: list[Reading] = []
        problems: list[str] = []
        try:
            async with self.link.connect(device.address) as client:
                for p in polls:
                    try:
                        raw = await self.link.read(client, device.address, p.characteristic)
                        value = decode_value(raw, p.format, scale=p.scale, offset=p.offset)
                    except (GattFailed, GattTimeout, GattValueError) as exc:
                        problems.append(str(exc))
                        continue
                    readings.append(Reading(sensor, p.metric, value, ts, p.unit or None))
        except (GattFailed, GattTimeout) as exc:
            problems.append(str(exc))
        if readings:
            await self._publish(device.address, readings)
            state.readings += len(readings)
        if problems and not readings:
            state.failures += 1
            state.last_error = problems[0]
            if not state.failing:
                state.failing = True
                _LOGGER.warning(
                    "GATT reads from %s failed: %s; trying again at each interval (is it in range and powered?)",
                    sensor,
                    problems[0],
                )
            else:
                _LOGGER.debug("GATT reads from %s failed again: %s", sensor, problems[0])
            return False
        if problems:
            _LOGGER.debug("Some GATT reads from %s failed: %s", sensor, "; ".join(problems))
        if state.failing:
            state.failing = False
            _LOGGER.info("GATT reads from %s work again", sensor)
        state.last_success = ts
        return True
