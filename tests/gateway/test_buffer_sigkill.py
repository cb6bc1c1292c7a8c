"""A process killed with SIGKILL mid-stream loses no reading whose append had returned.

This shows durability against a *process* crash only: after a SIGKILL the kernel still writes
back the page cache, so it cannot tell ``synchronous=FULL`` from ``NORMAL``; power-loss durability
rests on FULL's fsync at every commit, which this test does not (and cannot) exercise.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.buffer import DurableBuffer

ROOT = Path(__file__).resolve().parents[2]


async def count_by_sensor(path: Path) -> dict[str, int]:
    """Reopen the buffer and count its readings per sensor."""
    stored: dict[str, int] = {}
    async with DurableBuffer(path, max_age_s=0) as buf:
        while (batch := await buf.take(5000)) is not None:
            for reading in batch.readings:
                stored[reading.sensor] = stored.get(reading.sensor, 0) + 1
    return stored


CHILD = r"""
import asyncio, sys, time
from gateway.buffer import DurableBuffer
from wire.reading import Reading

async def appender(buf, k):
    i = 0
    while True:
        batch = f"{k}-{i}"
        await buf.append([Reading("w" + batch, "m", float(j), time.time(), None) for j in range(50)])
        sys.stdout.write(batch + "\n")
        sys.stdout.flush()
        i += 1

async def main():
    async with DurableBuffer(sys.argv[1], max_age_s=0, commit_interval_ms=1) as buf:
        await asyncio.gather(*(appender(buf, k) for k in range(4)))

asyncio.run(main())
"""


def test_sigkill_loses_no_acknowledged_reading(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    acked: list[str] = []
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        while len(acked) < 400:
            line = proc.stdout.readline()
            assert line, f"child exited early: {proc.stderr.read().decode() if proc.stderr else ''}"
            acked.append(line.decode().strip())
            assert time.monotonic() < deadline, "child too slow"
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    acked.extend(line for line in rest.decode().split("\n") if line.strip())
    stored = asyncio.run(asyncio.wait_for(count_by_sensor(path), 30))
    missing = [b for b in acked if stored.get("w" + b) != 50]
    assert not missing, f"{len(missing)} acknowledged batches lost or partial, e.g. {missing[:5]}"
    assert all(n == 50 for n in stored.values()), "a transaction is all or nothing"


EVENTS_CHILD = r"""
import asyncio, sys, time
from gateway.buffer import DurableBuffer
from wire.events import Event
from wire.reading import Reading

async def readings(buf, k):
    i = 0
    while True:
        await buf.append([Reading(f"r{k}-{i}", "m", float(j), time.time(), None) for j in range(50)])
        i += 1

async def events(buf, k):
    i = 0
    while True:
        batch = f"{k}-{i}"
        await buf.append_events([Event(id=f"{batch}.{j}", kind="annotation", ts=time.time(), key=batch)
                                 for j in range(5)])
        sys.stdout.write(batch + "\n")
        sys.stdout.flush()
        i += 1

async def main():
    async with DurableBuffer(sys.argv[1], max_age_s=0, commit_interval_ms=1) as buf:
        await asyncio.gather(*(readings(buf, k) for k in range(2)), *(events(buf, k) for k in range(3)))

asyncio.run(main())
"""


async def count_events_by_key(path: Path) -> dict[str, int]:
    """Reopen the buffer and count its events per key."""
    stored: dict[str, int] = {}
    async with DurableBuffer(path, max_age_s=0) as buf:
        while (batch := await buf.take_events(1000)) is not None:
            for event in batch.events:
                stored[event.key] = stored.get(event.key, 0) + 1
    return stored


def test_sigkill_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Events appended among readings: every append_events that returned survives, each one whole."""
    path = tmp_path / "b.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", EVENTS_CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    acked: list[str] = []
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        while len(acked) < 300:
            line = proc.stdout.readline()
            assert line, f"child exited early: {proc.stderr.read().decode() if proc.stderr else ''}"
            acked.append(line.decode().strip())
            assert time.monotonic() < deadline, "child too slow"
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    acked.extend(line for line in rest.decode().split("\n") if line.strip())
    stored = asyncio.run(asyncio.wait_for(count_events_by_key(path), 30))
    missing = [b for b in acked if stored.get(b) != 5]
    assert not missing, f"{len(missing)} acknowledged event appends lost or partial, e.g. {missing[:5]}"
    assert all(n == 5 for n in stored.values()), "a transaction is all or nothing"
    readings = asyncio.run(asyncio.wait_for(count_by_sensor(path), 30))
    assert readings and all(n == 50 for n in readings.values()), "the readings beside them are whole too"
