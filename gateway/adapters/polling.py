"""One scheduler for polled (wired) devices: I2C and SPI chips, Modbus units.

Each device is polled on its own interval against an absolute schedule (``start + k * interval``),
so a slow poll does not make the next one drift; a poll that overruns its slot skips the missed
ticks (counted) instead of bunching up. Devices are staggered across the shortest interval so a
bus does not see them all at once.

A device that fails ``fail_threshold`` times in a row is marked unavailable: the poller logs one
WARNING, publishes ``{sensor}:available = false`` (durable and sent upstream like any reading)
and retries with capped exponential backoff and jitter. The first good poll after that publishes
``available = true`` with the readings and logs the recovery once. Single failures below the
threshold are logged at DEBUG only (like Home Assistant's update coordinator, the transitions
are what a technician wants in the journal).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from drivers.measurement import Measurement
from gateway.adapters.base import Adapter
from gateway.errors import BufferFull
from gateway.hub import Hub
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

AVAILABLE = "available"
"""The metric a poller publishes when a device goes unavailable (false) or comes back (true)."""


class PolledDevice(Protocol):
    """A device the poller reads on an interval."""

    @property
    def sensor(self) -> str:
        """The sensor id its readings carry (``i2c-1-0x76``, ``spi0.0-ch3``, ``rtu0-1``)."""

    @property
    def interval_s(self) -> float:
        """Seconds between polls."""

    async def poll(self) -> Sequence[Measurement]:
        """Read the device once; raise on failure (partial results are the device's own choice)."""


@dataclass(slots=True)
class DeviceState:
    """What the poller knows about one device (reported in health)."""

    sensor: str
    interval_s: float
    available: bool = True
    polls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    skipped_ticks: int = 0
    readings: int = 0
    last_error: str = ""
    last_success: float | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for health reports and the local page."""
        return {
            "available": self.available,
            "polls": self.polls,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "skipped_ticks": self.skipped_ticks,
            "readings": self.readings,
            "last_error": self.last_error,
            "last_success": self.last_success,
        }


class Poller(Adapter):
    """Polls its devices and hands their readings to the hub; one task per device, one schedule each."""

    def __init__(
        self,
        name: str,
        hub: Hub,
        devices: Sequence[PolledDevice],
        *,
        fail_threshold: int = 3,
        backoff_max_s: float = 300.0,
        poll_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if fail_threshold < 1:
            raise ValueError("fail_threshold must be at least 1")
        sensors = [d.sensor for d in devices]
        if len(set(sensors)) != len(sensors):
            raise ValueError(f"two polled devices share a sensor id: {sorted(sensors)}")
        self.name = name
        self._hub = hub
        self._devices = list(devices)
        self._fail_threshold = fail_threshold
        self._backoff_max_s = backoff_max_s
        self._poll_timeout_s = poll_timeout_s
        self._clock = clock
        self._wall = wall_clock
        self.states = {d.sensor: DeviceState(d.sensor, d.interval_s) for d in self._devices}

    async def run(self) -> None:
        """Poll every device until cancelled."""
        if not self._devices:
            await asyncio.Event().wait()
        shortest = min(d.interval_s for d in self._devices)
        start = self._clock()
        async with asyncio.TaskGroup() as tg:
            for i, device in enumerate(self._devices):
                offset = shortest * i / len(self._devices)
                tg.create_task(self._run_device(device, start + offset), name=f"poll {device.sensor}")

    async def _run_device(self, device: PolledDevice, first: float) -> None:
        state = self.states[device.sensor]
        interval = device.interval_s
        due = first
        retry_delay = interval
        while True:
            delay = due - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            ok = await self.poll_once(device)
            now = self._clock()
            if ok or state.available:
                retry_delay = interval
                due += interval
                if due <= now:  # the poll overran its slot: skip the ticks it missed, keep the grid
                    missed = int((now - due) // interval) + 1
                    state.skipped_ticks += missed
                    due += missed * interval
            else:  # unavailable: back off (capped, with jitter) instead of hammering a dead bus
                retry_delay = min(retry_delay * 2, max(self._backoff_max_s, interval))
                due = now + retry_delay * random.uniform(0.8, 1.0)  # jitter, not crypto

    async def poll_once(self, device: PolledDevice) -> bool:
        """Poll ``device`` once, publish what it read, track its availability; True on success."""
        state = self.states[device.sensor]
        state.polls += 1
        ts = self._wall()
        timeout = self._poll_timeout_s if self._poll_timeout_s is not None else max(5.0, device.interval_s)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as
            # the poll finishes, and the poller then never stops (seen as a hung shutdown under load).
            async with asyncio.timeout(timeout):
                measurements = await device.poll()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a device's failure is counted and retried, never the poller's end
            problem = f"no answer within {timeout:.1f} s" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            await self._failed(state, problem)
            return False
        readings = [Reading(device.sensor, m.metric, m.value, ts, m.unit) for m in measurements]
        if not state.available:
            readings.append(Reading(device.sensor, AVAILABLE, True, ts))
        if not await self._publish(readings):
            return True  # the device answered; the buffer refused (counted), availability is unchanged
        if not state.available:
            _LOGGER.info("%s is answering again after %d failed polls", device.sensor, state.consecutive_failures)
        state.available = True
        state.consecutive_failures = 0
        state.last_success = ts
        state.readings += len(measurements)
        self.accepted += len(measurements)
        return True

    async def _failed(self, state: DeviceState, problem: str) -> None:
        state.failures += 1
        state.consecutive_failures += 1
        state.last_error = problem
        self.rejected["poll-failed"] += 1
        _LOGGER.debug("Polling %s failed (%d in a row): %s", state.sensor, state.consecutive_failures, problem)
        if state.available and state.consecutive_failures >= self._fail_threshold:
            _LOGGER.warning(
                "%s is unavailable: %d polls in a row failed, the last with: %s. Retrying with backoff; "
                "check its wiring, address and power",
                state.sensor,
                state.consecutive_failures,
                problem,
            )
            if await self._publish([Reading(state.sensor, AVAILABLE, False, self._wall())]):
                state.available = False

    async def _publish(self, readings: list[Reading]) -> bool:
        if not readings:
            return True
        try:
            await self._hub.publish(readings)
        except BufferFull:
            self.rejected["buffer-full"] += len(readings)
            return False
        return True

    def stats(self) -> dict[str, object]:
        """Counters plus each device's availability."""
        out = super().stats()
        out["devices"] = {sensor: s.as_dict() for sensor, s in self.states.items()}
        return out
