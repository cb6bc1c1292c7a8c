"""Topics and filters as Cedar resources: a wildcard level is an absent attribute."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.policy.model import BadResource, filter_resource, topic_resource

T = {"__entity": {"type": "Tenant", "id": "default"}}


@pytest.mark.parametrize(
    ("topic_filter", "attrs"),
    [
        ("#", {}),
        ("roost/#", {}),
        ("+/default/#", {"tenant": T}),
        ("roost/default/#", {"tenant": T}),
        ("roost/default/+/telemetry/#", {"tenant": T, "kind": "telemetry"}),
        ("roost/default/gw-1/#", {"tenant": T, "gateway": "gw-1"}),
        ("roost/default/gw-1/cmd/#", {"tenant": T, "gateway": "gw-1", "kind": "cmd"}),
        ("roost/default/gw-1/cmd/r1", {"tenant": T, "gateway": "gw-1", "kind": "cmd"}),
        ("roost/default/gw-1/state/desired", {"tenant": T, "gateway": "gw-1", "kind": "state", "tail": "desired"}),
        ("roost/default/gw-1/state/+", {"tenant": T, "gateway": "gw-1", "kind": "state"}),
        ("roost/default/gw-1/state/#", {"tenant": T, "gateway": "gw-1", "kind": "state"}),
        ("roost/+/gw-1/ack", {"gateway": "gw-1", "kind": "ack"}),
    ],
)
def test_filters(topic_filter: str, attrs: dict[str, Any]) -> None:
    resource = filter_resource(topic_filter)
    assert resource.entity()["attrs"] == {"filter": topic_filter, **attrs}
    assert resource.type == "TopicFilter"


@pytest.mark.parametrize(
    "topic_filter",
    [
        "",
        "roost/default",
        "roost/default/gw-1",
        "elsewhere/#",
        "roost/de#/x",
        "roost/#/gw-1",
        "roost/a+/b/ack",
        "roost/Bad_Tenant/#",
        "roost/default/gw-1/nonsense",
        "roost/default/gw/1/ack",
    ],
)
def test_filters_that_match_no_roost_topic(topic_filter: str) -> None:
    with pytest.raises(BadResource):
        filter_resource(topic_filter)


def test_topics_leave_message_ids_out_of_the_resource() -> None:
    one, two = topic_resource("roost/default/gw-1/telemetry/b1"), topic_resource("roost/default/gw-1/telemetry/b2")
    assert one == two and one.entity()["attrs"]["has_id"] is True
    assert topic_resource("roost/default/gw-1/telemetry").key != one.key
    state = topic_resource("roost/default/gw-1/state/reported")
    assert state.entity()["attrs"]["tail"] == "reported" and state.id == "roost/default/gw-1/state/reported"
    assert topic_resource("roost/default/gw-1/state/desired").key != state.key
    with pytest.raises(BadResource):
        topic_resource("roost/default/gw-1/telemetry/#")


def test_built_entities_conform_to_the_schema() -> None:
    """The decision point adds these entities without re-checking them: the schema must accept every shape."""
    import json

    import cedarpy

    from cloud.policy import Subject, default_schema, tenant_resource

    schema = cedarpy.Schema.from_str(default_schema())
    subjects = [
        Subject("gateway", "gw-1", "default"),
        Subject("operator", "ann@example.org", "default", role="viewer"),
        Subject("client", "partner", "default", scopes=frozenset({"readings:read"})),
        Subject("observer", "demo", "default"),
    ]
    resources = [
        topic_resource("roost/default/gw-1/telemetry/b1"),
        topic_resource("roost/default/gw-1/state/reported"),
        filter_resource("#"),
        filter_resource("roost/default/gw-1/state/desired"),
        tenant_resource("default"),
    ]
    entities = [s.entity() for s in subjects] + [r.entity() for r in resources]
    assert len(cedarpy.Entities.from_json_str(json.dumps(entities), schema)) >= len(entities)
    broken = {**resources[0].entity(), "attrs": {**resources[0].entity()["attrs"], "has_id": "yes"}}
    with pytest.raises(ValueError):
        cedarpy.Entities.from_json_str(json.dumps([broken]), schema)
