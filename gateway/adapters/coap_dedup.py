"""A bounded duplicate-detection cache for the aiocoap server.

RFC 7252 (section 4.5) has a server remember each confirmable request's response for
EXCHANGE_LIFETIME (247 s) so that a retransmission gets the same answer instead of being handled
twice. aiocoap keeps that in a plain dict (about 6 KB an entry: the response and, through it,
the request) plus one 247-second timer per request holding the sender's address: memory grows
with the post rate for four minutes, without a bound (370 MB at 250 posts/s), and a flood of
posts is a way to exhaust a Pi's memory. This cache keeps the same semantics within a bound:
entries expire in insertion order (no timers), and past ``limit`` the oldest exchange is
forgotten and counted; a late retransmission of a forgotten exchange is handled again, which is
harmless for SenML posts with times (the cloud stores each reading once).

It replaces ``MessageManager._deduplicate_message`` and ``_recent_messages`` of aiocoap 0.4
(pinned in constraints.txt); ``tests/gateway/test_coap.py`` checks a real retransmission.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import aiocoap
from aiocoap.numbers.constants import TransportTuning

_LOGGER = logging.getLogger(__name__)
EXCHANGE_LIFETIME_S = float(TransportTuning().EXCHANGE_LIFETIME)


class DuplicateCache:
    """Responses to recent confirmable requests by (remote, message id); bounded, expiring."""

    def __init__(
        self, limit: int, lifetime_s: float = EXCHANGE_LIFETIME_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.lifetime_s = lifetime_s
        self.evicted = 0
        self._clock = clock
        self._entries: dict[Any, list[Any]] = {}  # key -> [deadline, response or None], oldest first

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Any) -> bool:
        self._expire()
        return key in self._entries

    def __getitem__(self, key: Any) -> Any:
        return self._entries[key][1]

    def __setitem__(self, key: Any, response: Any) -> None:
        entry = self._entries.get(key)
        if entry is not None:  # aiocoap storing the response of a known exchange
            entry[1] = response
            return
        self._expire()
        if len(self._entries) >= self.limit:
            del self._entries[next(iter(self._entries))]
            if not self.evicted:
                _LOGGER.warning(
                    "CoAP: more than %d exchanges in %.0f s; forgetting the oldest early (a late "
                    "retransmission of one of them would be handled again)",
                    self.limit,
                    self.lifetime_s,
                )
            self.evicted += 1
        self._entries[key] = [self._clock() + self.lifetime_s, response]

    def pop(self, key: Any, default: Any = None) -> Any:
        """Forget ``key``."""
        entry = self._entries.pop(key, None)
        return default if entry is None else entry[1]

    def _expire(self) -> None:
        now = self._clock()
        entries = self._entries
        while entries:
            first = next(iter(entries))
            if entries[first][0] > now:
                return
            del entries[first]


def _deduplicate(manager: Any, cache: DuplicateCache, message: aiocoap.Message) -> bool:
    """aiocoap's duplicate check (same semantics), on the bounded cache and without a timer."""
    key = (message.remote, message.mid)
    if key in cache:
        if message.mtype is aiocoap.CON:
            response = cache[key]
            if response is not None:
                manager._send_initially(response)  # the same answer again
        return True
    cache[key] = None
    return False


def bound(context: Any, limit: int) -> list[DuplicateCache]:
    """Give every message manager of an aiocoap server context a bounded duplicate cache."""
    caches: list[DuplicateCache] = []
    for token_manager in getattr(context, "request_interfaces", []):
        manager = getattr(token_manager, "token_interface", None)
        if manager is None or not hasattr(manager, "_deduplicate_message") or not hasattr(manager, "_recent_messages"):
            continue
        cache = DuplicateCache(limit)
        manager._recent_messages = cache
        manager._deduplicate_message = functools.partial(_deduplicate, manager, cache)
        caches.append(cache)
    if not caches:
        _LOGGER.warning("CoAP: this aiocoap has no duplicate cache where expected; its memory is not bounded")
    return caches
