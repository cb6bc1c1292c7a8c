"""DurableBuffer's event queue: durable on return, bounds and policies, take/delete/release, reopen.

"Durable" here means committed (visible to another connection of the same file) when ``append_events``
returns; that the commit is fsynced rests on ``synchronous=FULL``, which the test checks is set.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from gateway.buffer import DurableBuffer
from gateway.buffer_events import EventBatch
from gateway.errors import BufferFull
from gateway.hub import Hub
from wire.errors import PayloadError
from wire.events import Event
from wire.reading import Reading


def ev(i: int, **kw: object) -> Event:
    """An annotation numbered ``i`` (its id and message say which)."""
    fields: dict[str, object] = {"id": f"e{i:05d}", "kind": "annotation", "ts": 1_700_000_000.0 + i, "key": "k"}
    return Event(**(fields | kw))  # type: ignore[arg-type]


def alert(i: int, state: str = "raised") -> Event:
    """An alert event of key ``a/s1``."""
    return Event(
        id=f"a{i}",
        kind="alert",
        ts=1_700_000_000.0 + i,
        key="a/s1",
        rule="a",
        state=state,  # type: ignore[arg-type]
        severity="warning",
        message=f"alert {i}",
        sensor="s1",
        metric="t",
        value=True,
        data={"n": i, "list": [1, "x"]},
    )


def rows_on_disk(path: Path) -> int:
    """Events committed in the database, seen through a connection of its own."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


async def drain(buf: DurableBuffer, n: int = 1000) -> list[Event]:
    """Take every pending event (and delete it)."""
    out: list[Event] = []
    for _ in range(10_000):
        batch = await buf.take_events(n)
        if batch is None:
            return out
        out.extend(batch.events)
        await buf.delete([batch.id])
    raise AssertionError("the queue never emptied")


async def test_durable_on_return_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    async with DurableBuffer(path, commit_interval_ms=300) as buf:
        await buf.append_events([ev(0)])  # commits at once; the next commit waits for the interval
        pending = asyncio.create_task(buf.append_events([alert(1), ev(2)]))
        await asyncio.sleep(0.05)
        assert not pending.done() and rows_on_disk(path) == 1, "not returned before its commit"
        await asyncio.wait_for(pending, 5)
        assert rows_on_disk(path) == 3, "committed when append_events returned"
        assert await buf.delete([(await buf.take_events(1)).id]) == 1  # type: ignore[union-attr]
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        sync = await buf._run(lambda: buf._live_conn().execute("PRAGMA synchronous").fetchone()[0])
        assert sync == 2, "synchronous=FULL on the buffer's own connection"
        st = buf.stats()
        assert st["events_buffered"] == 2 and st["events_received"] == 3 and st["buffered"] == 0
        batch = await buf.take_events(10)
        assert isinstance(batch, EventBatch) and batch.events == [alert(1), ev(2)]
        assert batch.events[0].value is True and batch.events[0].data == {"n": 1, "list": [1, "x"]}
        assert batch.id.startswith("ev-") and not set(batch.id) & set("/+#")
        assert await buf.take_events(10) is None, "in-flight events are not taken twice"
        assert buf.stats()["events_inflight"] == 2 and buf.inflight_batches() == [batch.id]
        assert await buf.delete([batch.id]) == 2
        assert rows_on_disk(path) == 0 and buf.stats()["events_buffered"] == 0


async def test_readings_and_events_share_commits_but_not_batches(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite", commit_interval_ms=20, max_age_s=0) as buf:
        readings = [Reading("s1", "t", float(i), 1_700_000_000.0 + i) for i in range(5)]
        await asyncio.wait_for(asyncio.gather(buf.append(readings), buf.append_events([ev(1), ev(2)])), 5)
        assert buf.stats()["commits"] == 1, "one group commit for both"
        rb = await buf.take(100)
        eb = await buf.take_events(100)
        assert rb is not None and eb is not None and rb.id != eb.id
        assert rb.readings == readings and eb.events == [ev(1), ev(2)]
        assert not rb.id.startswith("ev-")
        assert await buf.delete([rb.id, eb.id]) == 7, "one delete call for both kinds"
        assert buf.stats()["buffered"] == 0 and buf.stats()["events_buffered"] == 0


async def test_take_release_comes_back_first_under_a_new_id(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite") as buf:
        await buf.append_events([ev(i) for i in range(25)])
        b1 = await buf.take_events(10)
        b2 = await buf.take_events(10)
        assert b1 is not None and b2 is not None
        assert [e.id for e in b1.events] == [f"e{i:05d}" for i in range(10)]
        assert buf.pending_events == 5
        buf.release([b1.id])
        assert buf.pending_events == 15
        b3 = await buf.take_events(10)
        assert b3 is not None and b3.id not in (b1.id, b2.id) and b3.events == b1.events
        assert await buf.delete([b1.id]) == 0, "a released id is forgotten"
        await buf.delete([b2.id, b3.id])
        assert [e.id for e in await drain(buf)] == [f"e{i:05d}" for i in range(20, 25)]


async def test_wait_events_wakes_on_append(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite") as buf:
        assert not await buf.wait_events(timeout=0.05)
        waiter = asyncio.create_task(buf.wait_events(timeout=5))
        await asyncio.sleep(0.02)
        assert not waiter.done()
        await buf.append([Reading("s", "m", 1.0, 1_700_000_000.0)])
        await asyncio.sleep(0.02)
        assert not waiter.done(), "a reading is not an event"
        await buf.append_events([ev(1)])
        assert await asyncio.wait_for(waiter, 5)


async def test_drop_oldest_by_count_and_bytes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.buffer_events")
    async with DurableBuffer(tmp_path / "b.sqlite", max_events=10) as buf:
        for i in range(0, 25, 5):
            await buf.append_events([ev(j) for j in range(i, i + 5)])
        st = buf.stats()
        assert st["events_buffered"] == 10 and st["events_dropped"] == 15
        assert [e.id for e in await drain(buf)] == [f"e{i:05d}" for i in range(15, 25)], "oldest gone"
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1, "one warning per incident"
        await buf.append_events([ev(99)])
        assert any("room again" in r.getMessage() for r in caplog.records)
    big = "x" * 1000
    async with DurableBuffer(tmp_path / "c.sqlite", max_event_bytes=4 * 1024) as buf:
        await buf.append_events([ev(i, message=big) for i in range(10)])
        st = buf.stats()
        assert st["events_buffered"] == 3 and st["events_dropped"] == 7 and st["events_bytes"] <= 4 * 1024
        assert [e.id for e in await drain(buf)] == ["e00007", "e00008", "e00009"]


async def test_drop_newest_and_refuse(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite", max_events=10, policy="drop-newest") as buf:
        await buf.append_events([ev(i) for i in range(8)])
        await buf.append_events([ev(i) for i in range(8, 16)])  # returns normally: 2 stored, 6 dropped
        assert buf.stats()["events_buffered"] == 10 and buf.stats()["events_dropped"] == 6
        assert [e.id for e in await drain(buf)] == [f"e{i:05d}" for i in range(10)]
    async with DurableBuffer(tmp_path / "c.sqlite", max_events=10, policy="refuse") as buf:
        await buf.append_events([ev(i) for i in range(8)])
        results = await asyncio.gather(
            buf.append_events([ev(i) for i in range(8, 11)]), buf.append_events([ev(20)]), return_exceptions=True
        )
        assert isinstance(results[0], BufferFull) and results[1] is None
        assert buf.stats()["events_buffered"] == 9 and buf.stats()["events_dropped"] == 3
        hub = Hub(buf)
        with pytest.raises(BufferFull):
            await hub.publish_events([ev(i) for i in range(30, 32)])
        assert hub.published_events == 0


async def test_invalid_events_are_refused_before_storing_any(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite") as buf:
        with pytest.raises(PayloadError, match="severity"):
            await buf.append_events([ev(1), Event(id="x", kind="alert", ts=1.0, key="k", state="raised")])
        with pytest.raises(PayloadError, match="JSON"):
            await buf.append_events([ev(2, data={"x": float("nan")})])
        assert buf.stats()["events_buffered"] == 0 and buf.stats()["events_dropped"] == 0


async def test_survives_reopen_with_counters(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    async with DurableBuffer(path, max_events=4) as buf:
        await buf.append_events([ev(i) for i in range(6)])
        taken = await buf.take_events(2)
        assert taken is not None  # in flight at shutdown: pending again after the restart
    async with DurableBuffer(path, max_events=4) as buf:
        st = buf.stats()
        assert st["events_buffered"] == 4 and st["events_dropped"] == 2 and st["events_received"] == 0
        assert buf.pending_events == 4
        assert [e.id for e in await drain(buf)] == [f"e{i:05d}" for i in range(2, 6)]
        await buf.append_events([ev(7)])
        batch = await buf.take_events(10)
        assert batch is not None and batch.id != taken.id


async def test_hub_publish_events_is_durable_then_observed(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    async with DurableBuffer(path) as buf:
        hub = Hub(buf)
        seen: list[tuple[str, int]] = []
        hub.events.subscribe(lambda e: seen.append((e.id, rows_on_disk(path))))
        hub.events.subscribe(lambda e: 1 / 0)  # a broken observer costs nothing
        await hub.publish_events([alert(1), alert(2, "cleared")])
        assert seen == [("a1", 2), ("a2", 2)], "observers see events only once they are committed"
        assert hub.published_events == 2 and hub.observer_errors == 2
        await hub.publish_events([])
        hub.close()


async def test_a_hub_without_an_event_sink_says_so() -> None:
    class ReadingsOnly:
        async def append(self, readings: object) -> None:
            return None

    with pytest.raises(Exception, match="no event sink"):
        await Hub(ReadingsOnly()).publish_events([ev(1)])  # type: ignore[arg-type]
