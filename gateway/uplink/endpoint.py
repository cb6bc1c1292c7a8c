"""An MQTT URL (``wss://``, ``ws://``, ``mqtt://``, ``mqtts://``) as aiomqtt connection settings."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gateway.errors import UplinkError
from gateway.uplink.discovery import tls_context

_DEFAULT_PORTS = {"ws": 80, "wss": 443, "mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Host, port, transport, WebSocket path and TLS of one MQTT URL."""

    url: str
    host: str
    port: int
    transport: Literal["tcp", "websockets"]
    websocket_path: str | None
    tls: bool

    def tls_context(self, ca_file: Path | None) -> ssl.SSLContext | None:
        """The TLS context for this endpoint (pinned to ``ca_file`` when set), or None for plain ws/mqtt."""
        return tls_context(ca_file) if self.tls else None


def parse_url(url: str) -> Endpoint:
    """Split an MQTT URL; raise UplinkError for a scheme or URL the uplink cannot use."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UplinkError(f"MQTT URL {url!r}: scheme must be ws, wss, mqtt or mqtts")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise UplinkError(f"MQTT URL {url!r}: {exc}") from exc
    if not parts.hostname:
        raise UplinkError(f"MQTT URL {url!r} has no host")
    websockets = scheme in ("ws", "wss")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "") if websockets else None
    safe_url = f"{scheme}://{parts.hostname}:{port}{parts.path if websockets else ''}"
    return Endpoint(
        url=safe_url,
        host=parts.hostname,
        port=port,
        transport="websockets" if websockets else "tcp",
        websocket_path=path,
        tls=scheme in ("wss", "mqtts"),
    )
