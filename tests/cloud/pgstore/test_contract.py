"""The store contract, for both back ends: idempotent writes, rollups, value kinds, gateways, events and alerts."""

from __future__ import annotations

import pytest

from cloud.eventstore import AlertQuery, EventQuery
from cloud.rollups import RollupQuery
from cloud.store import EventWrite, PackWrite, ReadingQuery
from tests.cloud.pgstore.conftest import AnyStore
from wire.events import Event
from wire.reading import Reading

T0 = 1_794_999_600.0  # 2026-11-18T11:00:00Z, the start of an hour
NOW = T0 + 10.0


def _series(n: int, *, sensor: str = "s1", t0: float = T0, step: float = 1.0) -> list[Reading]:
    return [Reading(sensor, "temp", 20.0 + i / 4, t0 + i * step, "Cel") for i in range(n)]


async def _all(store: AnyStore, **filters: object) -> list[tuple[object, ...]]:
    rows = await store.readings(ReadingQuery(limit=100_000, **filters))  # type: ignore[arg-type]
    return [(r.tenant, r.gateway, r.sensor, r.metric, r.ts_us, r.value, r.unit) for r in rows]


async def test_a_pack_stored_twice_counts_once(store: AnyStore) -> None:
    pack = PackWrite("default", "gw-1", _series(50))
    assert await store.commit([pack], now=NOW) == [50]
    assert await store.commit([pack], now=NOW) == [0]
    assert len(await _all(store)) == 50
    (gw,) = await store.gateways()
    assert gw.counters == {"readings": 50, "duplicates": 50, "packs": 2, "rejected_packs": 0, "events": 0}
    (bucket,) = await store.rollups(RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1m"))
    assert bucket.count == 50  # the duplicates were not folded again


async def test_new_readings_are_counted_for_the_first_pack_that_carried_them(store: AnyStore) -> None:
    a = _series(10)
    b = _series(15)  # the first 10 are a's again
    other = PackWrite("default", "gw-2", _series(3))
    counts = await store.commit(
        [PackWrite("default", "gw-1", a), other, PackWrite("default", "gw-1", b), PackWrite("default", "gw-1", [])],
        now=NOW,
    )
    assert counts == [10, 3, 5, 0]
    rejected = PackWrite("default", "gw-1", (), rejected=True)
    assert await store.commit([rejected], now=NOW) == [0]
    gw1 = next(g for g in await store.gateways("default") if g.id == "gw-1")
    assert gw1.counters["rejected_packs"] == 1
    assert gw1.counters["readings"] == 15 and gw1.counters["duplicates"] == 10


async def test_values_keep_their_kind(store: AnyStore) -> None:
    sent = [
        Reading("s1", "temp", 21.5, T0, "Cel"),
        Reading("s1", "zero", 0.0, T0),
        Reading("door-1", "open", True, T0 + 1),
        Reading("door-1", "closed", False, T0 + 1),
        Reading("s2", "state", "idle", T0 + 2),
        Reading("s2", "empty", "", T0 + 2),
    ]
    await store.commit([PackWrite("default", "gw-1", sent)], now=NOW)
    got = {(r.sensor, r.metric): r.value for r in await store.readings(ReadingQuery())}
    assert got == {(r.sensor, r.metric): r.value for r in sent}
    for r in sent:
        assert type(got[(r.sensor, r.metric)]) is type(r.value), r
    # Only numbers are rolled up.
    assert await store.rollups(RollupQuery(tenant="default", sensor="door-1", metric="open", resolution="1m")) == []


async def test_rollups_fold_late_data_and_never_count_a_duplicate(store: AnyStore) -> None:
    minute = 60.0
    first = [Reading("s1", "temp", v, T0 + minute * 10 + i, "Cel") for i, v in enumerate([5.0, 7.0, 6.0])]
    await store.commit([PackWrite("default", "gw-1", first)], now=NOW)
    late = Reading("s1", "temp", 1.0, T0 + minute * 10 - 0.5)  # in the previous minute, same hour
    older_same_minute = Reading("s1", "temp", 100.0, T0 + minute * 10 + 0.5)  # late, not the last of its minute
    await store.commit([PackWrite("default", "gw-1", [late, older_same_minute, *first])], now=NOW)
    q = RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1m")
    buckets = await store.rollups(q)
    assert [(b.count, b.min, b.max, b.last) for b in buckets] == [(1, 1.0, 1.0, 1.0), (4, 5.0, 100.0, 6.0)]
    assert buckets[1].sum == pytest.approx(118.0)
    assert buckets[1].last_us == round((T0 + minute * 10 + 2) * 1e6)
    (hour,) = await store.rollups(RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1h"))
    assert (hour.count, hour.min, hour.max, hour.last) == (5, 1.0, 100.0, 6.0)
    assert hour.sum == pytest.approx(119.0)


async def test_rollups_of_several_gateways_are_folded_into_one_series(store: AnyStore) -> None:
    await store.commit(
        [
            PackWrite("default", "gw-1", [Reading("s1", "temp", 1.0, T0), Reading("s1", "temp", 2.0, T0 + 3600)]),
            PackWrite("default", "gw-2", [Reading("s1", "temp", 5.0, T0 + 1), Reading("s1", "temp", 4.0, T0 + 2)]),
        ],
        now=NOW,
    )
    q = RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1h")
    buckets = await store.rollups(q)
    assert [(b.count, b.min, b.max, b.sum, b.last) for b in buckets] == [
        (3, 1.0, 5.0, 10.0, 4.0),
        (1, 2.0, 2.0, 2.0, 2.0),
    ]
    one = await store.rollups(RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1h", limit=1))
    assert [b.count for b in one] == [3]
    only_gw2 = await store.rollups(
        RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1h", gateway="gw-2")
    )
    assert [b.count for b in only_gw2] == [2]


async def test_gateway_presence_and_health(store: AnyStore) -> None:
    await store.set_online("default", "gw-1", True, now=NOW)
    await store.set_health("default", "gw-1", {"buffered": 3, "uptime_s": 12.5}, now=NOW + 5)
    await store.set_online("acme", "gw-9", False, now=NOW)
    rows = await store.gateways()
    assert [(g.tenant, g.id, g.online, g.last_seen) for g in rows] == [
        ("acme", "gw-9", False, NOW),
        ("default", "gw-1", True, NOW + 5),
    ]
    assert rows[1].health == {"buffered": 3, "uptime_s": 12.5}
    assert [g.id for g in await store.gateways("acme")] == ["gw-9"]
    assert await store.ping() is True


def _alert(eid: str, state: str, ts: float, value: float | bool | str | None = -12.5) -> Event:
    return Event(
        id=eid, kind="alert", ts=ts, key="freezer-warm/f1", rule="freezer-warm", state=state,  # type: ignore[arg-type]
        severity="critical", message=f"{state} at {ts}", sensor="f1", metric="temp", value=value,
    )  # fmt: skip


async def test_events_are_stored_once_and_drive_alert_states(store: AnyStore) -> None:
    raise1 = _alert("e1", "raised", T0)
    note = Event(id="n1", kind="annotation", ts=T0 + 1, key="note", message="door opened", value=True, data={"a": 1})
    assert (await store.commit_all([], [EventWrite("default", "gw-1", [raise1, note])], now=NOW))[1] == [2]
    assert (await store.commit_all([], [EventWrite("default", "gw-1", [raise1])], now=NOW))[1] == [0]
    events = await store.events(EventQuery(tenant="default"))
    assert [(e.id, e.value, e.data) for e in events] == [("e1", -12.5, {}), ("n1", True, {"a": 1})]
    assert type(events[1].value) is bool
    (alert,) = await store.alerts(AlertQuery(tenant="default"))
    assert (alert.state, alert.first_raised_us, alert.raises, alert.value) == ("raised", round(T0 * 1e6), 1, -12.5)
    acked = await store.acknowledge_alert("default", None, "freezer-warm/f1", by="ops", at=NOW)
    assert [(a.acknowledged_by, a.acknowledged_at) for a in acked] == [("ops", NOW)]
    # Cleared, then a late re-send of an older raise: history only, the state stays cleared.
    await store.commit_all([], [EventWrite("default", "gw-1", [_alert("e2", "cleared", T0 + 60, "warm")])], now=NOW)
    await store.commit_all([], [EventWrite("default", "gw-1", [_alert("e0", "raised", T0 - 60)])], now=NOW)
    (alert,) = await store.alerts(AlertQuery(tenant="default", state="all"))
    assert (alert.state, alert.raises, alert.value, alert.acknowledged_by) == ("cleared", 2, "warm", "ops")
    assert await store.alerts(AlertQuery(tenant="default")) == []
    # Raised again: a new incident, the acknowledgement reset.
    await store.commit_all([], [EventWrite("default", "gw-1", [_alert("e3", "raised", T0 + 120)])], now=NOW)
    (alert,) = await store.alerts(AlertQuery(tenant="default"))
    assert (alert.first_raised_us, alert.acknowledged_by, alert.raises) == (round((T0 + 120) * 1e6), None, 3)
    (gw,) = await store.gateways()
    assert gw.counters["events"] == 5


async def test_acknowledging_an_ambiguous_key_changes_nothing(store: AnyStore) -> None:
    await store.commit_all(
        [],
        [
            EventWrite("default", "gw-1", [_alert("a", "raised", T0)]),
            EventWrite("default", "gw-2", [_alert("b", "raised", T0)]),
        ],
        now=NOW,
    )
    found = await store.acknowledge_alert("default", None, "freezer-warm/f1", by="ops", at=NOW)
    assert sorted(a.gateway for a in found) == ["gw-1", "gw-2"] and all(a.acknowledged_by is None for a in found)
    (one,) = await store.acknowledge_alert("default", "gw-2", "freezer-warm/f1", by="ops", at=NOW)
    assert one.acknowledged_by == "ops"


async def test_a_page_of_buckets_stops_at_its_limit_with_complete_buckets(store: AnyStore) -> None:
    one = [Reading("s1", "temp", float(i), T0 + i * 60) for i in range(5)]  # minutes 0-4 from gw-1
    shared = Reading("s1", "temp", 9.0, T0 + 2 * 60 + 1)  # gw-2 also in minute 2
    await store.commit([PackWrite("default", "gw-1", one), PackWrite("default", "gw-2", [shared])], now=NOW)
    q = RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1m", limit=2)
    assert [(b.count, b.max) for b in await store.rollups(q)] == [(1, 0.0), (1, 1.0)]
    q = RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1m", limit=3)
    assert [(b.count, b.max) for b in await store.rollups(q)] == [(1, 0.0), (1, 1.0), (2, 9.0)]
    after = RollupQuery(tenant=None, sensor="s1", metric="temp", resolution="1m", after_us=round((T0 + 120) * 1e6))
    assert [(b.count, b.last) for b in await store.rollups(after)] == [(1, 3.0), (1, 4.0)]
