"""The scale-out broker: a RabbitMQ cluster the gateways reach through its MQTT plugin, the cloud through AMQP.

RabbitMQ's MQTT plugin publishes every gateway publish to ``amq.topic`` with the topic as routing key, ``/``
and ``.`` swapped (``roost/acme/gw-1/telemetry/b-7`` becomes ``roost.acme.gw-1.telemetry.b-7``). A durable
**quorum queue** (``roost.ingest``) is bound there for every kind ingest handles; ingest workers consume it
with a prefetch limit and settle each message only once the commit that stored it returned
(:class:`cloud.broker.base.Received` ``settle``). A worker that dies leaves its unsettled messages to be
delivered to another; a node that dies leaves the queue on the others (a quorum queue needs a majority).

The cloud's own messages (acks, commands, desired state, token results) go to the same exchange with the
same mapping, persistent and with publisher confirms, so the MQTT plugin of any node delivers them to the
gateway wherever it is connected. RabbitMQ keeps retained messages per node and has no retain for AMQP
publishes: ``retain`` is not honoured here; the fleet re-sends desired state when a gateway comes online.

The connection goes to the first AMQP URL that answers and, when it is lost, to the next one, round robin,
with capped backoff. Who published is not known over AMQP: RabbitMQ's topic authorization (the cloud's HTTP
auth backend, docs/rabbitmq.md) let only that gateway publish under its own prefix, so a received message's
principal is the gateway its topic names, without a token id (token refresh over MQTT needs the embedded
broker; gateways refresh over HTTPS here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from cloud.authz import Principal
from cloud.broker.base import BrokerEvent, Received
from cloud.config import BrokerSection
from cloud.errors import BrokerError

_LOGGER = logging.getLogger(__name__)

INGESTED_KINDS: tuple[str, ...] = (
    "roost.*.*.telemetry",
    "roost.*.*.telemetry.*",
    "roost.*.*.events",
    "roost.*.*.events.*",
    "roost.*.*.health",
    "roost.*.*.status",
    "roost.*.*.cmd-result.*",
    "roost.*.*.state.reported",
    "roost.*.*.token",
)
"""Routing keys the ingest queue is bound to: what gateways publish that ingest handles."""
RULES_KINDS: tuple[str, ...] = ("roost.*.*.telemetry", "roost.*.*.telemetry.*", "roost.*.*.status")
"""Routing keys the cloud rules' own queue is bound to: readings and presence (``server.role = "rules"``)."""
EXCHANGE = "amq.topic"
"""RabbitMQ's MQTT plugin's default ``mqtt.exchange`` (``[rabbitmq] exchange`` in cloud.toml)."""
BACKOFF_MAX_S = 5.0
PUBLISH_WAIT_S = 10.0
"""Longest a publish waits for a connection (after a node was lost) before it fails."""
STOP_GRACE_S = 3.0
"""On stop, how long delivered messages may take to be settled (ingest commits them) before the connection closes."""

_SWAP = str.maketrans("./", "/.")


def routing_key(topic: str) -> str:
    """The AMQP routing key RabbitMQ's MQTT plugin uses for an MQTT topic (``/`` and ``.`` swapped)."""
    return topic.translate(_SWAP)


def topic_of(key: str) -> str:
    """The MQTT topic of a routing key the MQTT plugin made."""
    return key.translate(_SWAP)


@dataclass(frozen=True, slots=True)
class AmqpSettings:
    """What :class:`RabbitMQBroker` needs: node URLs, the queue, whether to consume, the prefetch limit."""

    urls: Sequence[str]
    queue: str = "roost.ingest"
    prefetch: int = 500
    consume: bool = True
    connect_timeout_s: float = 10.0
    exchange: str = EXCHANGE
    bindings: tuple[str, ...] = INGESTED_KINDS
    """Routing keys the queue is bound to."""

    @classmethod
    def from_config(cls, section: BrokerSection, *, consume: bool, exchange: str = EXCHANGE) -> AmqpSettings:
        """From ``[broker]`` (and ``[rabbitmq] exchange``): the password file fills in URLs that carry none."""
        password = section.amqp_password()
        urls = [_with_password(u, password) for u in section.amqp_urls]
        return cls(
            urls=urls,
            queue=section.amqp_queue,
            prefetch=section.amqp_prefetch,
            consume=consume,
            connect_timeout_s=section.connect_timeout_s,
            exchange=exchange,
        )


def _with_password(url: str, password: str | None) -> str:
    parts = urlsplit(url)
    if password is None or parts.password is not None or parts.username is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{quote(password, safe='')}@{host}"))


def _safe(url: str) -> str:
    """A URL fit for logs: no password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5672}"


class RabbitMQBroker:
    """A :class:`cloud.broker.base.MessageBroker` over RabbitMQ's AMQP (see the module docstring)."""

    def __init__(self, settings: AmqpSettings) -> None:
        if not settings.urls:
            raise BrokerError("no AMQP URL to connect to (broker.amqp_urls)")
        self._settings = settings
        self._events: asyncio.Queue[BrokerEvent | None] = asyncio.Queue(maxsize=settings.prefetch + 1)
        self._connection: AbstractConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: tuple[AbstractQueue, str] | None = None
        self._unsettled = 0
        self._all_settled = asyncio.Event()
        self._all_settled.set()
        self._next_url = 0
        self.connects = 0
        """Connections opened so far (a count above 1 means it failed over)."""
        self.node: str | None = None
        """host:port of the node connected to now."""
        self.redeliveries = 0
        """Messages delivered again (a worker or a node died before they were settled, or a commit failed)."""
        self.lost_settles = 0
        """Messages settled after their channel closed (RabbitMQ delivers them again)."""
        self._stopped = False

    async def start(self) -> None:
        """Connect (to the first node that answers; keeps trying in the background) and start consuming."""
        self._task = asyncio.create_task(self._run(), name="rabbitmq-amqp")
        # Wait a little for the first connection, so a healthy cluster is in use once start returns; a cluster
        # that is down is retried in the background (healthz says so meanwhile).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.connect_timeout_s):
                await self._connected.wait()

    async def stop(self) -> None:
        """Stop consuming, end the event stream, let what was delivered be settled (bounded), then disconnect.

        Messages still unsettled when the connection closes go back to the queue for another worker.
        """
        self._stopped = True
        if self._consumer is not None:
            queue, tag = self._consumer
            self._consumer = None
            with contextlib.suppress(Exception):
                await queue.cancel(tag, timeout=STOP_GRACE_S)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE_S):
                await self._events.put(None)
                await self._all_settled.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def events(self) -> AsyncIterator[BrokerEvent]:
        """Received publishes (each with its ``settle``) until the broker stops; no presence over AMQP."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish to the MQTT exchange as the MQTT plugin would, persistent, confirmed by the broker."""
        if self._stopped and not self._connected.is_set():
            raise BrokerError("the connection to RabbitMQ is closed (the cloud is stopping)")
        try:
            async with asyncio.timeout(PUBLISH_WAIT_S):
                await self._connected.wait()
        except TimeoutError as exc:
            raise BrokerError(f"no RabbitMQ node answered within {PUBLISH_WAIT_S:.0f} s") from exc
        channel = self._publish_channel
        if channel is None:
            raise BrokerError("the connection to RabbitMQ was lost")
        message = aio_pika.Message(
            payload,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if qos > 0 else aio_pika.DeliveryMode.NOT_PERSISTENT,
            headers={"x-mqtt-publish-qos": qos},
        )
        try:
            exchange = await channel.get_exchange(self._settings.exchange, ensure=False)
            await exchange.publish(message, routing_key=routing_key(topic), timeout=PUBLISH_WAIT_S)
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as exc:
            raise BrokerError(f"RabbitMQ did not confirm a publish to {topic}: {exc!r}") from exc

    def details(self) -> dict[str, Any]:
        """What a health check shows: the node connected to, connections opened, redeliveries, unsettled messages."""
        return {
            "node": self.node if self.healthy else None,
            "connects": self.connects,
            "redeliveries": self.redeliveries,
            "lost_settles": self.lost_settles,
            "unsettled": self._unsettled,
        }

    @property
    def healthy(self) -> bool:
        """Whether a connection to a node is open."""
        return self._connected.is_set()

    # -- the connection loop -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            url = self._settings.urls[self._next_url % len(self._settings.urls)]
            self._next_url += 1
            try:
                lost = await self._connect(url)
            except Exception as exc:  # the loop must outlive any failure: log it and try the next node
                _LOGGER.warning("RabbitMQ node %s does not answer: %r", _safe(url), exc)
                await self._close()
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(BACKOFF_MAX_S, backoff * 2)
                continue
            backoff = 0.2
            _LOGGER.info("connected to RabbitMQ node %s", _safe(url))
            reason = await lost
            _LOGGER.warning("lost the connection to RabbitMQ node %s (%s); trying the next node", _safe(url), reason)
            await self._close()

    async def _connect(self, url: str) -> asyncio.Future[str]:
        """Open a connection and its channels; a future that resolves (with a reason) when it closes."""
        timeout = self._settings.connect_timeout_s
        connection = await aio_pika.connect(url, timeout=timeout, client_properties={"connection_name": "roost-cloud"})
        self._connection = connection
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def closed(_sender: object, exc: BaseException | None = None) -> None:
            self._connected.clear()
            if not lost.done():
                lost.set_result(repr(exc) if exc else "closed")

        connection.close_callbacks.add(closed)
        self._publish_channel = await connection.channel(publisher_confirms=True)
        if self._settings.consume:
            channel = await connection.channel(publisher_confirms=False)
            channel.close_callbacks.add(closed)
            await channel.set_qos(prefetch_count=self._settings.prefetch)
            queue = await channel.declare_queue(
                self._settings.queue, durable=True, arguments={"x-queue-type": "quorum"}, timeout=timeout
            )
            for key in self._settings.bindings:
                await queue.bind(self._settings.exchange, routing_key=key, timeout=timeout)
            tag = await queue.consume(self._on_message, no_ack=False, timeout=timeout)
            self._consumer = (queue, tag)
        self.connects += 1
        self.node = _safe(url)
        self._connected.set()
        return lost

    async def _close(self) -> None:
        self._connected.clear()
        self._publish_channel = None
        self._consumer = None
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        topic = topic_of(message.routing_key or "")
        parts = topic.split("/")
        principal = Principal(kind="gateway", id=parts[2], tenant=parts[1]) if len(parts) >= 4 else None

        settled = False

        async def settle(done: bool) -> None:
            nonlocal settled
            if settled:
                return
            settled = True
            try:
                if done:
                    await message.ack()
                else:
                    await message.reject(requeue=True)
            except ChannelInvalidStateError:  # its channel is gone with its node: RabbitMQ delivers it again
                self.lost_settles += 1
                _LOGGER.debug("a message of a closed channel cannot be settled; it will be delivered again")
            finally:
                self._unsettled -= 1
                if self._unsettled == 0:
                    self._all_settled.set()

        self._unsettled += 1
        self._all_settled.clear()
        if message.redelivered:
            self.redeliveries += 1
        await self._events.put(Received(topic, message.body, parts[2] if len(parts) >= 3 else "", principal, settle))
