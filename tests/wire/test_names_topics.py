"""Names, topics, the discovery document and the JSON envelopes of the wire contract."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wire import discovery, envelopes, names, topics
from wire.errors import InvalidName, PayloadError, WireError

# ---------------------------------------------------------------------------------------------- names

VALID_SENSORS = [
    "A4:C1:38:00:11:22",  # BLE MAC
    "00:12:4b:00:1c:a1:b2:c3",  # Zigbee IEEE address
    "urn:dev:ow:10e2073a01080063",
    "t1",
    "0",
    "greenhouse/bench-2/probe_3.a",
    "x" * names.MAX_ID,
]
INVALID_SENSORS = [
    ("/dev/ttyUSB0", "start with a letter or digit"),
    ("", "it is empty"),
    ("x" * (names.MAX_ID + 1), f"longer than {names.MAX_ID} characters"),
    ("-leading-dash", "start with a letter or digit"),
    (":colon", "start with a letter or digit"),
    ("has space", "only A-Z a-z 0-9"),
    ("temp+1", "only A-Z a-z 0-9"),
    ("wild#", "only A-Z a-z 0-9"),
    ("ümlaut", "start with a letter or digit"),
    ("caf\u00e9", "only A-Z a-z 0-9"),
    ("line\n", "only A-Z a-z 0-9"),
]


@pytest.mark.parametrize("value", VALID_SENSORS)
def test_valid_sensor_ids(value: str) -> None:
    assert names.check_sensor(value) == value


@pytest.mark.parametrize(("value", "rule"), INVALID_SENSORS)
def test_invalid_sensor_ids(value: str, rule: str) -> None:
    with pytest.raises(InvalidName) as caught:
        names.check_sensor(value)
    assert caught.value.kind == "sensor"
    assert rule in str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, WireError)


def test_an_over_long_id_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidName) as caught:
        names.check_sensor("a" * 1000)
    assert len(str(caught.value)) < 200
    assert caught.value.value == "a" * 40 + "..."


@pytest.mark.parametrize("value", ["temperature", "temp_c", "pm2.5", "soil-moisture", "a/b", "0", "x" * 128])
def test_valid_metrics(value: str) -> None:
    assert names.check_metric(value) == value


@pytest.mark.parametrize("value", ["", "temp:c", "temp c", "_temp", ".hidden", "°C", "x" * 129, "a+b"])
def test_invalid_metrics(value: str) -> None:
    with pytest.raises(InvalidName) as caught:
        names.check_metric(value)
    assert caught.value.kind == "metric"


@pytest.mark.parametrize("value", ["default", "acme", "acme-corp", "0", "1a-2b", "t" * 128])
def test_valid_tenants(value: str) -> None:
    assert names.check_tenant(value) == value


@pytest.mark.parametrize("value", ["", "Acme", "acme_corp", "-acme", "acme.corp", "a/b", "a+", "#", "t" * 129])
def test_invalid_tenants(value: str) -> None:
    with pytest.raises(InvalidName) as caught:
        names.check_tenant(value)
    assert caught.value.kind == "tenant"


@pytest.mark.parametrize("value", ["gw-1", "GW_01", "rpi4.kitchen", "0", "b8-27-eb-00-11-22", "g" * 128])
def test_valid_gateway_ids(value: str) -> None:
    assert names.check_gateway(value) == value


@pytest.mark.parametrize(
    "value", ["", "gw/1", "gw+", "+", "#", "gw#1", "A4:C1:38:00:11:22", "-gw", ".gw", "gw 1", "g" * 129]
)
def test_invalid_gateway_ids(value: str) -> None:
    with pytest.raises(InvalidName) as caught:
        names.check_gateway(value)
    assert caught.value.kind == "gateway"


@pytest.mark.parametrize(
    ("full", "sensor", "metric"),
    [
        ("t1:temp", "t1", "temp"),
        ("A4:C1:38:00:11:22:temperature", "A4:C1:38:00:11:22", "temperature"),
        ("00:12:4b:00:1c:a1:b2:c3:occupancy", "00:12:4b:00:1c:a1:b2:c3", "occupancy"),
        ("urn:dev:ow:10e2073a01080063", "urn:dev:ow", "10e2073a01080063"),
        ("plant/zone-2:soil_moisture.raw", "plant/zone-2", "soil_moisture.raw"),
    ],
)
def test_split_name_at_the_last_colon(full: str, sensor: str, metric: str) -> None:
    assert names.split_name(full) == (sensor, metric)


@pytest.mark.parametrize(
    ("full", "kind", "message"),
    [
        ("temperature", "sensor", "'{sensor}:{metric}'"),
        (":temp", "sensor", "'{sensor}:{metric}'"),
        ("t1:", "metric", "it is empty"),
        ("/dev/ttyUSB0:temp", "sensor", "sensor id '/dev/ttyUSB0'"),
        ("t1:temp c", "metric", "metric id 'temp c'"),
    ],
)
def test_split_name_refuses(full: str, kind: str, message: str) -> None:
    with pytest.raises(InvalidName) as caught:
        names.split_name(full)
    assert caught.value.kind == kind
    assert message in str(caught.value)


# ---------------------------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("kind", "tail", "text"),
    [
        ("telemetry", None, "roost/default/gw-1/telemetry"),
        ("telemetry", "b-0001", "roost/default/gw-1/telemetry/b-0001"),
        ("events", None, "roost/default/gw-1/events"),
        ("events", "e-7", "roost/default/gw-1/events/e-7"),
        ("ack", None, "roost/default/gw-1/ack"),
        ("health", None, "roost/default/gw-1/health"),
        ("status", None, "roost/default/gw-1/status"),
        ("state", "reported", "roost/default/gw-1/state/reported"),
        ("state", "desired", "roost/default/gw-1/state/desired"),
        ("cmd", "req-42", "roost/default/gw-1/cmd/req-42"),
        ("cmd-result", "req-42", "roost/default/gw-1/cmd-result/req-42"),
        ("token", None, "roost/default/gw-1/token"),
        ("token-result", None, "roost/default/gw-1/token-result"),
    ],
)
def test_topic_build_and_parse_every_kind(kind: Any, tail: str | None, text: str) -> None:
    assert topics.topic("default", "gw-1", kind, tail) == text
    parsed = topics.parse(text)
    assert parsed == topics.Topic("default", "gw-1", kind, tail)
    assert str(parsed) == text


def test_every_kind_is_covered() -> None:
    assert set(topics.KINDS) == set(topics.Kind.__args__)  # type: ignore[attr-defined]
    assert topics.DEFAULT_TENANT == "default"


def test_telemetry_helper() -> None:
    assert topics.telemetry("default", "gw-1") == "roost/default/gw-1/telemetry"
    assert topics.telemetry("acme", "gw-1", "b7") == "roost/acme/gw-1/telemetry/b7"


@pytest.mark.parametrize(
    ("tenant", "gateway", "kind", "tail", "error", "message"),
    [
        ("default", "gw-1", "cmd", None, ValueError, "cmd topic needs a last level"),
        ("default", "gw-1", "cmd-result", None, ValueError, "needs a last level"),
        ("default", "gw-1", "state", None, ValueError, "needs a last level"),
        ("default", "gw-1", "status", "x", ValueError, "status topic takes no further levels"),
        ("default", "gw-1", "ack", "x", ValueError, "takes no further levels"),
        ("default", "gw-1", "telemetry", "", ValueError, "empty or holds an MQTT wildcard"),
        ("default", "gw-1", "telemetry", "+", ValueError, "empty or holds an MQTT wildcard"),
        ("default", "gw-1", "cmd", "#", ValueError, "empty or holds an MQTT wildcard"),
        ("default", "gw-1", "cmd", "a//b", ValueError, "empty or holds an MQTT wildcard"),
        ("default", "gw-1", "nonsense", None, ValueError, "unknown topic kind 'nonsense'"),
        ("default", "gw/1", "telemetry", None, InvalidName, "gateway id 'gw/1'"),
        ("default", "+", "telemetry", None, InvalidName, "gateway id '+'"),
        ("default", "gw#", "telemetry", None, InvalidName, "gateway id 'gw#'"),
        ("Default", "gw-1", "telemetry", None, InvalidName, "tenant id 'Default'"),
        ("", "gw-1", "telemetry", None, InvalidName, "tenant id ''"),
    ],
)
def test_topic_build_refuses(
    tenant: str, gateway: str, kind: Any, tail: str | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        topics.topic(tenant, gateway, kind, tail)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roost/default/gw-1", "is not roost/{tenant}/{gateway}/{kind}"),
        ("nest/default/gw-1/telemetry", "is not roost/{tenant}/{gateway}/{kind}"),
        ("/roost/default/gw-1/telemetry", "is not roost/{tenant}/{gateway}/{kind}"),
        ("", "is not roost/{tenant}/{gateway}/{kind}"),
        ("roost/default/gw-1/nonsense", "unknown kind 'nonsense'"),
        ("roost/default/gw-1/Telemetry", "unknown kind 'Telemetry'"),
        ("roost/default/gw-1/cmd", "cmd needs a last level"),
        ("roost/default/gw-1/cmd/", "cmd needs a last level"),
        ("roost/default/gw-1/cmd-result", "cmd-result needs a last level"),
        ("roost/default/gw-1/state", "state needs a last level"),
        ("roost/default/gw-1/status/extra", "status takes no further levels"),
        ("roost/default/gw-1/status/", "status takes no further levels"),
        ("roost/default/gw-1/ack/1", "ack takes no further levels"),
        ("roost/default/+/telemetry", "gateway id '+'"),
        ("roost/default/#/telemetry", "gateway id '#'"),
        ("roost/default//telemetry", "gateway id ''"),
        ("roost/Acme/gw-1/telemetry", "tenant id 'Acme'"),
        ("roost/+/gw-1/telemetry", "tenant id '+'"),
    ],
)
def test_topic_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        topics.parse(text)
    assert message in str(caught.value)


def test_tenant_filters() -> None:
    assert topics.tenant_filter("default") == "roost/default/+/#"
    assert topics.tenant_filter("default", "telemetry") == "roost/default/+/telemetry/#"
    with pytest.raises(InvalidName):
        topics.tenant_filter("+")


# ---------------------------------------------------------------------------------------------- discovery


def test_discovery_required_fields_and_defaults() -> None:
    doc = discovery.parse({"mqtt_ws_url": "wss://cloud.example/mqtt", "api_url": "https://cloud.example/api/v1"})
    assert doc == {
        "mqtt_ws_url": "wss://cloud.example/mqtt",
        "api_url": "https://cloud.example/api/v1",
        "ack": "cloud",
        "senml_encodings": ["cbor", "json"],
        "senml_compression": [],
        "max_pack_bytes": 1 << 20,
    }
    assert discovery.WELL_KNOWN_PATH == "/.well-known/roost"


def test_discovery_every_field() -> None:
    source = {
        "mqtt_ws_url": "ws://127.0.0.1:8080/mqtt",
        "api_url": "http://127.0.0.1:8080/api/v1",
        "mqtt_tcp_url": "mqtt://127.0.0.1:1883",
        "issuer": "http://127.0.0.1:8080",
        "ack": "puback",
        "senml_encodings": ["cbor"],
        "senml_compression": ["zlib"],
        "max_pack_bytes": 65536,
        "something_newer": {"ignored": True},
    }
    doc = discovery.parse(json.loads(json.dumps(source)))
    assert doc == {k: v for k, v in source.items() if k != "something_newer"}


def test_discovery_unknown_ack_mode_means_cloud_and_wrong_optional_types_are_left_out() -> None:
    doc = discovery.parse(
        {
            "mqtt_ws_url": "wss://c/mqtt",
            "api_url": "https://c/api/v1",
            "ack": "later",
            "issuer": 7,
            "mqtt_tcp_url": None,
        }
    )
    assert doc["ack"] == "cloud"
    assert "issuer" not in doc and "mqtt_tcp_url" not in doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "is not a JSON object"),
        ("wss://c/mqtt", "is not a JSON object"),
        ({}, "has no 'mqtt_ws_url'"),
        ({"mqtt_ws_url": "wss://c/mqtt"}, "has no 'api_url'"),
        ({"mqtt_ws_url": 1, "api_url": "https://c"}, "has no 'mqtt_ws_url'"),
        ({"mqtt_ws_url": "wss://c/mqtt", "api_url": None}, "has no 'api_url'"),
        (
            {"mqtt_ws_url": "wss://c/mqtt", "api_url": "https://c", "max_pack_bytes": "big"},
            "'max_pack_bytes' must be a positive integer",
        ),
        (
            {"mqtt_ws_url": "wss://c/mqtt", "api_url": "https://c", "max_pack_bytes": 0},
            "'max_pack_bytes' must be a positive integer",
        ),
        (
            {"mqtt_ws_url": "wss://c/mqtt", "api_url": "https://c", "max_pack_bytes": 1.5e300},
            "'max_pack_bytes' must be a positive integer",
        ),
        (
            {"mqtt_ws_url": "wss://c/mqtt", "api_url": "https://c", "max_pack_bytes": True},
            "'max_pack_bytes' must be a positive integer",
        ),
        (
            {"mqtt_ws_url": "wss://c/mqtt", "api_url": "https://c", "senml_encodings": "cbor"},
            "'senml_encodings' must be a list of strings",
        ),
        (
            {"mqtt_ws_url": "wss://c/mqtt", "api_url": "https://c", "senml_compression": [1]},
            "'senml_compression' must be a list of strings",
        ),
    ],
)
def test_discovery_refuses(doc: object, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        discovery.parse(doc)
    assert message in str(caught.value)


# ---------------------------------------------------------------------------------------------- envelopes


def test_ack_round_trip() -> None:
    payload = envelopes.encode_ack(["b1", "b2"], ["b3"])
    assert payload == b'{"batches":["b1","b2"],"rejected":["b3"]}'
    assert envelopes.decode_ack(payload) == {"batches": ["b1", "b2"], "rejected": ["b3"]}
    assert envelopes.encode_ack([]) == b'{"batches":[],"rejected":[]}'


def test_ack_defaults() -> None:
    assert envelopes.decode_ack(b'{"batches":["b1"]}') == {"batches": ["b1"], "rejected": []}
    assert envelopes.decode_ack(b"{}") == {"batches": [], "rejected": []}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "ack payload is not JSON"),
        (b"{", "ack payload is not JSON"),
        (b"\xff\xfe\x00", "ack payload is not JSON"),
        (b"[" * 3000, "ack payload is not JSON"),
        (b'["b1"]', "must be a JSON object"),
        (b'"b1"', "must be a JSON object"),
        (b'{"batches":"b1"}', "'batches' must be a list of batch id strings"),
        (b'{"batches":[1,2]}', "'batches' must be a list of batch id strings"),
        (b'{"batches":[],"rejected":[null]}', "'rejected' must be a list of batch id strings"),
    ],
)
def test_ack_refuses(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        envelopes.decode_ack(payload)
    assert message in str(caught.value)


HEALTH: envelopes.Health = {
    "ts": 1700000000.5,
    "uptime_s": 3600.0,
    "counters": {
        "buffered": 3,
        "received": 1000,
        "sent": 997,
        "dropped": 0,
        "dropped_full": 0,
        "dropped_age": 0,
        "rejected": 2,
        "reconnects": 1,
    },
}


def test_health_round_trip() -> None:
    payload = envelopes.encode_health(HEALTH)
    assert json.loads(payload) == HEALTH
    assert b" " not in payload
    assert envelopes.decode_health(payload) == HEALTH


def _health(**changes: Any) -> bytes:
    doc: dict[str, Any] = json.loads(json.dumps(HEALTH))
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "health payload is not JSON"),
        (b"not json", "health payload is not JSON"),
        (b"[" * 3000, "health payload is not JSON"),
        (b"[]", "must be an object with 'counters'"),
        (b'{"ts":1}', "must be an object with 'counters'"),
        (_health(counters=[1, 2]), "must be an object with 'counters'"),
        (_health(ts="yesterday"), "'ts' must be a number"),
        (_health(ts=None), "'ts' must be a number"),
        (_health(uptime_s=True), "'uptime_s' must be a number"),
        (_health(counters={"sent": 1.5}), "counter 'sent' must be an integer"),
        (_health(counters={"sent": "1"}), "counter 'sent' must be an integer"),
    ],
)
def test_health_refuses(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        envelopes.decode_health(payload)
    assert message in str(caught.value)


def test_status_payloads() -> None:
    assert (envelopes.ONLINE, envelopes.OFFLINE) == (b"online", b"offline")


def test_a_heartbeat_health_report_round_trips_and_bad_parts_are_named() -> None:
    import json

    from wire.envelopes import decode_health, encode_health
    from wire.errors import PayloadError

    report = {
        "ts": 1.0,
        "uptime_s": 2.0,
        "counters": {"sent": 3},
        "system": {"cpu_temp_c": 48.2},
        "adapters": {"chips": {"accepted": 4}},
        "versions": {"roost": "0.1.0"},
        "location": None,
    }
    assert decode_health(encode_health(report)) == report  # type: ignore[arg-type]
    for key, bad in (("system", [1]), ("adapters", "x"), ("versions", 3), ("location", "here")):
        with pytest.raises(PayloadError, match=repr(key)):
            decode_health(json.dumps({**report, key: bad}).encode())
