"""DurableBuffer: round trip, group commit, bounds and policies, counters across restarts, bad paths."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.buffer import ROW_OVERHEAD, DurableBuffer
from gateway.config import BufferSection
from gateway.errors import BufferError_, BufferFull
from wire.reading import Reading

NOW = time.time()


def r(i: int, sensor: str = "s1", metric: str = "t", ts: float | None = None) -> Reading:
    """A numeric reading whose size estimate is ROW_OVERHEAD + len(sensor) + len(metric) + 8."""
    return Reading(sensor, metric, float(i), round(NOW + i / 1000, 6) if ts is None else ts)


SIZE = ROW_OVERHEAD + 2 + 1 + 8  # size estimate of r(i)


async def drain(buf: DurableBuffer) -> list[Reading]:
    """Take every pending reading (and delete it)."""
    out: list[Reading] = []
    while (batch := await buf.take(1000)) is not None:
        out.extend(batch.readings)
        await buf.delete([batch.id])
    return out


async def test_round_trip_all_value_kinds(tmp_path: Path) -> None:
    readings = [
        Reading("aa:bb:cc:dd:ee:ff", "temperature", 21.375, 1_700_000_000.123456, "Cel"),
        Reading("node-1", "count", 42.0, 1_700_000_000.000001, None),
        Reading("node-1", "door.open", True, 1_700_000_001.5, None),
        Reading("node-1", "door.locked", False, 1_700_000_001.999999, None),
        Reading("node-1", "state", "heating", 1_700_000_002.0, None),
        Reading("node-1", "empty", "", 1_700_000_002.25, "x"),
        Reading("node-2", "neg", -1e-9, 1_700_000_003.000002, "V"),
    ]
    async with DurableBuffer(tmp_path / "b.sqlite", max_age_s=0) as buf:
        await buf.append(readings)
        assert buf.stats()["buffered"] == len(readings)
        batch = await buf.take(100)
        assert batch is not None
        assert batch.readings == readings
        assert [type(x.value) for x in batch.readings] == [type(x.value) for x in readings]
        assert [x.ts_us for x in batch.readings] == [x.ts_us for x in readings]
        assert await buf.take(100) is None, "in-flight readings are not taken twice"
        assert await buf.delete([batch.id]) == len(readings)
        st = buf.stats()
        assert st["buffered"] == 0 and st["bytes"] == 0 and st["inflight"] == 0
        assert st["received"] == len(readings)


async def test_take_is_oldest_first_and_skips_in_flight(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite") as buf:
        await buf.append([r(i) for i in range(25)])
        b1 = await buf.take(10)
        b2 = await buf.take(10)
        assert b1 is not None and b2 is not None
        assert [x.value for x in b1.readings] == [float(i) for i in range(10)]
        assert [x.value for x in b2.readings] == [float(i) for i in range(10, 20)]
        assert b1.id != b2.id
        assert buf.pending == 5
        # A released batch comes back first, under a new id.
        buf.release([b1.id])
        b3 = await buf.take(10)
        assert b3 is not None and b3.id not in (b1.id, b2.id)
        assert [x.value for x in b3.readings] == [float(i) for i in range(10)]
        await buf.delete([b2.id])
        assert buf.stats()["buffered"] == 15
        assert await buf.delete(["no-such-batch"]) == 0
        rest = await drain(buf)
        assert [x.value for x in rest] == [float(i) for i in range(20, 25)]


async def test_batch_ids_unique_across_restarts_and_topic_safe(tmp_path: Path) -> None:
    ids: set[str] = set()
    for _ in range(3):
        async with DurableBuffer(tmp_path / "b.sqlite") as buf:
            await buf.append([r(1)])
            batch = await buf.take(10)
            assert batch is not None
            assert not set(batch.id) & set("/+#") and batch.id.isascii()
            ids.add(batch.id)
    assert len(ids) == 3, "every restart sends pending rows under new ids"


async def test_group_commit_resolves_many_concurrent_appends_in_few_transactions(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite", commit_interval_ms=20) as buf:
        n = 200
        await asyncio.wait_for(asyncio.gather(*(buf.append([r(i), r(i + 1000)]) for i in range(n))), 10)
        st = buf.stats()
        assert st["buffered"] == 2 * n
        assert st["commits"] <= 3, f"{n} appends took {st['commits']} transactions"


async def test_wait_wakes_when_data_arrives(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite") as buf:
        assert not await buf.wait(1, timeout=0.05)
        waiter = asyncio.create_task(buf.wait(3, timeout=5))
        await asyncio.sleep(0.01)
        await buf.append([r(1)])
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await buf.append([r(2), r(3)])
        assert await asyncio.wait_for(waiter, 5)


async def test_drop_oldest_makes_room_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.buffer")
    async with DurableBuffer(tmp_path / "b.sqlite", max_bytes=10 * SIZE) as buf:
        for i in range(0, 25, 5):
            await buf.append([r(j) for j in range(i, i + 5)])
        st = buf.stats()
        assert st["buffered"] == 10 and st["bytes"] == 10 * SIZE
        assert st["dropped_full"] == 15 and st["dropped"] == 15
        assert [x.value for x in await drain(buf)] == [float(i) for i in range(15, 25)], "oldest gone"
        warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
        assert len(warnings) == 1, "one warning per incident, not per drop"
        await buf.append([r(100)])
        assert any(rec.levelno == logging.INFO and "room again" in rec.getMessage() for rec in caplog.records)


async def test_drop_oldest_when_one_append_is_larger_than_the_buffer(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite", max_bytes=4 * SIZE) as buf:
        await buf.append([r(i) for i in range(10)])
        assert [x.value for x in await drain(buf)] == [6.0, 7.0, 8.0, 9.0]
        assert buf.stats()["dropped_full"] == 6


async def test_drop_newest_keeps_old_readings_and_counts(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite", max_bytes=10 * SIZE, policy="drop-newest") as buf:
        await buf.append([r(i) for i in range(8)])
        await buf.append([r(i) for i in range(8, 16)])  # returns normally: 2 stored, 6 dropped
        st = buf.stats()
        assert st["buffered"] == 10 and st["dropped_full"] == 6
        assert [x.value for x in await drain(buf)] == [float(i) for i in range(10)]


async def test_refuse_raises_buffer_full_and_counts(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite", max_bytes=10 * SIZE, policy="refuse") as buf:
        await buf.append([r(i) for i in range(8)])
        with pytest.raises(BufferFull):
            await buf.append([r(i) for i in range(8, 11)])
        await buf.append([r(8), r(9)])  # still fits
        st = buf.stats()
        assert st["buffered"] == 10 and st["dropped_full"] == 3
        await drain(buf)
        # Refused and accepted appends sharing one commit each get their own answer.
        results = await asyncio.gather(
            buf.append([r(i) for i in range(20, 31)]), buf.append([r(40)]), return_exceptions=True
        )
        assert isinstance(results[0], BufferFull) and results[1] is None
        assert [x.value for x in await drain(buf)] == [40.0]
        assert buf.stats()["dropped_full"] == 3 + 11


async def test_age_bound_on_append_and_by_sweep(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite", max_age_s=1.0) as buf:
        now = time.time()
        await buf.append([r(1, ts=now - 5), r(2, ts=now - 0.7), r(3, ts=now + 60)])
        st = buf.stats()
        assert st["buffered"] == 2 and st["dropped_age"] == 1
        await asyncio.sleep(0.4)
        assert await buf.expire() == 1
        st = buf.stats()
        assert st["buffered"] == 1 and st["dropped_age"] == 2 and st["dropped"] == 2
        assert [x.value for x in await drain(buf)] == [3.0]


async def test_counters_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    async with DurableBuffer(path, max_bytes=4 * SIZE, max_age_s=10) as buf:
        # Fresh times: the module's NOW may be more than max_age_s old by the time this test runs.
        fresh = time.time()
        await buf.append([r(i, ts=round(fresh + i / 1000, 6)) for i in range(6)] + [r(9, ts=fresh - 100)])
    async with DurableBuffer(path, max_bytes=4 * SIZE, max_age_s=10) as buf:
        st = buf.stats()
        assert st["dropped_full"] == 2 and st["dropped_age"] == 1 and st["buffered"] == 4
        assert st["bytes"] == 4 * SIZE
        assert st["received"] == 0, "received counts since this start"
        assert [x.value for x in await drain(buf)] == [2.0, 3.0, 4.0, 5.0]


async def test_close_commits_what_is_queued_and_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    buf = DurableBuffer(path, commit_interval_ms=200)
    await buf.open()
    pending = asyncio.create_task(buf.append([r(1), r(2)]))
    await asyncio.sleep(0)
    await buf.close()
    await asyncio.wait_for(pending, 5)
    with pytest.raises(BufferError_, match="closed"):
        await buf.append([r(3)])
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_from_config(tmp_path: Path) -> None:
    section = BufferSection(max_bytes=8192, max_age_s=0, policy="refuse", commit_interval_ms=0)
    async with DurableBuffer.from_config(tmp_path / "x" / "b.sqlite", section) as buf:
        assert buf.policy == "refuse" and buf.max_bytes == 8192
        await buf.append([r(1)])
        assert buf.stats()["buffered"] == 1


@pytest.mark.parametrize("kind", ["parent-is-file", "path-is-dir", "not-a-database"])
async def test_bad_path_gives_a_clear_error(tmp_path: Path, kind: str) -> None:
    if kind == "parent-is-file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "b.sqlite"
    elif kind == "path-is-dir":
        path = tmp_path / "dir"
        path.mkdir()
    else:
        path = tmp_path / "junk.sqlite"
        path.write_bytes(b"this is not sqlite" * 100)
    buf = DurableBuffer(path)
    with pytest.raises(BufferError_, match="buffer database") as info:
        await buf.open()
    assert str(path) in str(info.value)
    with pytest.raises(BufferError_):
        await buf.append([r(1)])
