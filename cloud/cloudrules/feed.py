"""The rules worker's feed (``server.role = "rules"``): every gateway's packs and status from a queue of its own.

With several ingest workers each stores only its share of the stream, so rules that span gateways cannot run
inside them. The rules worker consumes its own quorum queue (``[rules] amqp_queue``), bound to the same
telemetry and status routing keys, and so sees every reading whichever ingest worker stores it. It decodes the
packs itself (a pack ingest refuses is skipped here too) and settles each message once the rules have it.

A pack a gateway sends again (same batch id, its ``ack`` was lost) is recognised among the last
:data:`RECENT_BATCHES` batches and not counted twice; ingest's store stays the judge of what was stored.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from cloud.broker.base import MessageBroker, Presence, Received
from cloud.config import IngestSection
from cloud.ingest import StoredListener
from wire import envelopes, senml, topics
from wire.errors import PayloadError

_LOGGER = logging.getLogger(__name__)

RECENT_BATCHES = 100_000
"""Batch ids remembered to skip packs sent again."""


@dataclass(slots=True)
class FeedStats:
    """What the feed has seen (served in the rules worker's /healthz)."""

    packs: int = 0
    readings: int = 0
    resent: int = 0
    refused: int = 0
    presence: int = 0


class RulesFeed:
    """Reads the rules queue until the broker's stream ends, telling ``listener`` readings and presence."""

    def __init__(self, broker: MessageBroker, listener: StoredListener, config: IngestSection) -> None:
        self._broker = broker
        self._listener = listener
        self._config = config
        self._recent: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self.stats = FeedStats()

    async def run(self) -> None:
        """Consume until the broker stops."""
        async for event in self._broker.events():
            try:
                self._take(event)
            except Exception:  # one bad message must never stop the rules
                _LOGGER.exception("the rules feed failed on a message from %r", event.client_id[:40])
            if isinstance(event, Received) and event.settle is not None:
                await event.settle(True)  # the rules have it (or it can never be read): not to be delivered again

    def _take(self, event: Received | Presence) -> None:
        if isinstance(event, Presence):
            p = event.principal
            if p.kind == "gateway":
                self.stats.presence += 1
                self._listener.presence(p.tenant, p.id, event.online, time.time())
            return
        try:
            topic = topics.parse(event.topic)
        except PayloadError:
            return
        if topic.kind == "status":
            if event.payload in (envelopes.ONLINE, envelopes.OFFLINE):
                self.stats.presence += 1
                self._listener.presence(topic.tenant, topic.gateway, event.payload == envelopes.ONLINE, time.time())
            return
        if topic.kind != "telemetry":
            return
        batch = event.topic.rsplit("/", 1)[1] if topic.tail else None
        if batch is not None:
            key = (topic.tenant, topic.gateway, batch)
            if key in self._recent:
                self.stats.resent += 1
                self._recent.move_to_end(key)
                return
        try:
            readings = senml.decode(
                event.payload, max_bytes=self._config.max_pack_bytes, max_records=self._config.max_records
            )
        except PayloadError as exc:
            self.stats.refused += 1
            _LOGGER.debug("the rules skip pack %r from %s/%s: %s", batch, topic.tenant, topic.gateway, exc.reason)
            return
        if batch is not None:
            self._recent[key] = None
            if len(self._recent) > RECENT_BATCHES:
                self._recent.popitem(last=False)
        self.stats.packs += 1
        self.stats.readings += len(readings)
        self._listener.stored(topic.tenant, topic.gateway, readings)
