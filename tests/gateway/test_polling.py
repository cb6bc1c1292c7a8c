"""The wired-device poller: drift-free schedule, unavailability after N failures, backoff, recovery.

Readings go through a real Hub into a real DurableBuffer, so what is checked is what the uplink
would send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from drivers.measurement import Measurement
from gateway.adapters.polling import AVAILABLE, Poller
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection
from gateway.hub import Hub
from wire.reading import Reading


class FakeDevice:
    """A device whose answers the test scripts: ``fail`` makes polls raise, ``delay`` makes them slow."""

    def __init__(self, sensor: str, interval_s: float, *, delay: float = 0.0) -> None:
        self.sensor = sensor
        self.interval_s = interval_s
        self.delay = delay
        self.fail = False
        self.hang = False
        self.calls: list[float] = []

    async def poll(self) -> Sequence[Measurement]:
        self.calls.append(time.monotonic())
        if self.hang:
            await asyncio.sleep(3600)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise OSError(121, "Remote I/O error (no ACK from the chip)")
        return [Measurement("temperature", 20.0 + len(self.calls), "Cel")]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with DurableBuffer.from_config(tmp_path / "buf.sqlite", BufferSection()) as buffer:
        yield Hub(buffer)


async def _buffered(hub: Hub) -> list[Reading]:
    buffer = hub._sink
    assert isinstance(buffer, DurableBuffer)
    batch = await buffer.take(10_000)
    return [] if batch is None else batch.readings


async def _run_for(poller: Poller, seconds: float) -> None:
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_polls_on_a_fixed_grid_even_when_each_poll_takes_time(hub: Hub) -> None:
    dev = FakeDevice("i2c-1-0x76", 0.1, delay=0.03)
    poller = Poller("i2c", hub, [dev])
    await _run_for(poller, 1.05)
    # 0.0, 0.1, ..., 1.0: eleven polls; a drifting loop (sleep(interval) after each 30 ms poll) manages eight
    assert 10 <= len(dev.calls) <= 12, dev.calls
    starts = [t - dev.calls[0] for t in dev.calls]
    for k, t in enumerate(starts):
        assert abs(t - k * 0.1) < 0.05, f"poll {k} started at {t:.3f} s, not on the 0.1 s grid"
    readings = await _buffered(hub)
    assert [r.metric for r in readings] == ["temperature"] * len(dev.calls)
    assert all(r.sensor == "i2c-1-0x76" and r.unit == "Cel" for r in readings)
    assert poller.accepted == len(dev.calls)


async def test_a_poll_that_overruns_skips_the_missed_ticks_instead_of_bunching_up(hub: Hub) -> None:
    dev = FakeDevice("spi0.0-ch0", 0.05, delay=0.12)
    poller = Poller("spi", hub, [dev])
    await _run_for(poller, 0.8)
    gaps = [b - a for a, b in zip(dev.calls, dev.calls[1:], strict=False)]
    assert gaps and min(gaps) > 0.1, f"polls bunched up after an overrun: {gaps}"
    assert poller.states["spi0.0-ch0"].skipped_ticks >= len(gaps)


async def test_devices_are_staggered_across_the_shortest_interval(hub: Hub) -> None:
    devs = [FakeDevice(f"i2c-1-0x{0x40 + i:02x}", 0.2) for i in range(4)]
    poller = Poller("i2c", hub, devs)
    await _run_for(poller, 0.075)
    firsts = sorted(d.calls[0] for d in devs if d.calls)
    assert len(firsts) == 2, "only the first two devices are due in the first 75 ms of a 0.2 s cycle"
    assert firsts[1] - firsts[0] > 0.03


async def test_unavailable_after_n_failures_then_backoff_then_recovery(hub: Hub) -> None:
    dev = FakeDevice("i2c-1-0x44", 0.02)
    dev.fail = True
    poller = Poller("i2c", hub, [dev], fail_threshold=3, backoff_max_s=0.2)
    task = asyncio.create_task(poller.run())
    try:
        await asyncio.sleep(0.6)
        state = poller.states["i2c-1-0x44"]
        assert not state.available
        assert "no ACK" in state.last_error
        failed_polls = len(dev.calls)
        # With backoff (0.04, 0.08, 0.16, 0.2 ...) far fewer than the 30 polls a fixed 20 ms interval would make.
        assert 4 <= failed_polls <= 10, dev.calls
        dev.fail = False
        await asyncio.sleep(0.5)
        assert state.available
        assert state.consecutive_failures == 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    readings = await _buffered(hub)
    availability = [r.value for r in readings if r.metric == AVAILABLE]
    assert availability == [False, True], "one event when it went away and one when it came back"
    first_down = next(i for i, r in enumerate(readings) if r.metric == AVAILABLE)
    assert all(r.metric == AVAILABLE for r in readings[: first_down + 1])  # nothing measured while down
    assert any(r.metric == "temperature" for r in readings[first_down + 1 :])
    assert poller.rejected["poll-failed"] == failed_polls


async def test_a_hanging_device_times_out_and_counts_as_a_failure(hub: Hub) -> None:
    dev = FakeDevice("rtu0-7", 0.05)
    dev.hang = True
    poller = Poller("modbus", hub, [dev], poll_timeout_s=0.05, fail_threshold=2)
    await _run_for(poller, 0.4)
    state = poller.states["rtu0-7"]
    assert not state.available
    assert "no answer within 0.1 s" in state.last_error or "no answer within 0.0 s" in state.last_error


async def test_one_failing_device_does_not_stop_the_others(hub: Hub) -> None:
    bad, good = FakeDevice("i2c-1-0x48", 0.05), FakeDevice("i2c-1-0x76", 0.05)
    bad.fail = True
    poller = Poller("i2c", hub, [bad, good], fail_threshold=1)
    await _run_for(poller, 0.5)
    assert len(good.calls) >= 8
    assert poller.stats()["devices"]["i2c-1-0x76"]["available"] is True  # type: ignore[index]
    assert poller.stats()["devices"]["i2c-1-0x48"]["available"] is False  # type: ignore[index]


def test_two_devices_with_one_sensor_id_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="share a sensor id"):
        Poller("i2c", Hub(None), [FakeDevice("a", 1), FakeDevice("a", 2)])  # type: ignore[arg-type]
