"""The embedded broker finds a message's subscribers through an index, with the same answer as testing every filter."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.broker.fanout import FilterIndex, IndexedBroker

LEVELS = st.sampled_from(["roost", "acme", "beta", "gw-1", "gw-2", "ack", "cmd", "x", "$SYS", "+", "#", ""])


def _matches(topic: str, topic_filter: str) -> bool:
    """MQTT 3.1.1 topic matching, written plainly for the comparison."""
    if topic.startswith("$") and topic_filter.startswith(("+", "#")):
        return False
    t, f = topic.split("/"), topic_filter.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return i == len(f) - 1
        if i >= len(t) or level not in ("+", t[i]):
            return False
    return len(t) == len(f)


def _valid_filter(levels: list[str]) -> str | None:
    if "#" in levels[:-1]:
        return None
    return "/".join(levels)


@settings(max_examples=300, deadline=None)
@given(
    filters=st.lists(st.lists(LEVELS, min_size=1, max_size=6), max_size=30),
    removed=st.sets(st.integers(0, 29), max_size=10),
    topics=st.lists(st.lists(LEVELS.filter(lambda x: x not in ("+", "#")), min_size=1, max_size=6), max_size=10),
)
def test_the_index_names_every_filter_that_matches(
    filters: list[list[str]], removed: set[int], topics: list[list[str]]
) -> None:
    index = FilterIndex()
    kept: set[str] = set()
    valid = [f for f in (_valid_filter(levels) for levels in filters) if f is not None]
    for f in valid:
        index[f] = []
        kept.add(f)
    for i in removed:
        if i < len(valid) and valid[i] in index:
            del index[valid[i]]
            kept.discard(valid[i])
    for levels in topics:
        topic = "/".join(levels)
        found = {f for f in index.candidates(topic) if _matches(topic, f)}
        assert found == {f for f in kept if _matches(topic, f)}
    index.clear()
    assert list(index.candidates("roost/acme/gw-1/ack")) == []


def test_a_gateways_own_filters_are_found_without_looking_at_the_rest_of_the_fleet() -> None:
    index = FilterIndex()
    for i in range(5000):
        for tail in ("ack", "cmd/+", "state/desired"):
            index[f"roost/acme/gw-{i}/{tail}"] = []
    index["roost/acme/+/telemetry/#"] = []  # an operator's wildcard: the only one tested for every topic
    assert set(index.candidates("roost/acme/gw-7/cmd/r1")) == {"roost/acme/gw-7/cmd/+", "roost/acme/+/telemetry/#"}
    assert set(index.candidates("roost/acme/gw-7/ack")) == {
        "roost/acme/gw-7/ack",
        "roost/acme/gw-7/cmd/+",  # a candidate, which the broker then tests
        "roost/acme/+/telemetry/#",
    }


class _Session:
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.clean_session = True
        self.is_anonymous = False
        self.transitions = type("T", (), {"state": "connected"})()


class _Handler:
    def __init__(self, got: list[tuple[str, str]], client_id: str) -> None:
        self.got, self.client_id = got, client_id

    async def mqtt_publish(self, topic: str, data: bytes, qos: int, retain: bool) -> None:
        self.got.append((self.client_id, topic))


async def test_delivery_goes_on_while_clients_subscribe_during_it() -> None:
    """amqtt's own loop failed here ("dictionary changed size during iteration") and lost the delivery."""
    broker = IndexedBroker({"listeners": {"default": {"type": "external"}}, "plugins": {}})
    got: list[tuple[str, str]] = []
    handlers: dict[str, _Handler] = {}
    subscribed = 0

    async def allowed(session: Any, topic: str, action: Any) -> bool:
        nonlocal subscribed
        # Another client subscribes while this delivery is under way.
        broker._subscriptions[f"roost/acme/new-{subscribed}/ack"] = []
        subscribed += 1
        await asyncio.sleep(0)
        return True

    broker._topic_filtering = allowed  # type: ignore[method-assign]
    broker._get_handler = lambda s: handlers.setdefault(s.client_id, _Handler(got, s.client_id))  # type: ignore[method-assign]
    for i in range(3):
        broker._subscriptions.setdefault("roost/acme/+/telemetry/#", [])
        broker._subscriptions[f"roost/acme/gw-{i}/ack"] = [(_Session(f"gw-{i}"), 1)]
    broker._subscriptions["roost/acme/+/telemetry/#"] = [(_Session(f"op-{i}"), 0) for i in range(3)]
    await broker._broadcast_queue.put({"topic": "roost/acme/gw-1/telemetry/b1", "data": b"x", "session": None})
    await broker._broadcast_queue.put({"topic": "roost/acme/gw-1/ack", "data": b"x", "session": None})
    tasks: Any = __import__("collections").deque()
    started = time.monotonic()
    await broker._run_broadcast(tasks)
    await broker._run_broadcast(tasks)
    await asyncio.gather(*tasks)
    assert time.monotonic() - started < 5
    assert sorted(got) == sorted(
        [(f"op-{i}", "roost/acme/gw-1/telemetry/b1") for i in range(3)] + [("gw-1", "roost/acme/gw-1/ack")]
    )
    assert subscribed == 4


async def test_a_client_leaving_removes_its_own_subscriptions_and_nobody_elses() -> None:
    broker = IndexedBroker({"listeners": {"default": {"type": "external"}}, "plugins": {}})

    async def allowed(session: Any, topic: str, action: Any) -> bool:
        return True

    broker._topic_filtering = allowed  # type: ignore[method-assign]
    one, two = _Session("gw-1"), _Session("gw-2")
    for session in (one, two):
        for tail in ("ack", "cmd/+"):
            assert await broker.add_subscription((f"roost/acme/{session.client_id}/{tail}", 1), session) == 1
        assert await broker.add_subscription(("roost/acme/+/telemetry/#", 0), session) == 0
    assert await broker.add_subscription(("roost/acme/#/bad", 1), one) == 0x80  # refused: not remembered
    await broker._del_all_subscriptions(one)
    assert set(broker._subscriptions) == {"roost/acme/gw-2/ack", "roost/acme/gw-2/cmd/+", "roost/acme/+/telemetry/#"}
    assert [s.client_id for s, _ in broker._subscriptions["roost/acme/+/telemetry/#"]] == ["gw-2"]
    assert set(broker._subscriptions.candidates("roost/acme/gw-1/cmd/x")) == {"roost/acme/+/telemetry/#"}
    await broker._del_all_subscriptions(one)  # twice: nothing left to remove
    await broker._del_all_subscriptions(two)
    assert dict(broker._subscriptions) == {}
