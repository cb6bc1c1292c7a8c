"""Ingest settles a redelivering broker's messages only after the commit that stored them (RabbitMQ's manual ack).

The broker here stands in at the seam (:class:`cloud.broker.base.MessageBroker`): it hands over ``Received``
messages with a ``settle`` callback and records what ingest did, in order, next to the ``ack`` publishes. The
store is the real SQLite store; one of its commits is made to fail, as a full disk or a lost database would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from cloud.broker.base import BrokerEvent, Received
from cloud.config import IngestSection
from cloud.errors import StoreError
from cloud.ingest import Ingest
from cloud.stats import Stats
from cloud.store import EventWrite, PackWrite, ReadingQuery, Store
from tests.cloud.helpers import eventually
from wire import envelopes, senml
from wire.reading import Reading


class SeamBroker:
    """Delivers the messages it is given; records settles and publishes as one ordered journal."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[BrokerEvent | None] = asyncio.Queue()
        self.journal: list[tuple[str, Any]] = []

    def deliver(self, topic: str, payload: bytes) -> None:
        async def settle(done: bool) -> None:
            self.journal.append(("settle", (topic, done)))

        self.inbox.put_nowait(Received(topic, payload, "gw-1", None, settle))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.inbox.put_nowait(None)

    async def events(self) -> AsyncIterator[BrokerEvent]:
        while (event := await self.inbox.get()) is not None:
            yield event

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.journal.append(("publish", (topic, envelopes.decode_ack(payload)["batches"])))

    @property
    def healthy(self) -> bool:
        return True


class FailingOnce(Store):
    """The SQLite store, whose next commit fails once ``fail_next`` is set."""

    fail_next = False

    async def commit_all(
        self, packs: Sequence[PackWrite], events: Sequence[EventWrite] = (), *, now: float
    ) -> tuple[list[int], list[int]]:
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full (made up by the test)")
        return await super().commit_all(packs, events, now=now)


def _pack(seq: int) -> bytes:
    return senml.encode([Reading("s1", "temp", 20.0 + seq, 1_795_000_000 + seq)])


async def _until(check: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return check()

    await eventually(holds, timeout=5.0)


async def test_settled_after_commit_redelivered_after_a_failed_commit(tmp_path: Path) -> None:
    store = FailingOnce(tmp_path / "cloud.sqlite")
    await store.open()
    broker = SeamBroker()
    ingest = Ingest(broker, store, Stats(), IngestSection(batch_max_delay_ms=1.0))
    run = asyncio.create_task(ingest.run())
    try:
        broker.deliver("roost/default/gw-1/telemetry/b1", _pack(1))
        await _until(lambda: len(broker.journal) == 2)
        # The ack to the gateway and the settle both come after the commit; settled as done.
        assert broker.journal == [
            ("publish", ("roost/default/gw-1/ack", ["b1"])),
            ("settle", ("roost/default/gw-1/telemetry/b1", True)),
        ]
        assert len(await store.readings(_query())) == 1

        # A failed commit: no ack, and the message goes back to the broker (settled as not done).
        broker.journal.clear()
        store.fail_next = True
        started = time.monotonic()
        broker.deliver("roost/default/gw-1/telemetry/b2", _pack(2))
        await _until(lambda: len(broker.journal) == 1)
        assert broker.journal == [("settle", ("roost/default/gw-1/telemetry/b2", False))]
        assert time.monotonic() - started >= 0.9, "a failed commit is handed back at once (a hot redelivery loop)"
        assert ingest.last_store_error is not None and "disk full" in ingest.last_store_error

        # Its redelivery, and a redelivery of b1 that was already stored: both acked, nothing stored twice.
        broker.journal.clear()
        broker.deliver("roost/default/gw-1/telemetry/b2", _pack(2))
        broker.deliver("roost/default/gw-1/telemetry/b1", _pack(1))
        await _until(lambda: sum(1 for kind, _ in broker.journal if kind == "settle") == 2)
        assert ("settle", ("roost/default/gw-1/telemetry/b2", True)) in broker.journal
        assert ("settle", ("roost/default/gw-1/telemetry/b1", True)) in broker.journal
        acked = [b for kind, (_t, batches) in broker.journal if kind == "publish" for b in batches]
        assert sorted(acked) == ["b1", "b2"]
        assert len(await store.readings(_query())) == 2
        assert ingest.last_store_error is None

        # What ingest does not store (a topic it ignores, a bad pack) is settled too, never redelivered forever.
        broker.journal.clear()
        broker.deliver("roost/default/gw-1/whatever", b"x")
        broker.deliver("roost/default/gw-1/telemetry/b3", b"\xff not senml")
        await _until(lambda: sum(1 for kind, _ in broker.journal if kind == "settle") == 2)
        assert ("settle", ("roost/default/gw-1/whatever", True)) in broker.journal
        assert ("settle", ("roost/default/gw-1/telemetry/b3", True)) in broker.journal
    finally:
        await broker.stop()
        async with asyncio.timeout(5):
            await run
        await store.close()


def _query() -> ReadingQuery:
    return ReadingQuery(tenant="default", gateway="gw-1", limit=100)
