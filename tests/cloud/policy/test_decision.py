"""The decision point: default policies by role and scope, context conditions, caching, run-time change, audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.policy import (
    AuditLog,
    DecisionPoint,
    PolicyInvalid,
    RequestContext,
    Subject,
    default_policies,
    default_schema,
    tenant_resource,
)

READS = ["read_readings", "read_gateways", "read_policies"]
COMMANDS = ["send_command", "write_desired_state"]
ADMIN = ["manage_policies", "approve_enrollment", "manage_gateways", "manage_operators", "manage_clients", "read_audit"]


def operator(role: str, tenant: str = "default") -> Subject:
    return Subject("operator", f"{role}@example.org", tenant, role=role)


def client(*scopes: str, tenant: str = "default") -> Subject:
    return Subject("client", "partner", tenant, scopes=frozenset(scopes))


def at(hour: int, minute: int = 0) -> float:
    return datetime(2025, 3, 4, hour, minute, 30, tzinfo=UTC).timestamp()  # a Tuesday


@pytest.fixture
def dp() -> DecisionPoint:
    return DecisionPoint()


def test_package_data_loads_and_the_defaults_validate(dp: DecisionPoint) -> None:
    assert "entity TopicFilter" in default_schema()
    assert dp.validate(default_policies()) == []
    ids = [p.id for p in dp.list()]
    assert len(ids) == len(set(ids)) > 10
    assert {"tenant-isolation-publish", "gateway-publishes-its-uplink", "admin-administers"} <= set(ids)
    forbid = next(p for p in dp.list() if p.id == "observer-never-writes")
    assert forbid.effect == "forbid" and forbid.text.startswith('@id("observer-never-writes")')


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", set(READS)),
        ("operator", set(READS + COMMANDS)),
        ("admin", set(READS + COMMANDS + ADMIN)),
        ("owner", set(READS + COMMANDS + ADMIN)),
    ],
)
def test_operators_act_within_their_role(dp: DecisionPoint, role: str, allowed: set[str]) -> None:
    for action in READS + COMMANDS + ADMIN:
        assert dp.decide_api(operator(role), action, "default").allowed is (action in allowed), action
        assert not dp.decide_api(operator(role), action, "other").allowed, action  # never another tenant


def test_operators_watch_their_tenants_topics_and_never_publish(dp: DecisionPoint) -> None:
    for role in ("viewer", "owner"):
        assert dp.decide_subscribe(operator(role), "roost/default/#").allowed
        assert not dp.decide_subscribe(operator(role), "roost/other/#").allowed
        assert not dp.decide_subscribe(operator(role), "#").allowed
        assert not dp.decide_publish(operator(role), "roost/default/gw-1/cmd/r1").allowed


def test_observers_read_only(dp: DecisionPoint) -> None:
    observer = Subject("observer", "demo", "default")
    assert all(dp.decide_api(observer, a, "default").allowed for a in READS)
    assert not any(dp.decide_api(observer, a, "default").allowed for a in COMMANDS + ADMIN)
    assert not any(dp.decide_api(observer, a, "other").allowed for a in READS)
    denied = dp.decide_publish(observer, "roost/default/gw-1/telemetry")
    assert not denied.allowed and denied.reasons == ("observer-never-writes",)


def test_clients_get_what_their_scopes_allow(dp: DecisionPoint) -> None:
    nothing = client()
    readings = client("readings:read")
    everything = client("readings:read", "gateways:read", "commands:write", "topics:read")
    assert not any(dp.decide_api(nothing, a, "default").allowed for a in READS + COMMANDS + ADMIN)
    assert dp.decide_api(readings, "read_readings", "default").allowed
    assert not dp.decide_api(readings, "read_gateways", "default").allowed
    assert not dp.decide_api(readings, "send_command", "default").allowed
    for action in ["read_readings", "read_gateways", *COMMANDS]:
        assert dp.decide_api(everything, action, "default").allowed, action
        assert not dp.decide_api(everything, action, "other").allowed, action
    assert not any(dp.decide_api(everything, a, "default").allowed for a in ADMIN)
    assert dp.decide_subscribe(everything, "roost/default/+/telemetry/#").allowed
    assert not dp.decide_subscribe(readings, "roost/default/+/telemetry/#").allowed
    assert not dp.decide_subscribe(everything, "roost/default/+/cmd/#").allowed
    assert not dp.decide_subscribe(everything, "roost/default/#").allowed  # covers cmd and token topics
    assert not dp.decide_subscribe(everything, "roost/other/+/telemetry/#").allowed
    assert not dp.decide_publish(everything, "roost/default/gw-1/telemetry").allowed


def test_a_gateway_with_the_same_id_in_another_tenant_is_another_gateway(dp: DecisionPoint) -> None:
    here, there = Subject("gateway", "gw-1", "default"), Subject("gateway", "gw-1", "other")
    assert dp.decide_publish(here, "roost/default/gw-1/telemetry").allowed
    assert not dp.decide_publish(there, "roost/default/gw-1/telemetry").allowed
    assert dp.decide_publish(there, "roost/other/gw-1/telemetry").allowed
    assert not dp.decide_subscribe(there, "roost/default/gw-1/cmd/#").allowed


ADMIN_NETWORKS = """
@id("admin-only-from-the-office")
forbid (principal, action in Action::"administer", resource)
unless {
  context has source_ip &&
  (context.source_ip.isInRange(ip("10.20.0.0/16")) || context.source_ip.isLoopback())
};
"""

COMMAND_HOURS = """
@id("commands-in-working-hours")
forbid (principal is Operator, action in Action::"command", resource)
unless { context.weekday < 5 && context.hour >= 7 && context.hour < 19 };
"""


def test_a_context_condition_on_the_source_network(dp: DecisionPoint) -> None:
    dp.replace(dp.text() + ADMIN_NETWORKS, by="owner@example.org", comment="admin from the office only")
    owner = operator("owner")
    office = RequestContext(source_ip="10.20.3.4", transport="http")
    home = RequestContext(source_ip="203.0.113.9", transport="http")
    assert dp.decide_api(owner, "manage_policies", "default", office).allowed
    assert dp.decide_api(owner, "manage_policies", "default", RequestContext(source_ip="::1")).allowed
    denied = dp.decide_api(owner, "manage_policies", "default", home)
    assert not denied.allowed and denied.reasons == ("admin-only-from-the-office",)
    assert not dp.decide_api(owner, "manage_policies", "default").allowed  # address unknown
    assert dp.decide_api(owner, "read_readings", "default", home).allowed  # reading is not administration
    assert dp.audit.recent("deny")[-2]["source_ip"] == "203.0.113.9"


def test_a_time_window(dp: DecisionPoint) -> None:
    dp.replace(dp.text() + COMMAND_HOURS, by="owner@example.org")
    op = operator("operator")
    assert dp.decide_api(op, "send_command", "default", RequestContext(at=at(9))).allowed
    assert not dp.decide_api(op, "send_command", "default", RequestContext(at=at(22))).allowed
    sunday = datetime(2025, 3, 9, 10, tzinfo=UTC).timestamp()
    assert not dp.decide_api(op, "send_command", "default", RequestContext(at=sunday)).allowed
    assert dp.decide_api(op, "read_readings", "default", RequestContext(at=at(22))).allowed


def test_decisions_are_cached_per_gateway_and_kind_not_per_batch(dp: DecisionPoint) -> None:
    gw = Subject("gateway", "gw-1", "default")
    ctx = RequestContext(at=at(10), transport="mqtt-ws")
    for batch in range(50):
        assert dp.decide_publish(gw, f"roost/default/gw-1/telemetry/b{batch}", ctx).allowed
    info = dp.cache_info()
    assert (info.misses, info.hits, info.size) == (1, 49, 1)
    dp.decide_publish(gw, "roost/default/gw-1/telemetry/b1", RequestContext(at=at(10, 1), transport="mqtt-ws"))
    assert dp.cache_info().misses == 2  # a new minute is a new context


def test_the_cache_is_bounded() -> None:
    dp = DecisionPoint(cache_size=8)
    ctx = RequestContext(at=at(10))
    for n in range(20):
        dp.decide_publish(Subject("gateway", f"gw-{n}", "default"), f"roost/default/gw-{n}/health", ctx)
    assert dp.cache_info().size == 8
    dp.decide_publish(Subject("gateway", "gw-19", "default"), "roost/default/gw-19/health", ctx)
    assert dp.cache_info().hits == 1
    dp.decide_publish(Subject("gateway", "gw-0", "default"), "roost/default/gw-0/health", ctx)
    assert dp.cache_info().hits == 1  # evicted


def test_a_replaced_policy_changes_the_next_decision_without_a_restart(dp: DecisionPoint) -> None:
    gw = Subject("gateway", "gw-1", "default")
    topic = "roost/default/gw-1/telemetry/b1"
    assert dp.decide_publish(gw, topic).allowed
    assert dp.decide_publish(gw, topic).allowed
    assert dp.cache_info().hits == 1
    quarantine = '@id("quarantine-gw-1")\nforbid (principal == Gateway::"default/gw-1", action, resource);\n'
    version = dp.replace(dp.text() + quarantine, by="admin@example.org", comment="stolen")
    assert version.version == dp.version == 2
    assert dp.cache_info().size == 0
    decision = dp.decide_publish(gw, topic)
    assert not decision.allowed and decision.reasons == ("quarantine-gw-1",) and decision.version == 2
    dp.replace(dp.history()[0].text, by="admin@example.org", comment="found again")
    assert dp.decide_publish(gw, topic).allowed
    assert [(v.version, v.by, v.comment) for v in dp.history()] == [
        (1, "roost-defaults", ""),
        (2, "admin@example.org", "stolen"),
        (3, "admin@example.org", "found again"),
    ]
    changes = dp.audit.recent("policy_replaced")
    assert [c["what"]["version"] for c in changes] == [2, 3]
    assert changes[0]["who"] == "admin@example.org" and changes[0]["why"] == "stolen"
    assert "quarantine-gw-1" in changes[0]["policies"]


@pytest.mark.parametrize(
    ("text", "policy", "problem"),
    [
        ('@id("a")\npermit (principal, action, resource)\nwhen { context.x == };\n', '@id("a")', "does not parse"),
        (
            '@id("ok") permit (principal, action, resource);\n// a comment; with a semicolon\n'
            '@id("typo")\npermit (principal, action == Action::"publish", resource is Topic)\n'
            'when { resource.knd == "x" };',
            '@id("typo")',
            "knd",
        ),
        ("permit (principal, action, resource);", "policy0", "@id"),
        (
            '@id("twice") permit (principal, action, resource);\n@id("twice") forbid (principal, action, resource);',
            '@id("twice")',
            "more than one",
        ),
        ('@id("t") permit (principal == ?principal, action, resource);', "", "templates"),
        ('@id("bad-action") permit (principal, action == Action::"fly", resource);', '@id("bad-action")', "fly"),
    ],
)
def test_invalid_policies_are_refused_naming_the_policy(
    dp: DecisionPoint, text: str, policy: str, problem: str
) -> None:
    problems = dp.validate(text)
    assert problems, text
    assert any(policy in p.policy and problem in p.problem for p in problems), problems
    with pytest.raises(PolicyInvalid) as caught:
        dp.replace(text, by="mallory@example.org")
    assert caught.value.problems == problems
    assert dp.version == 1
    rejected = dp.audit.recent("policy_rejected")[-1]
    assert rejected["who"] == "mallory@example.org" and rejected["why"] == [str(p) for p in problems]


def test_history_and_audit_persist(tmp_path: Path) -> None:
    history, log = tmp_path / "policy" / "history.jsonl", tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        dp = DecisionPoint(audit=audit, history_path=history)
        dp.replace(dp.text() + COMMAND_HOURS, by="owner@example.org", comment="night shift off")
        assert not dp.decide_publish(Subject("gateway", "gw-1", "default"), "roost/default/gw-2/health").allowed
    again = DecisionPoint(history_path=history)
    assert again.version == 2 and "commands-in-working-hours" in {p.id for p in again.list()}
    assert [v.comment for v in again.history()] == ["", "night shift off"]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["policy_replaced", "deny"]
    assert lines[1]["who"] == "gateway:default/gw-1"
    assert lines[1]["what"] == {"action": "publish", "resource": "roost/default/gw-2/health"}
    assert lines[1]["at"].endswith("Z")


def test_a_corrupt_history_is_an_error_naming_the_line(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text('{"version": 1}\n')
    with pytest.raises(PolicyInvalid, match=r"history.jsonl:1"):
        DecisionPoint(history_path=history)


def test_every_deny_is_audited_with_why(dp: DecisionPoint) -> None:
    gw = Subject("gateway", "gw-1", "default")
    for _ in range(3):  # cached or not, every deny
        dp.decide_publish(gw, "roost/default/gw-1/ack")
    dp.decide_publish(gw, "not/a/roost/topic")
    dp.decide_subscribe(gw, "roost/default/gw-1/cm+d")
    denies = dp.audit.recent("deny")
    assert len(denies) == 5
    assert denies[0]["why"] == "no policy permits it"
    assert "errors" in denies[3] and "roost" in denies[3]["errors"][0]
    assert "'+' must be a whole level" in denies[4]["errors"][0]
    allowed = dp.decide_publish(gw, "roost/default/gw-1/health")
    assert allowed.allowed and len(dp.audit.recent("deny")) == 5


def test_api_resource_for_a_bad_tenant_is_refused(dp: DecisionPoint) -> None:
    with pytest.raises(ValueError, match="tenant"):
        tenant_resource("Not/A/Tenant")
    assert not dp.decide_api(operator("owner"), "read_readings", "Not/A/Tenant").allowed


def test_subjects_and_contexts_are_checked() -> None:
    with pytest.raises(ValueError, match="role"):
        Subject("operator", "ann", "default", role="superuser")
    with pytest.raises(ValueError, match="source_ip"):
        RequestContext(source_ip="not-an-ip")
    with pytest.raises(ValueError, match="transport"):
        RequestContext(transport="carrier-pigeon")
    with pytest.raises(ValueError):
        Subject("gateway", "gw/1", "default")
