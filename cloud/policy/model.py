"""What a decision is about, as Cedar entities: subjects (principals), resources (topics, filters, tenants), context.

Topic filters: a level that is a wildcard ('+', or covered by a trailing '#') is an *absent* attribute of
the ``TopicFilter`` resource, never a string such as "+". Cedar's validator then makes every policy test
``resource has gateway`` before comparing it, so a wildcard cannot pass for an id in a permit, and a
forbid that names a gateway has to decide what to do about filters that cover it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from wire import topics
from wire.errors import PayloadError
from wire.names import check_gateway, check_tenant

SubjectKind = Literal["gateway", "operator", "client", "observer"]
ROLES = ("owner", "admin", "operator", "viewer")
TRANSPORTS = ("mqtt-ws", "mqtt-tcp", "http", "internal", "unknown")

# Kinds whose last level is a per-message id (batch, request), left out of the resource so decisions cache.
_ID_KINDS = frozenset({"telemetry", "events", "cmd", "cmd-result"})
_ENTITY_TYPE: dict[str, str] = {
    "gateway": "Gateway",
    "operator": "Operator",
    "client": "Client",
    "observer": "Observer",
}

JSON = dict[str, Any]


class BadResource(ValueError):
    """A topic or filter that names no Roost topic (the message says why); it is denied without asking Cedar."""


def _tenant_ref(tenant: str) -> JSON:
    return {"__entity": {"type": "Tenant", "id": tenant}}


@dataclass(frozen=True, slots=True)
class Subject:
    """Who asks: a gateway, operator (with ``role``), API client (with ``scopes``) or observer, in one tenant."""

    kind: SubjectKind
    id: str
    tenant: str
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.kind not in _ENTITY_TYPE:
            raise ValueError(f"subject kind must be one of {sorted(_ENTITY_TYPE)}, not {self.kind!r}")
        check_tenant(self.tenant)
        if not self.id:
            raise ValueError("a subject needs an id")
        if self.kind == "gateway":
            check_gateway(self.id)
        if self.kind == "operator" and self.role not in ROLES:
            raise ValueError(f"an operator's role must be one of {', '.join(ROLES)}, not {self.role!r}")

    @property
    def uid(self) -> JSON:
        """The Cedar entity uid: ``{Kind}::"{tenant}/{id}"`` (ids are unique per tenant only)."""
        return {"type": _ENTITY_TYPE[self.kind], "id": f"{self.tenant}/{self.id}"}

    def entity(self) -> JSON:
        """The Cedar entity (JSON form) with its attributes and its tenant as parent."""
        return _subject_entity(self)

    def entity_json(self) -> str:
        """``entity()`` as JSON text (cached)."""
        return _subject_json(self)

    def __str__(self) -> str:
        return f"{self.kind}:{self.tenant}/{self.id}"


@lru_cache(maxsize=4096)
def _subject_json(subject: Subject) -> str:
    return json.dumps(_subject_entity(subject))


def _subject_entity(subject: Subject) -> JSON:
    attrs: JSON = {"tenant": _tenant_ref(subject.tenant)}
    if subject.kind == "gateway":
        attrs["gateway"] = subject.id
    else:
        attrs["name"] = subject.id
    if subject.kind == "operator":
        attrs["role"] = subject.role
    if subject.kind == "client":
        attrs["scopes"] = sorted(subject.scopes)
    return {"uid": subject.uid, "attrs": attrs, "parents": [{"type": "Tenant", "id": subject.tenant}]}


@dataclass(frozen=True, slots=True)
class Resource:
    """A Cedar resource: its entity type, id and attributes, and the key decisions about it are cached under."""

    type: str
    id: str
    attrs: tuple[tuple[str, Any], ...]
    key: tuple[Any, ...]

    @property
    def uid(self) -> JSON:
        """The Cedar entity uid."""
        return {"type": self.type, "id": self.id}

    def entity(self) -> JSON:
        """The Cedar entity (JSON form)."""
        return {"uid": self.uid, "attrs": dict(self.attrs), "parents": []}

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


def topic_resource(topic: str) -> Resource:
    """The ``Topic`` resource of a concrete topic (``wire.topics.parse``); BadResource if it is not a Roost topic."""
    try:
        parsed = topics.parse(topic)
    except PayloadError as exc:
        raise BadResource(str(exc)) from exc
    if "+" in topic or "#" in topic:
        raise BadResource(f"topic {topic!r} holds an MQTT wildcard")
    tail = parsed.tail if parsed.kind == "state" else None
    has_id = parsed.kind in _ID_KINDS and parsed.tail is not None
    attrs: list[tuple[str, Any]] = [
        ("tenant", _tenant_ref(parsed.tenant)),
        ("gateway", parsed.gateway),
        ("kind", parsed.kind),
        ("has_id", has_id),
    ]
    if tail is not None:
        attrs.append(("tail", tail))
    rid = f"{topics.ROOT}/{parsed.tenant}/{parsed.gateway}/{parsed.kind}" + (f"/{tail}" if tail else "")
    return Resource("Topic", rid, tuple(attrs), ("topic", rid, has_id))


def filter_resource(topic_filter: str) -> Resource:
    """The ``TopicFilter`` resource of a subscription filter; BadResource if malformed or matching no Roost topic."""
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise BadResource(f"filter {topic_filter!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise BadResource(f"filter {topic_filter!r}: '+' must be a whole level")
    multi = levels[-1] == "#"
    fixed = levels[:-1] if multi else levels
    # Pad to roost/{tenant}/{gateway}/{kind}: levels a trailing '#' covers are wildcards.
    padded = fixed + ["+"] * max(0, 4 - len(fixed)) if multi else fixed
    if len(padded) < 4:
        raise BadResource(f"filter {topic_filter!r} is shorter than roost/{{tenant}}/{{gateway}}/{{kind}}")
    root, tenant, gateway, kind, *rest = padded
    if root not in (topics.ROOT, "+"):
        raise BadResource(f"filter {topic_filter!r} is not under {topics.ROOT}/")
    attrs: list[tuple[str, Any]] = [("filter", topic_filter)]
    try:
        if tenant != "+":
            check_tenant(tenant)
            attrs.append(("tenant", _tenant_ref(tenant)))
        if gateway != "+":
            check_gateway(gateway)
            attrs.append(("gateway", gateway))
    except ValueError as exc:
        raise BadResource(f"filter {topic_filter!r}: {exc}") from exc
    if kind != "+":
        if kind not in topics.KINDS:
            raise BadResource(f"filter {topic_filter!r}: unknown kind {kind!r}")
        attrs.append(("kind", kind))
        if kind == "state" and rest and not multi and "+" not in rest:
            attrs.append(("tail", "/".join(rest)))
    return Resource("TopicFilter", topic_filter, tuple(attrs), ("filter", topic_filter))


def tenant_resource(tenant: str) -> Resource:
    """The ``Tenant`` resource the API's actions are about."""
    check_tenant(tenant)
    return Resource("Tenant", tenant, (), ("tenant", tenant))


def _check_ip(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"source_ip {value!r} is not an IP address") from exc


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The environment of a request: when (Unix seconds, None: now), from which address, over which transport."""

    at: float | None = None
    source_ip: str | None = None
    transport: str = "unknown"

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {self.transport!r}")
        object.__setattr__(self, "source_ip", _check_ip(self.source_ip))


@lru_cache(maxsize=1024)
def cedar_context_json(at: float, source_ip: str | None, transport: str) -> str:
    """``cedar_context`` as the JSON text Cedar reads (cached: one per time bucket, address and transport)."""
    return json.dumps(cedar_context(at, source_ip, transport))


def cedar_context(at: float, source_ip: str | None, transport: str) -> JSON:
    """The Cedar context record for a (coarse) time, a source address and a transport."""
    when = datetime.fromtimestamp(at, UTC)
    record: JSON = {
        "now": {"__extn": {"fn": "datetime", "arg": when.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        "hour": when.hour,
        "weekday": when.weekday(),
        "transport": transport,
    }
    if source_ip is not None:
        record["source_ip"] = {"__extn": {"fn": "ip", "arg": source_ip}}
    return record
