"""MQTT topics of the wire contract: ``roost/{tenant}/{gw}/{kind}[/{rest}]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wire.errors import PayloadError
from wire.names import check_gateway, check_tenant

ROOT = "roost"
DEFAULT_TENANT = "default"

Kind = Literal["telemetry", "events", "ack", "health", "status", "state", "cmd", "cmd-result", "token", "token-result"]
KINDS: frozenset[str] = frozenset(
    ["telemetry", "events", "ack", "health", "status", "state", "cmd", "cmd-result", "token", "token-result"]
)
# Kinds whose last level is optional (telemetry/{batch}, events/{batch}) or required (cmd/{id}, state/{x}).
_TAILED = {"telemetry": False, "events": False, "cmd": True, "cmd-result": True, "state": True}


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed Roost topic."""

    tenant: str
    gateway: str
    kind: str
    tail: str | None = None

    def __str__(self) -> str:
        base = f"{ROOT}/{self.tenant}/{self.gateway}/{self.kind}"
        return base if self.tail is None else f"{base}/{self.tail}"


def topic(tenant: str, gateway: str, kind: Kind, tail: str | None = None) -> str:
    """Build a topic string, checking the tenant and gateway ids, the kind and its last level.

    Raises InvalidName for a bad tenant or gateway id, ValueError for an unknown kind, a missing
    or unexpected last level, or a last level that is empty or holds an MQTT wildcard.
    """
    check_tenant(tenant)
    check_gateway(gateway)
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    if tail is None:
        if _TAILED.get(kind):
            raise ValueError(f"a {kind} topic needs a last level")
    else:
        if kind not in _TAILED:
            raise ValueError(f"a {kind} topic takes no further levels")
        if not tail or "+" in tail or "#" in tail or "" in tail.split("/"):
            raise ValueError(f"topic level {tail!r} is empty or holds an MQTT wildcard ('+', '#')")
    return str(Topic(tenant, gateway, kind, tail))


def telemetry(tenant: str, gateway: str, batch: str | None = None) -> str:
    """``roost/{tenant}/{gw}/telemetry[/{batch}]``."""
    return topic(tenant, gateway, "telemetry", batch)


def events(tenant: str, gateway: str, batch: str | None = None) -> str:
    """``roost/{tenant}/{gw}/events[/{batch}]``."""
    return topic(tenant, gateway, "events", batch)


def parse(text: str) -> Topic:
    """Parse a topic string into its parts, or raise PayloadError naming what is wrong."""
    parts = text.split("/")
    if len(parts) < 4 or parts[0] != ROOT:
        raise PayloadError(f"topic {text!r} is not roost/{{tenant}}/{{gateway}}/{{kind}}")
    _, tenant, gateway, kind, *rest = parts
    if kind not in KINDS:
        raise PayloadError(f"topic {text!r}: unknown kind {kind!r}")
    try:
        check_tenant(tenant)
        check_gateway(gateway)
    except ValueError as exc:
        raise PayloadError(f"topic {text!r}: {exc}") from exc
    tail = "/".join(rest) if rest else None
    if kind in _TAILED and _TAILED[kind] and not tail:
        raise PayloadError(f"topic {text!r}: {kind} needs a last level")
    if kind not in _TAILED and tail is not None:
        raise PayloadError(f"topic {text!r}: {kind} takes no further levels")
    return Topic(tenant, gateway, kind, tail)


def tenant_filter(tenant: str, kind: str = "#") -> str:
    """A subscription filter for one kind of every gateway of a tenant."""
    check_tenant(tenant)
    return f"{ROOT}/{tenant}/+/{kind}" if kind == "#" else f"{ROOT}/{tenant}/+/{kind}/#"
