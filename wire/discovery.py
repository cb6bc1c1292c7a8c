"""The discovery document served at ``/.well-known/roost``."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from wire.errors import PayloadError

WELL_KNOWN_PATH = "/.well-known/roost"

AckMode = Literal["cloud", "puback"]


class Discovery(TypedDict):
    """What a gateway needs to know about a cloud, given only its base URL."""

    mqtt_ws_url: str
    """MQTT over WebSockets, ``ws(s)://host:port/mqtt``."""
    api_url: str
    """Base URL of the HTTP API (``.../api/v1``)."""
    mqtt_ws_urls: NotRequired[list[str]]
    """Every broker node's MQTT over WebSockets URL, where there are several (gateways spread and fail over)."""
    mqtt_tcp_url: NotRequired[str]
    """Plain MQTT over TCP, where the cloud offers it (``mqtt://host:port``)."""
    mqtt_tcp_urls: NotRequired[list[str]]
    """Every broker node's plain MQTT URL, where there are several."""
    subscribe_qos: NotRequired[int]
    """QoS gateways subscribe with (0 or 1; absent: 1). RabbitMQ 3.10 keeps a QoS 1 subscription on one node, so
    a cluster asks for 0: a gateway can then move to another node while that one is down (a lost ack is resent)."""
    issuer: NotRequired[str]
    """The OAuth2 issuer, once identity exists."""
    ack: AckMode
    """When a gateway may delete a batch: on the cloud's ``ack`` message, or on the broker's PUBACK."""
    senml_encodings: list[str]
    """SenML encodings the ingest reads: ``cbor``, ``json``."""
    senml_compression: list[str]
    """Compressions the ingest reads: ``zlib``."""
    max_pack_bytes: int


def parse(doc: object) -> Discovery:
    """Check a discovery document's shape; raise PayloadError naming a missing or wrong field."""
    if not isinstance(doc, dict):
        raise PayloadError("the discovery document is not a JSON object")
    for key in ("mqtt_ws_url", "api_url"):
        if not isinstance(doc.get(key), str):
            raise PayloadError(f"the discovery document has no {key!r}")
    encodings = _strings(doc, "senml_encodings", ["cbor", "json"])
    compression = _strings(doc, "senml_compression", [])
    max_pack_bytes = doc.get("max_pack_bytes", 1 << 20)
    if isinstance(max_pack_bytes, bool) or not isinstance(max_pack_bytes, int) or max_pack_bytes <= 0:
        raise PayloadError("the discovery document's 'max_pack_bytes' must be a positive integer")
    out: Discovery = {
        "mqtt_ws_url": doc["mqtt_ws_url"],
        "api_url": doc["api_url"],
        "ack": "cloud" if doc.get("ack") != "puback" else "puback",
        "senml_encodings": encodings,
        "senml_compression": compression,
        "max_pack_bytes": max_pack_bytes,
    }
    if isinstance(doc.get("mqtt_tcp_url"), str):
        out["mqtt_tcp_url"] = doc["mqtt_tcp_url"]
    for key in ("mqtt_ws_urls", "mqtt_tcp_urls"):
        if key in doc:
            urls = _strings(doc, key, [])
            if urls:
                out[key] = urls  # type: ignore[literal-required]
    if doc.get("subscribe_qos") in (0, 1) and not isinstance(doc.get("subscribe_qos"), bool):
        out["subscribe_qos"] = doc["subscribe_qos"]
    if isinstance(doc.get("issuer"), str):
        out["issuer"] = doc["issuer"]
    return out


def _strings(doc: dict[str, object], key: str, default: list[str]) -> list[str]:
    value = doc.get(key, default)
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise PayloadError(f"the discovery document's {key!r} must be a list of strings")
    return list(value)
