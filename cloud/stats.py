"""The cloud's counters: what was ingested, refused and denied since start."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(slots=True)
class Stats:
    """Counters since start; mutated only on the event loop."""

    readings: int = 0
    """Readings newly stored."""
    duplicates: int = 0
    """Readings received again (idempotent re-sends), not stored twice."""
    packs: int = 0
    """Telemetry packs stored."""
    rejected_packs: int = 0
    """Packs that could not be decoded (their batch ids are sent back as ``rejected``)."""
    events: int = 0
    """Events newly stored."""
    event_duplicates: int = 0
    """Events received again (re-sent packs), not stored twice."""
    event_packs: int = 0
    """Event packs stored."""
    rejected_event_packs: int = 0
    """Event packs that could not be decoded (their batch ids are sent back as ``rejected``)."""
    health_reports: int = 0
    bad_envelopes: int = 0
    """Health or status payloads that could not be read."""
    acks_sent: int = 0
    commits: int = 0
    overflow_dropped: int = 0
    """Publishes dropped because the ingest queue was full (not acked: the gateway sends them again)."""
    denied_connects: int = 0
    denied_publishes: int = 0
    denied_subscribes: int = 0
    refused_tokens: int = 0
    """Access tokens refused (forged, expired, wrong audience or issuer, revoked) at CONNECT or the API."""
    closed_connections: int = 0
    """Connections closed because the token that opened them expired or was revoked."""
    removed_subscriptions: int = 0
    """Live subscriptions removed because a new policy set denies them."""

    def as_dict(self) -> dict[str, int]:
        """The counters as a JSON-ready dict."""
        return dataclasses.asdict(self)
