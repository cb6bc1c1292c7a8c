"""A Zigbee network in memory for the tests: the real adapter, zigpy's real stack, a real hub and buffer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from drivers import zcl
from gateway.adapters.zigbee.adapter import ZigbeeAdapter
from gateway.adapters.zigbee.config import ZigbeeSection
from gateway.adapters.zigbee.emulated import EmulatedDevice, EmulatedEndpoint
from gateway.adapters.zigbee.radio_memory import MemoryRadio
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection
from gateway.hub import Hub
from gateway.registry import Registry
from wire.events import Event
from wire.reading import Reading

ALL_CLUSTERS = [0x0000, *zcl.supported_clusters()]


def section(**kw: Any) -> ZigbeeSection:
    """A memory-radio section (no zigpy database unless asked: no aiosqlite thread per test)."""
    return ZigbeeSection(**{"enabled": True, "radio": "memory", "database": False, **kw})


def everything(ieee: str = "00:12:4b:00:1c:a1:b2:c3", nwk: int = 0x2B01, **attrs: Any) -> EmulatedDevice:
    """One device with every cluster Roost reads on endpoint 1 (and a zone type: contact switch)."""
    attributes = {(1, zcl.IAS_ZONE, 0x0001): 0x0015, (1, zcl.IAS_ZONE, 0x0002): 0, (1, zcl.IAS_ZONE, 0): 0}
    attributes.update(attrs)
    return EmulatedDevice(
        ieee, nwk, [EmulatedEndpoint(1, 0x0302, ALL_CLUSTERS)], model="RIG-ALL", manufacturer="Roost Rig",
        attributes=attributes, end_device=False,
    )  # fmt: skip


class Rig:
    """The running adapter and what reached the buffer."""

    def __init__(self, adapter: ZigbeeAdapter, buffer: DurableBuffer, radios: list[MemoryRadio]) -> None:
        self.adapter = adapter
        self.buffer = buffer
        self.radios = radios
        self.readings: list[Reading] = []
        self.events: list[Event] = []

    @property
    def radio(self) -> MemoryRadio:
        return self.radios[-1]

    async def drain(self) -> None:
        """Move what became durable into :attr:`readings` and :attr:`events` (as the uplink would)."""
        batch = await self.buffer.take(100_000)
        if batch is not None:
            self.readings.extend(batch.readings)
            await self.buffer.delete([batch.id])
        ev = await self.buffer.take_events(10_000)
        if ev is not None:
            self.events.extend(ev.events)
            await self.buffer.delete([ev.id])

    async def until(self, done: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while True:
            await self.drain()
            if done():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    def values(self, sensor: str) -> dict[str, tuple[Any, str | None]]:
        """The last value and unit of each metric of ``sensor``."""
        return {r.metric: (r.value, r.unit) for r in self.readings if r.sensor == sensor}

    async def pair(self, device: EmulatedDevice, **labels: str) -> None:
        """Open a window, join ``device`` and wait until it is interviewed and configured."""
        await self.adapter.permit(60, **labels)
        assert self.radio.join(device)
        ieee = str(device.ieee)
        await self.until(
            lambda: (self.adapter.registry.get("zigbee", ieee) or {}).get("extra", {}).get("configured") is not None,
            what=f"{ieee} interviewed and configured",
        )


@contextlib.asynccontextmanager
async def running(
    tmp: Path, *, devices: Iterable[EmulatedDevice] = (), state: str = "state", **kw: Any
) -> AsyncIterator[Rig]:
    """Run a ZigbeeAdapter on a MemoryRadio until the block ends."""
    clock = kw.pop("clock", time.monotonic)
    wait_s = kw.pop("wait_s", 10.0)
    radios: list[MemoryRadio] = []
    devs = list(devices)

    def factory(config: dict[str, Any]) -> MemoryRadio:
        radio = MemoryRadio(config, devices=devs)
        radios.append(radio)
        return radio

    state_dir = tmp / state
    state_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry.in_state_dir(state_dir)
    async with DurableBuffer.from_config(tmp / f"{state}-buffer.sqlite", BufferSection()) as buffer:
        hub = Hub(buffer)
        adapter = ZigbeeAdapter(section(**kw), hub, state_dir=state_dir, registry=registry, app_factory=factory,
                                clock=clock)  # fmt: skip
        task = asyncio.create_task(adapter.run())
        try:
            await asyncio.wait_for(adapter.wait_running(), wait_s)
            yield Rig(adapter, buffer, radios)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            registry.close()
