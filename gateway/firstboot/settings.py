"""What roost.toml asks for, once checked: frozen values the apply steps use (secrets hidden from ``repr``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Any, Literal

EnrollMethod = Literal["claim-token", "device-flow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Wifi:
    """The one Wi-Fi network to join."""

    country: str
    ssid: str
    psk: str | None = field(default=None, repr=False)
    """None: an open network."""
    hidden: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticAddress:
    """A fixed IPv4 address instead of DHCP."""

    address: IPv4Interface
    gateway: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Cloud:
    """Where the cloud is and which tenant the gateway joins."""

    url: str
    tenant: str = "default"
    ca_pem: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrollment:
    """How the gateway enrolls: a claim token (no human) or the device flow (an operator approves a code)."""

    method: EnrollMethod
    claim_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorSummary:
    """One expected sensor, for the console and the report."""

    kind: str
    label: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every part of roost.toml that checked out; a part with a problem is None (or empty)."""

    hostname: str | None = None
    timezone: str | None = None
    wifi: Wifi | None = None
    network: StaticAddress | None = None
    cloud: Cloud | None = None
    enrollment: Enrollment | None = None
    ssh_keys: tuple[str, ...] = ()
    pin: str | None = field(default=None, repr=False)
    adapters: dict[str, Any] = field(default_factory=dict)
    """The gateway's ``[adapters]`` table (TOML data) made from ``[[sensors]]``."""
    paired: tuple[str, ...] = ()
    """Sensor ids to allow at once (the CoAP devices listed)."""
    sensors: tuple[SensorSummary, ...] = ()
