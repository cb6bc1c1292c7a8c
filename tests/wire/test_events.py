"""wire.events: the event pack on the events topic (alerts, annotations, device events)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import events
from wire.errors import PayloadError

ALERT = events.Event(
    id="e1",
    kind="alert",
    ts=1764100000.25,
    key="freezer-warm/freezer-1",
    rule="freezer-warm",
    state="raised",
    severity="critical",
    message="freezer-1 temperature -12.5 Cel above -15 for 300 s",
    sensor="freezer-1",
    metric="temperature",
    value=-12.5,
)


def test_a_pack_round_trips_and_is_plain_json() -> None:
    note = events.Event(id="e2", kind="annotation", ts=1.5, key="door/log", message="door opened")
    raw = events.encode([ALERT, note])
    assert json.loads(raw)[0]["severity"] == "critical"
    assert events.decode(raw) == [ALERT, note]


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ([], "non-empty"),
        ({"id": "x"}, "JSON array"),
        ([1], "event 0 is not a JSON object"),
        ([{"id": "x", "kind": "alarm", "ts": 1, "key": "k"}], "kind 'alarm'"),
        ([{"id": "x", "kind": "alert", "ts": 1, "key": "k", "state": "on", "severity": "info"}], "state"),
        ([{"id": "x", "kind": "alert", "ts": 1, "key": "k", "state": "raised"}], "severity"),
        ([{"id": "x", "kind": "annotation", "ts": 1, "key": "k", "state": "raised"}], "only alerts"),
        ([{"kind": "annotation", "ts": 1, "key": "k"}], "'id' is missing"),
        ([{"id": "x", "kind": "annotation", "ts": "now", "key": "k"}], "ts must be a number"),
        ([{"id": "x", "kind": "annotation", "ts": 1, "key": "k", "colour": 1}], "unknown field"),
        ([{"id": "x", "kind": "annotation", "ts": 1, "key": "k", "value": [1]}], "value must be"),
    ],
)
def test_bad_packs_are_refused_naming_the_event_and_field(doc: object, words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        events.decode(json.dumps(doc).encode())


def test_not_json_is_refused() -> None:
    with pytest.raises(PayloadError, match="JSON array"):
        events.decode(b"\x82\x01\x02")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_events_or_a_payload_error(raw: bytes) -> None:
    try:
        out = events.decode(raw)
    except PayloadError:
        return
    assert out and all(isinstance(e, events.Event) for e in out)
