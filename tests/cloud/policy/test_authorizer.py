"""PolicyAuthorizer against the allow-list's matrix (tests/cloud/test_auth.py), plus cross-tenant cases."""

from __future__ import annotations

import pytest

from cloud.authz import AllowListAuthorizer, Principal
from cloud.config import AuthSection, GatewayEntry, ObserverEntry
from cloud.policy import DecisionPoint, RequestContext
from cloud.policy.authorizer import PolicyAuthorizer, subject_of

TOKEN = "observer-token-default"
OTHER_TOKEN = "observer-token-other"

GW1 = Principal("gateway", "gw-1", "default")
GW_X = Principal("gateway", "gw-x", "other")
OBSERVER = Principal("observer", "ops", "default")
OTHER_OBSERVER = Principal("observer", "ops", "other")


@pytest.fixture(scope="module")
def allow_list() -> AllowListAuthorizer:
    return AllowListAuthorizer(
        AuthSection(
            gateways=(
                GatewayEntry(id="gw-1", password="pw-gw-1-secret"),
                GatewayEntry(id="gw-2", password="pw-gw-2-secret"),
                GatewayEntry(id="gw-x", tenant="other"),
            ),
            observers=(ObserverEntry(token=TOKEN, name="ops"), ObserverEntry(token=OTHER_TOKEN, tenant="other")),
        )
    )


@pytest.fixture
def authorizer(allow_list: AllowListAuthorizer) -> PolicyAuthorizer:
    return PolicyAuthorizer(DecisionPoint(), allow_list)


# (principal, topic, allowed): the allow-list's publish matrix, then cross-tenant cases.
PUBLISH = [
    (GW1, "roost/default/gw-1/telemetry/mine", True),
    (GW1, "roost/default/gw-1/telemetry", True),
    (GW1, "roost/default/gw-1/events/e1", True),
    (GW1, "roost/default/gw-1/health", True),
    (GW1, "roost/default/gw-1/status", True),
    (GW1, "roost/default/gw-1/state/reported", True),
    (GW1, "roost/default/gw-1/cmd-result/r1", True),
    (GW1, "roost/default/gw-1/token", True),
    (GW1, "roost/default/gw-2/telemetry/spoof", False),
    (GW1, "roost/other/gw-1/telemetry/spoof", False),
    (GW1, "roost/default/gw-1/ack", False),
    (GW1, "roost/default/gw-1/state/desired", False),
    (GW1, "roost/default/gw-1/cmd/x", False),
    (GW1, "roost/default/gw-1/token-result", False),
    (GW1, "roost/default/gw-1/telemetry/+", False),
    (GW1, "roost/default/gw-1/nonsense", False),
    (GW1, "elsewhere/gw-1", False),
    (OBSERVER, "roost/default/gw-1/telemetry/forged", False),
    (OBSERVER, "roost/default/gw-1/cmd/x", False),
    # cross-tenant
    (GW_X, "roost/other/gw-x/telemetry/b", True),
    (GW_X, "roost/default/gw-x/telemetry/b", False),
    (GW_X, "roost/default/gw-1/telemetry/b", False),
    (OTHER_OBSERVER, "roost/other/gw-x/telemetry/b", False),
]

SUBSCRIBE = [
    (OBSERVER, "roost/default/#", True),
    (OBSERVER, "roost/default/+/telemetry/#", True),
    (OBSERVER, "roost/other/#", False),
    (OBSERVER, "#", False),
    (OBSERVER, "roost/#", False),
    (OBSERVER, "roost/+/gw-1/telemetry/#", False),
    (GW1, "roost/default/gw-1/ack", True),
    (GW1, "roost/default/gw-1/cmd/#", True),
    (GW1, "roost/default/gw-1/cmd/+", True),
    (GW1, "roost/default/gw-1/state/desired", True),
    (GW1, "roost/default/gw-1/token-result", True),
    (GW1, "roost/default/gw-2/ack", False),
    (GW1, "roost/default/+/ack", False),
    (GW1, "roost/default/#", False),
    (GW1, "roost/other/gw-1/ack", False),
    (GW1, "roost/default/gw-1/telemetry/#", False),
    (GW1, "roost/default/gw-1/#", False),
    (GW1, "roost/default/gw-1/state/#", False),  # also covers state/reported
    (GW1, "roost/default/gw-1/state/+", False),
    (GW1, "roost/default/gw-1/+/desired", False),
    # cross-tenant
    (GW_X, "roost/other/gw-x/cmd/#", True),
    (GW_X, "roost/default/gw-x/cmd/#", False),
    (OTHER_OBSERVER, "roost/other/#", True),
    (OTHER_OBSERVER, "roost/default/#", False),
    (OTHER_OBSERVER, "roost/+/+/telemetry/#", False),
]


@pytest.mark.parametrize(("principal", "topic", "allowed"), PUBLISH)
def test_publish_matrix(authorizer: PolicyAuthorizer, principal: Principal, topic: str, allowed: bool) -> None:
    assert authorizer.may_publish(principal, topic) is allowed


@pytest.mark.parametrize(("principal", "topic_filter", "allowed"), SUBSCRIBE)
def test_subscribe_matrix(authorizer: PolicyAuthorizer, principal: Principal, topic_filter: str, allowed: bool) -> None:
    assert authorizer.may_subscribe(principal, topic_filter) is allowed


def test_publish_agrees_with_the_allow_list(authorizer: PolicyAuthorizer, allow_list: AllowListAuthorizer) -> None:
    # The allow-list lets a gateway "publish" on telemetry/+ (a wildcard is no topic; the policy denies it).
    compared = [(p, t, a) for p, t, a in PUBLISH if "+" not in t]
    assert len(compared) == len(PUBLISH) - 1
    for principal, topic, allowed in compared:
        assert allow_list.may_publish(principal, topic) is allowed, topic
        assert authorizer.may_publish(principal, topic) is allowed, topic


def test_subscribe_agrees_with_the_allow_list_where_both_decide(
    authorizer: PolicyAuthorizer, allow_list: AllowListAuthorizer
) -> None:
    # The allow-list lets a gateway subscribe to cmd/+ through its "cmd plus one level" rule, and has no
    # opinion on the finer state/# cases: compare the rest.
    finer = {"roost/default/gw-1/state/#", "roost/default/gw-1/state/+", "roost/default/gw-1/+/desired"}
    compared = [(p, f, a) for p, f, a in SUBSCRIBE if f not in finer]
    assert len(compared) > 20
    for principal, topic_filter, allowed in compared:
        assert allow_list.may_subscribe(principal, topic_filter) is allowed, topic_filter
        assert authorizer.may_subscribe(principal, topic_filter) is allowed, topic_filter


def test_authentication_is_delegated(authorizer: PolicyAuthorizer) -> None:
    assert authorizer.authenticate("gw-1", "gw-1", "pw-gw-1-secret") == GW1
    assert authorizer.authenticate("gw-1", "gw-1", "wrong-password") is None
    assert authorizer.authenticate("x", "anyone", TOKEN) == OBSERVER
    assert authorizer.authenticate_bearer(OTHER_TOKEN) == Principal("observer", "observer", "other")
    assert authorizer.authenticate_bearer("nope-nope-nope") is None
    assert authorizer.api_requires_token is True


def test_api_actions_of_an_observer(authorizer: PolicyAuthorizer) -> None:
    assert authorizer.allowed_api(OBSERVER, "read_readings", "default")
    assert authorizer.allowed_api(OBSERVER, "read_gateways", "default")
    assert not authorizer.allowed_api(OBSERVER, "read_readings", "other")
    assert not authorizer.allowed_api(OBSERVER, "send_command", "default")
    assert not authorizer.allowed_api(OBSERVER, "manage_policies", "default")
    assert not authorizer.allowed_api(OBSERVER, "no_such_action", "default")
    assert not authorizer.allowed_api(OBSERVER, "read_readings", "Not A Tenant")


def test_denies_reach_the_audit_log(authorizer: PolicyAuthorizer) -> None:
    assert not authorizer.may_publish(GW1, "roost/other/gw-1/telemetry/spoof")
    assert not authorizer.may_subscribe(OBSERVER, "#")
    denies = authorizer.decision_point.audit.recent("deny")
    assert [d["what"] for d in denies] == [
        {"action": "publish", "resource": "roost/other/gw-1/telemetry/spoof"},
        {"action": "subscribe", "resource": "#"},
    ]
    assert denies[0]["who"] == "gateway:default/gw-1"
    assert denies[0]["why"] == ["tenant-isolation-publish"]
    assert denies[0]["transport"] == "mqtt-ws"


def test_context_is_passed_through(allow_list: AllowListAuthorizer) -> None:
    policies = DecisionPoint().text() + (
        '\n@id("no-tcp-publish")\n'
        'forbid (principal, action == Action::"publish", resource) when { context.transport == "mqtt-tcp" };\n'
    )
    authorizer = PolicyAuthorizer(DecisionPoint(policies), allow_list)
    topic = "roost/default/gw-1/telemetry/b"
    assert authorizer.may_publish(GW1, topic)
    assert not authorizer.may_publish(GW1, topic, context=RequestContext(transport="mqtt-tcp"))


def test_subject_of_carries_role_and_scopes_when_the_principal_has_them() -> None:
    class Extended:
        kind = "operator"
        id = "ann"
        tenant = "default"
        role = "admin"
        scopes = ("x",)

    subject = subject_of(Extended())  # type: ignore[arg-type]
    assert (subject.kind, subject.role, subject.scopes) == ("operator", "admin", frozenset({"x"}))
    assert subject_of(GW1).role is None
