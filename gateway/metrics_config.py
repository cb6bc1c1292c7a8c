"""The ``[metrics]`` table of gateway.toml: a Prometheus endpoint on a local port."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from wire.typedconfig import ConfigValueError, doc


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSection:
    """Prometheus metrics (buffer, uplink, adapters, rules, DM commands) over HTTP at /metrics."""

    enabled: bool = doc("Serve Prometheus metrics at http://host:port/metrics", default=False)
    host: str = doc("Address to listen on (keep it local: the endpoint has no authentication)", default="127.0.0.1")
    port: int = doc("TCP port of the endpoint", default=9108)

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            if self.host != "localhost":
                raise ConfigValueError("host", f"{self.host!r} must be an IP address or localhost") from None
        if not 0 <= self.port <= 65535:
            raise ConfigValueError("port", "must be between 0 and 65535")
