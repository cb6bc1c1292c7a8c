"""The policy decision point: Cedar policies held as data, decided with a bounded cache, changed at run time, audited.

Decisions are cached per (subject, action, resource key, coarse context) in a bounded LRU. The coarse
context is the time truncated to ``granularity`` seconds, the source address and the transport; the
request Cedar sees is built from exactly those values, so a cached decision is the decision Cedar
would give again. A policy change bumps the version and empties the cache.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cedarpy

from cloud.policy.audit import AuditLog
from cloud.policy.errors import PolicyInvalid, PolicyProblem
from cloud.policy.model import (
    BadResource,
    RequestContext,
    Resource,
    Subject,
    cedar_context_json,
    filter_resource,
    tenant_resource,
    topic_resource,
)

_LOGGER = logging.getLogger(__name__)

_ENTITY_CACHE_SIZE = 4096

_ID_ANNOTATION = re.compile(r'@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')


def package_text(name: str) -> str:
    """A text file shipped in this package (``schema.cedarschema``, ``defaults.cedar``)."""
    return resources.files("cloud.policy").joinpath(name).read_text(encoding="utf-8")


def default_schema() -> str:
    """Roost's Cedar schema."""
    return package_text("schema.cedarschema")


def default_policies() -> str:
    """Roost's default policy set."""
    return package_text("defaults.cedar")


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: allowed or not, the policies that decided (by @id), evaluation errors, the policy version."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    version: int = 0

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One version of the policy set: its number, text, who set it, when (Unix seconds) and why."""

    version: int
    text: str
    by: str
    at: float
    comment: str = ""

    @property
    def digest(self) -> str:
        """SHA-256 of the text, hex."""
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One policy of the active set: its @id, effect ("permit"/"forbid") and text."""

    id: str
    effect: str
    text: str


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """Decision cache counters."""

    hits: int
    misses: int
    size: int
    maxsize: int


@dataclass(frozen=True, slots=True)
class _Active:
    version: PolicyVersion
    policy_set: cedarpy.PolicySet
    names: dict[str, str]  # Cedar's positional id (policy0, ...) -> @id


def _chunks(text: str) -> list[tuple[int, str]]:
    """Split policy text at top-level ';' (outside strings and comments): (first line, text) per statement."""
    out: list[tuple[int, str]] = []
    start, line, start_line = 0, 1, None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c == '"':
            if start_line is None:
                start_line = line
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif c == ";":
            out.append((start_line or line, text[start : i + 1]))
            start, start_line = i + 1, None
        elif not c.isspace() and start_line is None:
            start_line = line
        i += 1
    if text[start:].strip() and start_line is not None:
        out.append((start_line, text[start:]))
    return out


def _chunk_name(index: int, line: int, chunk: str) -> str:
    found = _ID_ANNOTATION.search(chunk)
    return f'@id("{found.group(1)}")' if found else f"policy #{index + 1} (line {line})"


def _parse_problems(text: str, exc: ValueError) -> list[PolicyProblem]:
    """Name the statement that does not parse (Cedar's parse errors carry no position)."""
    for index, (line, chunk) in enumerate(_chunks(text)):
        try:
            cedarpy.PolicySet.from_str(chunk)
        except ValueError as inner:
            return [PolicyProblem(_chunk_name(index, line, chunk), f"line {line}: does not parse: {inner}")]
    return [PolicyProblem("policy set", f"does not parse: {exc}")]


def _analyse(text: str, schema: cedarpy.Schema) -> tuple[cedarpy.PolicySet | None, dict[str, str], list[PolicyProblem]]:
    """Parse and validate ``text``: the policy set, positional id -> @id, and the problems found."""
    try:
        policy_set = cedarpy.PolicySet.from_str(text)
        est: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        return None, {}, _parse_problems(text, exc)
    problems: list[PolicyProblem] = []
    names: dict[str, str] = {}
    seen: dict[str, str] = {}
    for pid, policy in est.get("staticPolicies", {}).items():
        name = policy.get("annotations", {}).get("id")
        if not name:
            problems.append(
                PolicyProblem(pid, 'has no @id("...") annotation: decisions and the audit log name policies by it')
            )
            continue
        if name in seen:
            problems.append(PolicyProblem(f'@id("{name}")', "is used by more than one policy"))
        seen[name] = pid
        names[pid] = name
    for tid in est.get("templates", {}):
        problems.append(
            PolicyProblem(tid, "templates (?principal, ?resource) are not supported: write a static policy")
        )
    result = cedarpy.validate_policies(text, schema)
    for error in result.errors:
        who = names.get(error.policy_id) or error.policy_id or "policy set"
        problems.append(PolicyProblem(who if who.startswith(("@", "policy")) else f'@id("{who}")', error.error))
    return policy_set, names, problems


def _named(policy_id: str, names: dict[str, str]) -> str:
    return names.get(policy_id, policy_id)


class DecisionPoint:
    """Decides ``(subject, action, resource, context)`` against a versioned Cedar policy set."""

    def __init__(
        self,
        policies: str | None = None,
        *,
        schema: str | None = None,
        audit: AuditLog | None = None,
        history_path: Path | None = None,
        cache_size: int = 65_536,
        granularity: float = 60.0,
        clock: Callable[[], float] = time.time,
        by: str = "roost-defaults",
    ) -> None:
        if cache_size < 0 or granularity <= 0:
            raise ValueError("cache_size must be >= 0 and granularity > 0")
        try:
            self._schema = cedarpy.Schema.from_str(schema if schema is not None else default_schema())
        except ValueError as exc:
            raise PolicyInvalid([PolicyProblem("schema", str(exc))]) from exc
        # The action hierarchy (from the schema), to which each request adds its principal and resource.
        self._actions = cedarpy.Entities.from_json_str("[]", self._schema)
        self._audit = audit if audit is not None else AuditLog()
        self._history_path = history_path
        self._cache: OrderedDict[tuple[Any, ...], Decision] = OrderedDict()
        self._entity_cache: OrderedDict[tuple[Any, ...], cedarpy.Entities] = OrderedDict()
        self._cache_size = cache_size
        self._granularity = granularity
        self._clock = clock
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._warned: set[str] = set()
        self._listeners: builtins.list[Callable[[PolicyVersion], None]] = []
        self._history: list[PolicyVersion] = self._load_history()
        if not self._history:
            first = PolicyVersion(1, policies if policies is not None else default_policies(), by, clock())
            self._history.append(first)
            self._persist(first)
        self._active = self._activate(self._history[-1])

    # ---- policy administration ----

    def _load_history(self) -> list[PolicyVersion]:
        if self._history_path is None or not self._history_path.exists():
            return []
        versions = []
        for number, line in enumerate(self._history_path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                versions.append(
                    PolicyVersion(int(raw["version"]), raw["text"], raw["by"], float(raw["at"]), raw["comment"])
                )
            except (ValueError, KeyError, TypeError) as exc:
                problem = PolicyProblem(f"{self._history_path}:{number}", f"unreadable history entry ({exc})")
                raise PolicyInvalid([problem]) from exc
        return versions

    def _persist(self, version: PolicyVersion) -> None:
        if self._history_path is None:
            return
        self._history_path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"version": version.version, "text": version.text, "by": version.by, "at": version.at}
        with self._history_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({**entry, "comment": version.comment}) + "\n")

    def _activate(self, version: PolicyVersion) -> _Active:
        policy_set, names, problems = _analyse(version.text, self._schema)
        if problems or policy_set is None:
            raise PolicyInvalid(problems)
        return _Active(version, policy_set, names)

    @property
    def version(self) -> int:
        """The active policy version (1 at start, +1 per replace)."""
        return self._active.version.version

    @property
    def audit(self) -> AuditLog:
        """The audit log decisions and changes are written to."""
        return self._audit

    def text(self) -> str:
        """The active policy set's text."""
        return self._active.version.text

    def list(self) -> builtins.list[PolicyInfo]:
        """The active policies: @id, effect and text of each."""
        source = self._active.version.text
        est: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(source))
        statements = [chunk.strip() for _, chunk in _chunks(source)]
        policies = list(est["staticPolicies"].items())
        infos = []
        for index, (pid, policy) in enumerate(policies):
            if len(statements) == len(policies):  # the text as written, comments included
                text = statements[index]
            else:
                one = {"staticPolicies": {pid: policy}, "templates": {}, "templateLinks": []}
                text = cedarpy.policies_from_json_str(json.dumps(one)).strip()
            infos.append(PolicyInfo(_named(pid, self._active.names), policy["effect"], text))
        return infos

    def validate(self, text: str) -> builtins.list[PolicyProblem]:
        """The problems of a candidate policy set (empty: it can replace the active one)."""
        return _analyse(text, self._schema)[2]

    def replace(self, text: str, *, by: str, comment: str = "") -> PolicyVersion:
        """Validate ``text`` and make it the active policy set; audit and raise PolicyInvalid if it is not valid."""
        policy_set, names, problems = _analyse(text, self._schema)
        if problems or policy_set is None:
            self._audit.record(
                "policy_rejected",
                who=by,
                what={"version": self.version},
                why=[str(p) for p in problems],
                comment=comment,
            )
            raise PolicyInvalid(problems)
        with self._lock:
            previous = self._active.version
            version = PolicyVersion(previous.version + 1, text, by, self._clock(), comment)
            self._persist(version)
            self._history.append(version)
            self._active = _Active(version, policy_set, names)
            self._cache.clear()
        self._audit.record(
            "policy_replaced",
            who=by,
            what={"version": version.version, "previous": previous.version, "sha256": version.digest},
            why=comment,
            policies=sorted(names.values()),
        )
        _LOGGER.info("policy version %d set by %s (%d policies)", version.version, by, len(names))
        for listener in list(self._listeners):
            try:
                listener(version)
            except Exception:  # one listener's failure must not undo the change or stop the others
                _LOGGER.exception("a policy-change listener failed")
        return version

    def add_listener(self, listener: Callable[[PolicyVersion], None]) -> None:
        """Call ``listener(version)`` after each replacement (the broker re-checks live subscriptions)."""
        self._listeners.append(listener)

    def history(self) -> builtins.list[PolicyVersion]:
        """Every version, oldest first."""
        with self._lock:
            return list(self._history)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the decision cache."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._cache_size)

    # ---- decisions ----

    def decide(
        self,
        subject: Subject,
        action: str,
        resource: Resource,
        context: RequestContext | None = None,
        *,
        target: str | None = None,
    ) -> Decision:
        """Whether ``subject`` may do ``action`` on ``resource`` in ``context``; every deny is audited.

        ``target`` is what the audit log shows as the resource (the topic as sent), default the resource.
        """
        ctx = context if context is not None else _NO_CONTEXT
        at = ctx.at if ctx.at is not None else self._clock()
        coarse = (at // self._granularity) * self._granularity
        key = (subject, action, resource.key, coarse, ctx.source_ip, ctx.transport)
        active = self._active
        with self._lock:
            decision = self._cache.get(key)
            if decision is not None:
                self._cache.move_to_end(key)
                self._hits += 1
            else:
                self._misses += 1
        if decision is None:
            decision = self._evaluate(active, subject, action, resource, coarse=coarse, ctx=ctx)
            if self._cache_size:
                with self._lock:
                    if self._active is active:  # not decided under a policy set replaced meanwhile
                        self._cache[key] = decision
                        if len(self._cache) > self._cache_size:
                            self._cache.popitem(last=False)
        if not decision.allowed:
            self._audit_deny(subject, action, target or str(resource), ctx, decision)
        return decision

    def _evaluate(
        self, active: _Active, subject: Subject, action: str, resource: Resource, *, coarse: float, ctx: RequestContext
    ) -> Decision:
        request = {
            "principal": subject.uid,
            "action": {"type": "Action", "id": action},
            "resource": resource.uid,
            "context": cedar_context_json(coarse, ctx.source_ip, ctx.transport),
        }
        try:
            entities = self._entities(subject, resource)
            result = cedarpy.is_authorized(request, active.policy_set, entities, schema=self._schema)
        except ValueError as exc:  # Cedar refused the request or entities: deny, and say why
            return Decision(False, (), (f"request refused by Cedar: {exc}",), active.version.version)
        diagnostics = result.diagnostics
        errors = tuple(str(e) for e in diagnostics.errors)
        for error in errors:
            if error not in self._warned and len(self._warned) < 1000:
                self._warned.add(error)
                _LOGGER.warning("policy version %d: %s", active.version.version, error)
        reasons = tuple(_named(pid, active.names) for pid in diagnostics.reasons)
        return Decision(result.allowed, reasons, errors, active.version.version)

    def _entities(self, subject: Subject, resource: Resource) -> cedarpy.Entities:
        """The parsed entity pair, cached apart from decisions: it outlives policy versions and time buckets.

        Parsing a pre-built handle and deciding with it is also about half the cost of handing Cedar JSON.
        """
        key = (subject, resource.key)
        with self._lock:
            entities = self._entity_cache.get(key)
            if entities is not None:
                self._entity_cache.move_to_end(key)
                return entities
        # Added to the action hierarchy without re-checking against the schema: the builders in model.py
        # produce these entities, and the tests check them against the schema.
        entities = self._actions.with_added_json_str(f"[{subject.entity_json()},{json.dumps(resource.entity())}]")
        with self._lock:
            self._entity_cache[key] = entities
            if len(self._entity_cache) > _ENTITY_CACHE_SIZE:
                self._entity_cache.popitem(last=False)
        return entities

    def _audit_deny(self, subject: Subject, action: str, target: str, ctx: RequestContext, decision: Decision) -> None:
        why: list[str] | str = list(decision.reasons) if decision.reasons else "no policy permits it"
        fields: dict[str, Any] = {"transport": ctx.transport}
        if ctx.source_ip is not None:
            fields["source_ip"] = ctx.source_ip
        if decision.errors:
            fields["errors"] = list(decision.errors)
        self._audit.record(
            "deny",
            who=str(subject),
            what={"action": action, "resource": target},
            why=why,
            version=decision.version,
            **fields,
        )

    def _refuse(self, subject: Subject, action: str, target: str, ctx: RequestContext | None, problem: str) -> Decision:
        decision = Decision(False, (), (problem,), self.version)
        self._audit_deny(subject, action, target, ctx if ctx is not None else _NO_CONTEXT, decision)
        return decision

    def decide_publish(self, subject: Subject, topic: str, context: RequestContext | None = None) -> Decision:
        """May ``subject`` publish on ``topic``? A topic that is not a Roost topic is denied."""
        try:
            resource = topic_resource(topic)
        except BadResource as exc:
            return self._refuse(subject, "publish", topic, context, str(exc))
        return self.decide(subject, "publish", resource, context, target=topic)

    def decide_subscribe(self, subject: Subject, topic_filter: str, context: RequestContext | None = None) -> Decision:
        """May ``subject`` subscribe to ``topic_filter``? A filter that matches no Roost topic is denied."""
        try:
            resource = filter_resource(topic_filter)
        except BadResource as exc:
            return self._refuse(subject, "subscribe", topic_filter, context, str(exc))
        return self.decide(subject, "subscribe", resource, context, target=topic_filter)

    def decide_api(self, subject: Subject, action: str, tenant: str, context: RequestContext | None = None) -> Decision:
        """May ``subject`` do the API ``action`` (read_readings, manage_policies, ...) in ``tenant``?"""
        try:
            resource = tenant_resource(tenant)
        except ValueError as exc:
            return self._refuse(subject, action, f"Tenant:{tenant}", context, str(exc))
        return self.decide(subject, action, resource, context)


_NO_CONTEXT = RequestContext()
