"""Delivering a publish to its subscribers without looking at every subscription in the broker.

amqtt keeps subscriptions as ``{filter: [(session, qos), ...]}`` and, for each message it delivers, tests the
topic against every filter (and formats a debug line for each one that does not match). Every gateway
subscribes to three filters of its own (``ack``, ``cmd/+``, ``state/desired``), so that cost grows with the
fleet: 8.9 ms a message at 1,000 gateways, about 110 messages a second on one core, and the cloud's acks fell
behind from about 1,000 gateways (bench/fleet.py). Worse, the loop awaits inside its iteration, so a client
subscribing meanwhile made it fail ("dictionary changed size during iteration") and lose that delivery.

:class:`FilterIndex` is that same dictionary, indexed as it changes: exact filters are found by the topic
itself, and filters whose first levels are literal (``roost/acme/gw-1/cmd/+``) by those levels. Only the few
filters with a wildcard near the start (an operator's ``roost/acme/+/telemetry/#``) are tested one by one.
:class:`IndexedBroker` delivers from the index, over a snapshot of each filter's subscribers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.constants import QOS_1, QOS_2

PREFIX_LEVELS = 3
"""Levels a filter must start with, literally, to be indexed by them (``roost/{tenant}/{gateway}``)."""


def _prefix(topic_filter: str) -> tuple[str, ...] | None:
    """The filter's first PREFIX_LEVELS levels when they are all literal, else None."""
    levels = topic_filter.split("/", PREFIX_LEVELS)
    if len(levels) <= PREFIX_LEVELS:
        return None  # too short to be indexed by its prefix: tested one by one (or found exactly)
    head = levels[:PREFIX_LEVELS]
    if any(level in ("+", "#") for level in head):
        return None
    return tuple(head)


class FilterIndex(dict[str, list[tuple[Any, int]]]):
    """amqtt's ``{filter: subscribers}`` dictionary, which also indexes its filters for :meth:`candidates`.

    amqtt adds and removes filters with ``d[f] = ...``, ``del d[f]`` and ``d.clear()``; those, ``setdefault`` and
    ``pop`` keep the index in step (``update`` is not used).
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_prefix: dict[tuple[str, ...], set[str]] = {}
        self._scanned: set[str] = set()
        """Filters with a wildcard and no literal prefix to be found by: tested against every topic."""

    def __setitem__(self, topic_filter: str, subscribers: list[tuple[Any, int]]) -> None:
        if topic_filter not in self and ("+" in topic_filter or "#" in topic_filter):
            prefix = _prefix(topic_filter)
            if prefix is None:
                self._scanned.add(topic_filter)
            else:
                self._by_prefix.setdefault(prefix, set()).add(topic_filter)
        super().__setitem__(topic_filter, subscribers)

    def __delitem__(self, topic_filter: str) -> None:
        super().__delitem__(topic_filter)
        self._scanned.discard(topic_filter)
        prefix = _prefix(topic_filter)
        if prefix is not None and (found := self._by_prefix.get(prefix)) is not None:
            found.discard(topic_filter)
            if not found:
                del self._by_prefix[prefix]

    def setdefault(self, topic_filter: str, default: list[tuple[Any, int]] | None = None) -> list[tuple[Any, int]]:
        if topic_filter not in self:
            self[topic_filter] = [] if default is None else default
        return self[topic_filter]

    def pop(self, topic_filter: str, *default: Any) -> Any:
        if topic_filter not in self:
            if default:
                return default[0]
            raise KeyError(topic_filter)
        subscribers = self[topic_filter]
        del self[topic_filter]
        return subscribers

    def clear(self) -> None:
        super().clear()
        self._by_prefix.clear()
        self._scanned.clear()

    def candidates(self, topic: str) -> Iterator[str]:
        """Filters that may match ``topic``: its exact filter, wildcard filters sharing its prefix, the scanned ones.

        The caller still tests each wildcard filter against the topic.
        """
        if topic in self:
            yield topic
        levels = topic.split("/", PREFIX_LEVELS)
        if len(levels) > PREFIX_LEVELS:
            yield from tuple(self._by_prefix.get(tuple(levels[:PREFIX_LEVELS]), ()))
        yield from tuple(self._scanned)


class IndexedBroker(Broker):  # type: ignore[misc]
    """amqtt's broker, delivering each message to the filters :class:`FilterIndex` names for its topic.

    It also remembers each client's filters, so a client that connects or leaves has its subscriptions removed
    without amqtt's walk through every filter of the fleet (connections were set up at 420/s with 500 gateways
    connected and 83/s with 2,500).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions: FilterIndex = FilterIndex()
        self._filters_of: dict[str, set[str]] = {}
        """Client id -> the filters it subscribed to (some may since have been removed: harmless)."""

    async def add_subscription(self, subscription: tuple[str, int], session: Any) -> int:
        """amqtt's subscribe, remembering the filter under the client's id when it was granted."""
        granted: int = await super().add_subscription(subscription, session)
        if granted != 0x80:
            self._filters_of.setdefault(session.client_id, set()).add(subscription[0])
        return granted

    async def _del_all_subscriptions(self, session: Any) -> None:
        """Remove every subscription of ``session``, looking only at the filters it subscribed to."""
        for topic_filter in self._filters_of.pop(session.client_id, ()):
            removed = topic_filter in self._subscriptions and self._del_subscription(topic_filter, session)
            if removed and not self._subscriptions[topic_filter]:
                del self._subscriptions[topic_filter]

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        """Take one message off the broadcast queue and start its delivery to every subscriber allowed to have it."""
        message = await self._broadcast_queue.get()
        topic: str = message["topic"]
        index: FilterIndex = self._subscriptions
        for topic_filter in index.candidates(topic):
            if topic_filter != topic and not self._matches(topic, topic_filter):
                continue
            # A copy: deliveries await, and subscribers may come and go meanwhile.
            for session, subscribed_qos in tuple(index.get(topic_filter, ())):
                qos = message.get("qos", subscribed_qos)
                if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                    continue
                connected = session.transitions.state == "connected"
                if not connected:
                    # [MQTT-3.1.2-4]: a persistent session keeps QoS 1 and 2 messages until it is back.
                    if not session.clean_session and qos in (QOS_1, QOS_2) and not session.is_anonymous:
                        await self._retain_broadcast_message(message, qos, session)
                    continue
                handler = self._get_handler(session)
                if handler is not None:
                    running_tasks.append(
                        asyncio.ensure_future(handler.mqtt_publish(topic, message["data"], qos, retain=False))
                    )
