"""The gateway's config file (TOML) as frozen, typed dataclasses; every option has a documented default.

``roost gateway config-reference`` prints the whole table of keys, defaults and meanings
(docs/gateway-config.md holds the same table).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gateway.adapters.ble.config import BleSection
from gateway.adapters.chips.config import I2cChipSection, PollingSection, SpiChipSection, check_chips
from gateway.adapters.modbus.config import ModbusPortSection
from gateway.adapters.modbus.config import check_ports as check_modbus_ports
from gateway.adapters.serial.config import SerialPortSection, check_ports
from gateway.adapters.zigbee.config import ZigbeeSection
from gateway.dm.config import DmSection
from gateway.dm.nodefw.config import NodeFirmwareSection
from gateway.dm.ota.config import UpdateSection
from gateway.errors import ConfigError
from gateway.localpage.config import LocalSection
from gateway.metrics_config import MetricsSection
from wire import typedconfig
from wire.names import check_gateway, check_tenant
from wire.typedconfig import ConfigValueError, doc

DropPolicy = Literal["drop-oldest", "drop-newest", "refuse"]
Transport = Literal["auto", "wss", "ws", "tcp", "tls"]
Accept = Literal["paired", "any"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySection:
    """Who this gateway is and where it keeps its state."""

    id: str = doc("Gateway id; empty means: from the hardware serial, else a UUID kept in state_dir", default="")
    tenant: str = doc("Tenant the gateway belongs to", default="default")
    state_dir: Path = doc("Folder for the buffer and state (relative to this file)", default=Path("state"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = doc("Log level", default="INFO")
    shutdown_timeout_s: float = doc("Seconds a clean shutdown may take before it stops waiting", default=5.0)
    latitude: float | None = doc("Where the gateway is installed (degrees, WGS 84); a GPS fix wins", default=None)
    longitude: float | None = doc("Where the gateway is installed (degrees, WGS 84); a GPS fix wins", default=None)

    def __post_init__(self) -> None:
        if self.id:
            _checked("id", check_gateway, self.id)
        _checked("tenant", check_tenant, self.tenant)
        if self.shutdown_timeout_s <= 0:
            raise ConfigValueError("shutdown_timeout_s", "must be greater than 0")
        if (self.latitude is None) != (self.longitude is None):
            raise ConfigValueError("latitude", "give both latitude and longitude, or neither")
        if self.latitude is not None and not -90.0 <= self.latitude <= 90.0:
            raise ConfigValueError("latitude", "must be between -90 and 90 degrees")
        if self.longitude is not None and not -180.0 <= self.longitude <= 180.0:
            raise ConfigValueError("longitude", "must be between -180 and 180 degrees")

    @property
    def position(self) -> dict[str, float] | None:
        """The configured position, or None."""
        if self.latitude is None or self.longitude is None:
            return None
        return {"lat": self.latitude, "lon": self.longitude}


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudSection:
    """How to reach the cloud."""

    url: str = doc("Cloud base URL; the gateway reads /.well-known/roost there", default="http://127.0.0.1:8080")
    mqtt_url: str = doc("MQTT URL (wss://, ws://, mqtt://, mqtts://) overriding the discovery document", default="")
    mqtt_urls: tuple[str, ...] = doc(
        "Several MQTT URLs (one per broker node) overriding the discovery document; the gateway starts at a random "
        "one and moves to the next when a connection fails or drops (instead of mqtt_url)",
        default=(),
    )
    transport: Transport = doc("auto: what the discovery document names (MQTT over WebSockets)", default="auto")
    subscribe_qos: int | None = doc(
        "QoS of the gateway's subscriptions (acks, commands, desired state): 0 or 1; none = what the discovery "
        "document says, else 1 (a RabbitMQ cluster asks for 0, so a gateway can move to another node at once)",
        default=None,
    )
    ca_file: Path | None = doc("PEM CA certificate to pin for TLS (wss, mqtts); none = system CAs", default=None)
    username: str = doc("MQTT username; empty means the gateway id", default="")
    password_file: Path | None = doc("File holding the MQTT password (mode 0600); none = no password", default=None)
    keepalive_s: int = doc("MQTT keep-alive in seconds", default=30)
    connect_timeout_s: float = doc("Seconds to wait for a connection or discovery before retrying", default=10.0)
    backoff_initial_s: float = doc("First reconnect delay", default=0.5)
    backoff_max_s: float = doc("Longest reconnect delay (capped exponential backoff with jitter)", default=30.0)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigValueError("url", f"{self.url!r} must start with http:// or https://")
        _check_url("url", self.url)
        if self.mqtt_url:
            _check_mqtt_url("mqtt_url", self.mqtt_url)
        if self.mqtt_url and self.mqtt_urls:
            raise ConfigValueError("mqtt_urls", "give mqtt_url (one broker) or mqtt_urls (several), not both")
        for i, url in enumerate(self.mqtt_urls):
            _check_mqtt_url(f"mqtt_urls[{i}]", url)
            if url in self.mqtt_urls[:i]:
                raise ConfigValueError(f"mqtt_urls[{i}]", f"{url!r} is listed twice")
        if self.subscribe_qos not in (None, 0, 1):
            raise ConfigValueError("subscribe_qos", f"{self.subscribe_qos!r} must be 0 or 1")
        if not 5 <= self.keepalive_s <= 3600:
            raise ConfigValueError("keepalive_s", "must be between 5 and 3600")
        if self.connect_timeout_s <= 0:
            raise ConfigValueError("connect_timeout_s", "must be greater than 0")
        if self.backoff_initial_s <= 0:
            raise ConfigValueError("backoff_initial_s", "must be greater than 0")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ConfigValueError("backoff_max_s", "must be at least backoff_initial_s")

    @property
    def broker_urls(self) -> tuple[str, ...]:
        """The MQTT URLs set in this file (``mqtt_url`` as a list of one), or () to use the discovery document."""
        return self.mqtt_urls or ((self.mqtt_url,) if self.mqtt_url else ())


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentitySection:
    """The gateway's own identity: enrollment with the cloud's authorization server and its OAuth2 tokens.

    Used when ``cloud.password_file`` is not set: the gateway enrolls (claim token, else the device flow),
    keeps its key pair and tokens in ``state_dir/identity`` (mode 0600) and connects with its access token.
    """

    enroll: Literal["auto", "off"] = doc(
        "auto: without tokens (and without cloud.password_file) enroll with the cloud; off: never enroll",
        default="auto",
    )
    claim_token_file: Path | None = doc(
        "File holding a claim token for unattended enrollment (e.g. on the boot partition); none = device flow",
        default=None,
    )
    issuer: str = doc("OAuth2 issuer URL; empty: the one the cloud's discovery document names", default="")
    refresh_at: float = doc("Refresh the access token after this fraction of its lifetime", default=0.8)
    http_timeout_s: float = doc("Seconds an enrollment or token request may take", default=10.0)

    def __post_init__(self) -> None:
        if self.issuer:
            if not self.issuer.startswith(("http://", "https://")):
                raise ConfigValueError("issuer", f"{self.issuer!r} must start with http:// or https://")
            _check_url("issuer", self.issuer)
        if not 0.1 <= self.refresh_at <= 0.95:
            raise ConfigValueError("refresh_at", "must be between 0.1 and 0.95")
        if self.http_timeout_s <= 0:
            raise ConfigValueError("http_timeout_s", "must be greater than 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class UplinkSection:
    """How readings are batched and sent."""

    batch_max_readings: int = doc("Most readings in one SenML pack", default=1000)
    batch_max_delay_ms: int = doc("Longest a reading waits for its pack to fill", default=200)
    inflight: int = doc("Packs published and not yet acknowledged, at most", default=16)
    encoding: Literal["cbor", "json"] = doc("SenML encoding of packs", default="cbor")
    compress: Literal["auto", "zlib", "none"] = doc(
        "auto: zlib when the cloud's discovery document allows it", default="auto"
    )
    ack_timeout_s: float = doc("Seconds to wait for a pack's acknowledgement before sending it again", default=30.0)
    health_interval_s: float = doc("Seconds between health reports", default=30.0)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_max_readings <= 50_000:
            raise ConfigValueError("batch_max_readings", "must be between 1 and 50000")
        if not 0 <= self.batch_max_delay_ms <= 60_000:
            raise ConfigValueError("batch_max_delay_ms", "must be between 0 and 60000")
        if not 1 <= self.inflight <= 1000:
            raise ConfigValueError("inflight", "must be between 1 and 1000")
        if self.ack_timeout_s <= 0:
            raise ConfigValueError("ack_timeout_s", "must be greater than 0")
        if self.health_interval_s <= 0:
            raise ConfigValueError("health_interval_s", "must be greater than 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferSection:
    """The durable, bounded reading buffer (SQLite in WAL mode, synchronous=FULL)."""

    path: Path | None = doc("Buffer database; none means state_dir/buffer.sqlite", default=None)
    max_bytes: int = doc("Largest the buffered readings may grow (bytes)", default=64 * 1024 * 1024)
    max_age_s: float = doc("Readings older than this are dropped (seconds; 0 = no limit)", default=7 * 86400.0)
    policy: DropPolicy = doc("What to do when full: drop-oldest, drop-newest or refuse", default="drop-oldest")
    commit_interval_ms: float = doc("Longest a write waits to share a commit (group commit)", default=2.0)

    def __post_init__(self) -> None:
        if self.max_bytes < 4096:
            raise ConfigValueError("max_bytes", "must be at least 4096")
        if self.max_age_s < 0:
            raise ConfigValueError("max_age_s", "must be 0 (no limit) or more")
        if not 0 <= self.commit_interval_ms <= 1000:
            raise ConfigValueError("commit_interval_ms", "must be between 0 and 1000")


@dataclass(frozen=True, slots=True, kw_only=True)
class CoapSection:
    """The CoAP adapter (aiocoap): devices POST SenML or metric=value text to /telemetry."""

    enabled: bool = doc("Run the CoAP adapter", default=True)
    host: str = doc("Address to listen on ('::' for every address)", default="::")
    port: int = doc("UDP port", default=5683)
    accept: Accept = doc("paired: only paired sensors are bridged; any: every sender", default="paired")
    max_payload: int = doc("Largest payload accepted (bytes); larger gets 4.13", default=64 * 1024)
    max_records: int = doc("Most records in one pack", default=5000)
    duplicate_cache: int = doc(
        "Confirmable exchanges remembered to answer retransmissions (RFC 7252: 247 s), at most; about 6 KB each",
        default=2048,
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigValueError("port", "must be between 0 and 65535")
        if not 16 <= self.max_payload <= 1 << 20:
            raise ConfigValueError("max_payload", "must be between 16 and 1048576")
        if self.max_records < 1:
            raise ConfigValueError("max_records", "must be at least 1")
        if not 16 <= self.duplicate_cache <= 1_000_000:
            raise ConfigValueError("duplicate_cache", "must be between 16 and 1000000")


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptersSection:
    """Southbound adapters; each one's libraries are imported only when it is enabled."""

    coap: CoapSection = doc("CoAP adapter", default_factory=CoapSection)
    serial: tuple[SerialPortSection, ...] = doc(
        "Serial ports, one [[adapters.serial]] table each (docs/protocols/serial.md)", default=()
    )
    modbus: tuple[ModbusPortSection, ...] = doc(
        "Modbus RTU units, one [[adapters.modbus]] table each (docs/protocols/modbus.md)", default=()
    )

    i2c: tuple[I2cChipSection, ...] = doc("I2C chips, one [[adapters.i2c]] table each (docs/wired.md)", default=())
    spi: tuple[SpiChipSection, ...] = doc("SPI chips, one [[adapters.spi]] table each (docs/wired.md)", default=())
    polling: PollingSection = doc("Polled devices (I2C, SPI, Modbus)", default_factory=PollingSection)
    ble: BleSection = doc(
        "BLE adapter (bleak): advertisements and GATT reads (docs/ble.md)", default_factory=BleSection
    )
    zigbee: ZigbeeSection = doc(
        "Zigbee adapter (zigpy): coordinator radio, network backup, pairing (docs/zigbee.md)",
        default_factory=ZigbeeSection,
    )

    def __post_init__(self) -> None:
        check_chips(self.i2c, self.spi)
        check_ports(self.serial)
        check_modbus_ports(self.modbus)
        serial_paths = {p.path: i for i, p in enumerate(self.serial)}
        for i, unit in enumerate(self.modbus):
            if unit.path in serial_paths:
                raise ConfigValueError(
                    f"modbus[{i}].path", f"{unit.path!r} is already serial[{serial_paths[unit.path]}]'s port"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesSection:
    """The rules engine (docs/rules.md): rule files run on the gateway, reloaded when they change."""

    files: tuple[Path, ...] = doc(
        "Rule files (TOML) to run (relative to this file); the cloud's pushed rules run too", default=()
    )
    tick_s: float = doc("Seconds between timer ticks (windows closing, absence, 'for at least')", default=0.5)

    def __post_init__(self) -> None:
        if not 0.05 <= self.tick_s <= 60:
            raise ConfigValueError("tick_s", "must be between 0.05 and 60 seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """The whole gateway config file."""

    gateway: GatewaySection = doc("This gateway", default_factory=GatewaySection)
    cloud: CloudSection = doc("The cloud", default_factory=CloudSection)
    identity: IdentitySection = doc("Enrollment and tokens", default_factory=IdentitySection)
    uplink: UplinkSection = doc("Uplink batching", default_factory=UplinkSection)
    buffer: BufferSection = doc("Durable buffer", default_factory=BufferSection)
    adapters: AdaptersSection = doc("Adapters", default_factory=AdaptersSection)
    paired: tuple[str, ...] = doc("Sensor ids allowed when an adapter's accept is 'paired'", default=())
    dm: DmSection = doc("Device management: privileged actions, network, roll-back, logs", default_factory=DmSection)
    rules: RulesSection = doc("Rules engine", default_factory=RulesSection)
    update: UpdateSection = doc(
        "Software updates: A/B slots, signed bundles (docs/ota.md)", default_factory=UpdateSection
    )
    node_firmware: NodeFirmwareSection = doc(
        "Serial sensor nodes' firmware updates through their bootloader (docs/device-management.md)",
        default_factory=NodeFirmwareSection,
    )
    local: LocalSection = doc(
        "The technician's local page: HTTPS, setup PIN, mDNS (docs/local-page.md)", default_factory=LocalSection
    )
    metrics: MetricsSection = doc(
        "Prometheus metrics on a local port (docs/operations.md)", default_factory=MetricsSection
    )

    @property
    def buffer_path(self) -> Path:
        """Where the buffer database lives."""
        return self.buffer.path or self.gateway.state_dir / "buffer.sqlite"


def _check_url(key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ConfigValueError(key, f"{url!r} is not a valid URL: {exc}") from exc
    if not parts.hostname:
        raise ConfigValueError(key, f"{url!r} names no host")
    if port == 0:
        raise ConfigValueError(key, f"{url!r}: port must be between 1 and 65535")


def _check_mqtt_url(key: str, url: str) -> None:
    if not url.startswith(("ws://", "wss://", "mqtt://", "mqtts://")):
        raise ConfigValueError(key, f"{url!r} must start with ws://, wss://, mqtt:// or mqtts://")
    _check_url(key, url)


def _checked(key: str, check: object, value: str) -> None:
    try:
        check(value)  # type: ignore[operator]
    except ValueError as exc:
        raise ConfigValueError(key, str(exc)) from exc


def load(path: Path) -> GatewayConfig:
    """Load and check a gateway config file; raise ConfigError naming the file and key path."""
    try:
        return typedconfig.load_file(GatewayConfig, path)
    except typedconfig.ConfigFileError as exc:
        raise ConfigError(exc.path, exc.key_path, exc.problem) from exc


def loads(text: str, *, base_dir: Path, name: str = "<embedded>") -> GatewayConfig:
    """Load a config from a string (the demo's embedded defaults)."""
    try:
        return typedconfig.load_text(GatewayConfig, text, base_dir=base_dir, name=name)
    except typedconfig.ConfigFileError as exc:
        raise ConfigError(exc.path, exc.key_path, exc.problem) from exc
