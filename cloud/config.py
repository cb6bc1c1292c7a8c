"""The cloud's config file (``cloud.toml``) as frozen, typed dataclasses; every option has a documented default.

``wire.typedconfig.describe(CloudConfig)`` lists every key with its default and meaning.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cloud.errors import ConfigError
from cloud.identity.oidc.settings import OidcSection
from wire import typedconfig
from wire.names import check_gateway, check_tenant
from wire.senml import DEFAULT_MAX_BYTES
from wire.typedconfig import ConfigValueError, doc


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSection:
    """The HTTP listener (API, discovery, MQTT over WebSockets at /mqtt)."""

    host: str = doc("Address the HTTP server listens on", default="127.0.0.1")
    port: int = doc("TCP port of the HTTP server (0: any free port)", default=8080)
    certfile: Path | None = doc("PEM certificate chain: serve https and wss (relative to this file)", default=None)
    keyfile: Path | None = doc("PEM private key for certfile", default=None)
    public_url: str = doc(
        "Base URL the discovery document names; empty: from the request's Host and scheme", default=""
    )
    shutdown_timeout_s: float = doc("Seconds a clean shutdown may take before it stops waiting", default=5.0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = doc("Log level of `python -m cloud`", default="INFO")
    role: Literal["all", "api", "ingest", "rules"] = doc(
        "What this process does: 'all' (one process), 'api' (HTTP API, no ingest), 'ingest' (consumes and stores"
        " from RabbitMQ, serves only /healthz), 'rules' (runs the cloud rules over every gateway's readings from a"
        " queue of its own, serves only /healthz); all but 'all' need broker.kind = 'rabbitmq' (docs/deploy.md)",
        default="all",
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigValueError("port", "must be between 0 and 65535")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigValueError(
                "keyfile" if self.keyfile is None else "certfile",
                "certfile and keyfile go together: give both or neither",
            )
        if self.public_url:
            _check_url("public_url", self.public_url, ("http://", "https://"))
        if self.shutdown_timeout_s <= 0:
            raise ConfigValueError("shutdown_timeout_s", "must be greater than 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSection:
    """The store of readings and events: SQLite (WAL, synchronous=FULL) or PostgreSQL (docs/storage.md)."""

    path: Path = doc(
        "SQLite database file (relative to this file); the other state files live in its folder",
        default=Path("state/cloud.sqlite"),
    )
    backend: Literal["sqlite", "postgresql"] = doc(
        "'sqlite': the embedded store in path; 'postgresql': a PostgreSQL server (dsn or dsn_file)", default="sqlite"
    )
    dsn: str = doc("PostgreSQL: connection string (postgresql://user@host:5432/db); no password here", default="")
    dsn_file: Path | None = doc(
        "PostgreSQL: file holding the connection string, password included (relative to this file)", default=None
    )
    partition_days: int = doc("PostgreSQL: days of readings in one partition", default=7)
    partitions_ahead: int = doc("PostgreSQL: partitions created ahead of the current one", default=4)
    read_connections: int = doc("PostgreSQL: connections that answer queries (one more writes)", default=4)

    def __post_init__(self) -> None:
        if self.backend == "postgresql" and bool(self.dsn) == (self.dsn_file is not None):
            raise ConfigValueError("dsn", "backend = 'postgresql' needs exactly one of dsn and dsn_file")
        userinfo = self.dsn.partition("://")[2].rpartition("@")[0] if "@" in self.dsn else ""
        if ":" in userinfo or "password=" in self.dsn.replace(" ", ""):
            raise ConfigValueError("dsn", "holds a password: put the connection string in dsn_file instead")
        if not 1 <= self.partition_days <= 366:
            raise ConfigValueError("partition_days", "must be between 1 and 366")
        if not 0 <= self.partitions_ahead <= 520:
            raise ConfigValueError("partitions_ahead", "must be between 0 and 520")
        if not 1 <= self.read_connections <= 64:
            raise ConfigValueError("read_connections", "must be between 1 and 64")

    def postgresql_dsn(self) -> str:
        """The connection string: dsn, or read from dsn_file."""
        if self.dsn_file is None:
            return self.dsn
        return self.dsn_file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionTenant:
    """One tenant's own retention; a value left out is the default's."""

    name: str = doc("Tenant id")
    raw_days: int | None = doc("Days raw readings are kept (0: forever; unset: retention.raw_days)", default=None)
    minute_days: int | None = doc(
        "Days 1-minute rollups are kept (0: forever; unset: retention.minute_days)", default=None
    )
    hour_days: int | None = doc("Days 1-hour rollups are kept (0: forever; unset: retention.hour_days)", default=None)

    def __post_init__(self) -> None:
        _checked("name", check_tenant, self.name)
        for key in ("raw_days", "minute_days", "hour_days"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigValueError(key, "must be 0 (forever) or more days")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionSection:
    """How long readings and rollups are kept; old data is deleted (PostgreSQL: whole partitions dropped)."""

    raw_days: int = doc("Days raw readings are kept (0: forever)", default=30)
    minute_days: int = doc("Days 1-minute rollups are kept (0: forever)", default=365)
    hour_days: int = doc("Days 1-hour rollups are kept (0: forever)", default=0)
    interval_s: float = doc(
        "Seconds between two retention runs (the first: 10 minutes after start, or interval_s if shorter)",
        default=3600.0,
    )
    tenants: tuple[RetentionTenant, ...] = doc("Tenants with their own retention ([[retention.tenants]])", default=())

    def __post_init__(self) -> None:
        for key in ("raw_days", "minute_days", "hour_days"):
            if getattr(self, key) < 0:
                raise ConfigValueError(key, "must be 0 (forever) or more days")
        if self.interval_s < 1:
            raise ConfigValueError("interval_s", "must be at least 1 second")
        seen: set[str] = set()
        for i, tenant in enumerate(self.tenants):
            if tenant.name in seen:
                raise ConfigValueError(f"tenants[{i}].name", f"{tenant.name!r} is listed twice")
            seen.add(tenant.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSection:
    """The broker: embedded (amqtt, MQTT over WebSockets at /mqtt on the HTTP port) or a RabbitMQ cluster over AMQP."""

    kind: Literal["embedded", "rabbitmq"] = doc(
        "'embedded': the cloud's own MQTT broker; 'rabbitmq': gateways connect to RabbitMQ's MQTT plugin and the"
        " cloud consumes a quorum queue over AMQP (docs/deploy.md)",
        default="embedded",
    )
    amqp_urls: tuple[str, ...] = doc(
        "RabbitMQ: AMQP URLs, one per node (amqp://user@host:5672/vhost), tried in turn", default=()
    )
    amqp_password_file: Path | None = doc(
        "RabbitMQ: file holding the AMQP user's password, for URLs without one (relative to this file)", default=None
    )
    amqp_queue: str = doc(
        "RabbitMQ: the quorum queue ingest consumes (bound to the MQTT exchange)", default="roost.ingest"
    )
    amqp_prefetch: int = doc(
        "RabbitMQ: messages delivered to one ingest worker and not yet settled, at most", default=500
    )
    public_mqtt_urls: tuple[str, ...] = doc(
        "MQTT URLs of every broker node (ws://, wss://, mqtt://, mqtts://) that the discovery document lists, so "
        "gateways spread over them and fail over; empty: this server's own /mqtt (and tcp_listen)",
        default=(),
    )
    tcp_listen: str = doc("host:port for plain MQTT over TCP; empty: off", default="")
    connect_timeout_s: float = doc("Seconds a new connection has to send its CONNECT", default=10.0)
    queue_max: int = doc(
        "Received publishes waiting for ingest, at most (more are dropped, counted, not acked)", default=10_000
    )

    def __post_init__(self) -> None:
        if self.tcp_listen:
            host, sep, port = self.tcp_listen.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ConfigValueError("tcp_listen", f"{self.tcp_listen!r} must be host:port (port 0-65535)")
        if self.connect_timeout_s <= 0:
            raise ConfigValueError("connect_timeout_s", "must be greater than 0")
        if self.queue_max < 1:
            raise ConfigValueError("queue_max", "must be at least 1")
        for i, url in enumerate(self.public_mqtt_urls):
            _check_url(f"public_mqtt_urls[{i}]", url, ("ws://", "wss://", "mqtt://", "mqtts://"))
        for i, url in enumerate(self.amqp_urls):
            _check_url(f"amqp_urls[{i}]", url, ("amqp://", "amqps://"))
        if self.kind == "rabbitmq" and not self.amqp_urls:
            raise ConfigValueError("amqp_urls", "kind = 'rabbitmq' needs at least one AMQP URL")
        if not self.amqp_queue:
            raise ConfigValueError("amqp_queue", "must not be empty")
        if not 1 <= self.amqp_prefetch <= 65535:
            raise ConfigValueError("amqp_prefetch", "must be between 1 and 65535")

    def amqp_password(self) -> str | None:
        """The AMQP password from amqp_password_file, or None without one."""
        if self.amqp_password_file is None:
            return None
        return self.amqp_password_file.read_text(encoding="utf-8").strip()

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """The TCP listener's (host, port), or None when it is off."""
        if not self.tcp_listen:
            return None
        host, _, port = self.tcp_listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayEntry:
    """One allow-listed gateway."""

    id: str = doc("Gateway id (its MQTT username and client id)")
    tenant: str = doc("Tenant of the gateway", default="default")
    password: str = doc("MQTT password; empty: none needed (development only)", default="")

    def __post_init__(self) -> None:
        _checked("id", check_gateway, self.id)
        if self.id == "cloud":
            raise ConfigValueError("id", "'cloud' is reserved: the cloud's own rules raise alerts under it")
        _checked("tenant", check_tenant, self.tenant)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObserverEntry:
    """A read-only credential: MQTT password (any username) and API bearer token for one tenant."""

    token: str = doc("The secret; give this or token_file", default="")
    token_file: Path | None = doc("File holding the secret (relative to this file)", default=None)
    tenant: str = doc("Tenant it may read", default="default")
    name: str = doc("Name for logs (the secret is never logged)", default="observer")

    def __post_init__(self) -> None:
        if bool(self.token) == (self.token_file is not None):
            raise ConfigValueError("token", "give exactly one of token and token_file")
        if self.token and len(self.token) < 8:
            raise ConfigValueError("token", "must be at least 8 characters")
        _checked("tenant", check_tenant, self.tenant)

    def secret(self) -> str:
        """The token, read from token_file when that is given."""
        if self.token_file is None:
            return self.token
        return self.token_file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthSection:
    """Who may connect (gateways, observers) and use the API."""

    allow_any_gateway: bool = doc("Dev/demo: any valid gateway id may connect, into tenant 'default'", default=False)
    gateways: tuple[GatewayEntry, ...] = doc("Allow-listed gateways ([[auth.gateways]])", default=())
    observers: tuple[ObserverEntry, ...] = doc(
        "Read-only credentials ([[auth.observers]]); any one makes the API require a bearer token", default=()
    )
    require_token: bool = doc(
        "The API wants a bearer token or an operator's session even when no observer is configured", default=False
    )

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, gw in enumerate(self.gateways):
            if gw.id in seen:
                raise ConfigValueError(f"gateways[{i}].id", f"{gw.id!r} is listed twice")
            seen.add(gw.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSection:
    """How telemetry is decoded and committed."""

    batch_max_readings: int = doc("Most readings in one store commit", default=5000)
    batch_max_delay_ms: float = doc("Longest a pack waits to share a commit", default=5.0)
    max_pack_bytes: int = doc("Largest pack accepted (bytes, after zlib inflation too)", default=DEFAULT_MAX_BYTES)
    max_records: int = doc("Most records in one pack", default=100_000)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_max_readings <= 1_000_000:
            raise ConfigValueError("batch_max_readings", "must be between 1 and 1000000")
        if not 0 <= self.batch_max_delay_ms <= 10_000:
            raise ConfigValueError("batch_max_delay_ms", "must be between 0 and 10000")
        if not 64 <= self.max_pack_bytes <= 64 << 20:
            raise ConfigValueError("max_pack_bytes", "must be between 64 and 67108864")
        if self.max_records < 1:
            raise ConfigValueError("max_records", "must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentitySection:
    """The OAuth2 authorization server: tenants, operators, API clients, gateway enrollment and tokens."""

    enabled: bool = doc("Serve the authorization server (/oauth/..., /jwks.json, enrollment)", default=True)
    db_path: Path | None = doc(
        "Identity database (relative to this file); none: identity.sqlite next to the store", default=None
    )
    issuer: str = doc("OAuth2 issuer URL; empty: the request's base URL (server.public_url when set)", default="")
    audience: str = doc("The 'aud' of access tokens, and what verifiers expect", default="roost")
    access_token_ttl_s: int = doc("Lifetime of an access token (JWT), seconds", default=600)
    refresh_token_ttl_s: int = doc("Lifetime of a refresh token, seconds (each use rotates it)", default=30 * 86400)
    device_code_ttl_s: int = doc("Lifetime of a device code and its user code, seconds", default=600)
    device_poll_interval_s: int = doc("Least seconds between a device's polls of the token endpoint", default=5)
    leeway_s: int = doc("Clock skew allowed when checking exp/iat (a Pi boots with a wrong clock)", default=60)
    key_rotation_days: float = doc("Days a signing key signs before a new one takes over; 0: never", default=30.0)
    throttle_burst: int = doc("Failed token-endpoint requests allowed at once per client and per address", default=20)
    throttle_rate_per_s: float = doc(
        "Failed token-endpoint requests per second refilled per client and address", default=1.0
    )
    device_authorizations_per_minute: int = doc(
        "Device-flow enrollment requests accepted per minute per source address (every request counts)", default=30
    )
    pending_device_codes_max: int = doc(
        "Most device-flow enrollments waiting for approval at once; more are refused until some expire", default=1000
    )
    purge_interval_s: int = doc(
        "Seconds between purges of expired tokens, codes, sessions and revocations", default=3600
    )
    allow_insecure_http: bool = doc(
        "Serve OAuth2 over plain http beyond loopback (behind a TLS-terminating proxy only)", default=False
    )
    session_ttl_s: int = doc("Longest an operator's dashboard session lasts, seconds", default=12 * 3600)
    session_idle_s: int = doc("An operator's session ends after this many seconds without a request", default=1800)
    operator_token_max_ttl_s: int = doc(
        "Longest lifetime of an operator token minted by `roost cloud admin token`, seconds", default=7 * 86400
    )
    authorization_code_ttl_s: int = doc(
        "Lifetime of an OpenID Connect authorization code (used once, within this), seconds", default=60
    )
    oidc: OidcSection = doc(
        "An external OpenID provider operators sign in at ([identity.oidc]); unset: the cloud's own sign-in",
        default_factory=OidcSection,
    )

    def __post_init__(self) -> None:
        if self.issuer:
            _check_url("issuer", self.issuer, ("http://", "https://"))
        if not self.audience:
            raise ConfigValueError("audience", "must not be empty")
        for key in (
            "access_token_ttl_s",
            "refresh_token_ttl_s",
            "device_code_ttl_s",
            "device_poll_interval_s",
            "session_ttl_s",
            "session_idle_s",
            "operator_token_max_ttl_s",
            "authorization_code_ttl_s",
            "device_authorizations_per_minute",
            "pending_device_codes_max",
            "purge_interval_s",
        ):
            if getattr(self, key) < 1:
                raise ConfigValueError(key, "must be at least 1")
        if not 0 <= self.leeway_s <= 3600:
            raise ConfigValueError("leeway_s", "must be between 0 and 3600")
        if self.key_rotation_days < 0:
            raise ConfigValueError("key_rotation_days", "must not be negative")
        if self.throttle_burst < 1:
            raise ConfigValueError("throttle_burst", "must be at least 1")
        if self.throttle_rate_per_s <= 0:
            raise ConfigValueError("throttle_rate_per_s", "must be greater than 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class RabbitMQSection:
    """RabbitMQ as the scale-out broker: the HTTP auth backend it asks, and its management API (docs/rabbitmq.md)."""

    enabled: bool = doc(
        "Answer RabbitMQ's rabbitmq_auth_backend_http at /rabbitmq/auth/{user,vhost,resource,topic}", default=False
    )
    vhost: str = doc("The only RabbitMQ virtual host the gateways and operators may use", default="/")
    exchange: str = doc("The exchange RabbitMQ's MQTT plugin publishes to (its mqtt.exchange)", default="amq.topic")
    allowed_networks: tuple[str, ...] = doc(
        "Addresses (CIDR) the auth endpoints answer; others get 403 (RabbitMQ cannot send a secret)",
        default=("127.0.0.0/8", "::1/128"),
    )
    management_url: str = doc(
        "RabbitMQ's management API (http://host:15672); set: revoking a token closes its connections", default=""
    )
    management_user: str = doc("Management API user (an administrator in RabbitMQ's internal database)", default="")
    management_password_file: Path | None = doc(
        "File holding the management user's password (relative to this file)", default=None
    )
    management_timeout_s: float = doc("Seconds one management API call may take", default=5.0)

    def __post_init__(self) -> None:
        if not self.vhost:
            raise ConfigValueError("vhost", "must not be empty (RabbitMQ's default virtual host is '/')")
        if not self.exchange:
            raise ConfigValueError("exchange", "must not be empty (RabbitMQ's MQTT plugin uses 'amq.topic')")
        for i, network in enumerate(self.allowed_networks):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigValueError(
                    f"allowed_networks[{i}]", f"{network!r} is not an address or CIDR network"
                ) from exc
        if self.management_url:
            _check_url("management_url", self.management_url, ("http://", "https://"))
            if not self.management_user:
                raise ConfigValueError("management_user", "management_url needs a management user")
            if self.management_password_file is None:
                raise ConfigValueError("management_password_file", "management_url needs the user's password file")
        if self.management_timeout_s <= 0:
            raise ConfigValueError("management_timeout_s", "must be greater than 0")

    def management_password(self) -> str:
        """The management user's password, read from its file."""
        if self.management_password_file is None:
            return ""
        return self.management_password_file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatesSection:
    """Software-update bundles the cloud signs and serves, and the campaigns that roll them out (docs/ota.md)."""

    folder: Path = doc(
        "Folder of uploaded bundles, one subfolder per tenant (relative to this file)", default=Path("state/bundles")
    )
    key_file: Path | None = doc(
        "The cloud's private update key (`roost bundle keygen`; gateways trust its .pub); unset: no campaigns",
        default=None,
    )
    grant_ttl_s: float = doc(
        "How long a download link a campaign sends a gateway stays valid, seconds", default=7 * 86400.0
    )
    max_campaign_gateways: int = doc("Most gateways one campaign selects", default=10_000)

    def __post_init__(self) -> None:
        if self.grant_ttl_s < 60:
            raise ConfigValueError("grant_ttl_s", "must be at least 60 seconds")
        if self.max_campaign_gateways < 1:
            raise ConfigValueError("max_campaign_gateways", "must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanEntry:
    """A plan of the managed API: a token bucket of ``burst`` requests refilled at ``rate_per_s``."""

    name: str = doc("Plan name (letters, digits, '-', '_')")
    rate_per_s: float = doc("Requests per second refilled", default=5.0)
    burst: int = doc("Requests that may come at once (the bucket's size)", default=10)
    unlimited: bool = doc("Never throttled (rate_per_s and burst are ignored)", default=False)
    description: str = doc("What the developer portal says about it", default="")

    def __post_init__(self) -> None:
        from cloud.apimgmt.plans import check_plan_values

        try:
            check_plan_values(self.name, self.rate_per_s, self.burst)
        except ValueError as exc:
            key, _, problem = str(exc).partition(": ")
            raise ConfigValueError(key, problem) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSection:
    """The managed API (docs/developers.md): plans, throttling, usage analytics and the developer portal."""

    enabled: bool = doc("Serve applications, plans, usage and /developers (needs [identity])", default=True)
    throttle: bool = doc("Throttle API requests by plan (429 with Retry-After past the plan's rate)", default=True)
    plans: tuple[PlanEntry, ...] = doc(
        "Each tenant's plans until an admin sets its own (PUT /api/v1/plans); empty: the built-in "
        "free, standard, unlimited, operator and anonymous",
        default=(),
    )
    default_plan: str = doc("Plan of a new application, and of a caller the policies refuse its plan", default="free")
    operator_plan: str = doc("Plan of operators and observers", default="operator")
    client_plan: str = doc(
        "Plan of API clients made outside the portal (`roost cloud admin client-create`)", default="standard"
    )
    anonymous_plan: str = doc("Plan of requests without a credential (an open API), per address", default="anonymous")
    usage_flush_s: float = doc("Seconds between writes of the usage counters to the database", default=5.0)
    usage_retention_days: int = doc("Days of per-minute usage kept", default=90)

    def __post_init__(self) -> None:
        if self.usage_flush_s <= 0:
            raise ConfigValueError("usage_flush_s", "must be greater than 0")
        if self.usage_retention_days < 1:
            raise ConfigValueError("usage_retention_days", "must be at least 1")
        names = [p.name for p in self.plans]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigValueError(f"plans[{i}].name", f"{name!r} is listed twice")
        if names:
            for key in ("default_plan", "operator_plan", "client_plan", "anonymous_plan"):
                if getattr(self, key) not in names:
                    raise ConfigValueError(key, f"{getattr(self, key)!r} is not one of the plans ({', '.join(names)})")


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesSection:
    """Rules run in the cloud over the ingest stream, for rules that span gateways (docs/rules.md)."""

    enabled: bool = doc("Run cloud rules (and serve /api/v1/rules)", default=False)
    folder: Path = doc(
        "Folder of rule files, one subfolder per tenant: rules/default/*.toml (relative to this file)",
        default=Path("rules"),
    )
    tick_s: float = doc("Seconds between two ticks of the rules' timers (windows closing, absence)", default=0.5)
    watch_s: float = doc("Seconds between two looks at the folder for changed files", default=2.0)
    tags_refresh_s: float = doc("Seconds between two reads of the gateways' site and tags", default=10.0)
    max_future_s: float = doc("Readings stamped further ahead of the cloud's clock do not move the rules' clock",
                              default=300.0)  # fmt: skip
    queue_max: int = doc("Stored batches waiting for the rules, at most (then they are dropped, counted)",
                         default=10_000)  # fmt: skip
    command_timeout_s: float = doc("How long a command a cloud rule sends stays valid, seconds", default=300.0)
    amqp_queue: str = doc(
        "RabbitMQ: the quorum queue the rules worker (server.role = 'rules') consumes: every gateway's readings and"
        " status, whichever ingest worker stores them",
        default="roost.rules",
    )

    def __post_init__(self) -> None:
        for key in ("tick_s", "watch_s", "tags_refresh_s", "max_future_s"):
            if getattr(self, key) <= 0:
                raise ConfigValueError(key, "must be greater than 0")
        if self.queue_max < 1:
            raise ConfigValueError("queue_max", "must be at least 1")
        if not 1.0 <= self.command_timeout_s <= 86400.0:
            raise ConfigValueError("command_timeout_s", "must be between 1 and 86400 seconds")
        if not self.amqp_queue:
            raise ConfigValueError("amqp_queue", "must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportsSection:
    """Daily reports per site, made on a schedule (docs/reports.md)."""

    enabled: bool = doc("Make yesterday's report of each tenant every day at `at`", default=False)
    at: str = doc("Time of day (UTC, HH:MM) the daily reports are made", default="00:15")
    folder: Path = doc("Folder of the reports: tenant/day/ (relative to this file)", default=Path("state/reports"))
    tenants: tuple[str, ...] = doc("Tenants the schedule reports on; empty: every tenant with gateways", default=())

    def __post_init__(self) -> None:
        hour, sep, minute = self.at.partition(":")
        if not (sep and len(hour) == 2 and len(minute) == 2 and hour.isdigit() and minute.isdigit()) or not (
            int(hour) < 24 and int(minute) < 60
        ):
            raise ConfigValueError("at", f"{self.at!r} must be a UTC time of day as HH:MM (00:00 to 23:59)")
        for i, tenant in enumerate(self.tenants):
            _checked(f"tenants[{i}]", check_tenant, tenant)


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudConfig:
    """The whole cloud config file."""

    server: ServerSection = doc("HTTP server", default_factory=ServerSection)
    store: StoreSection = doc("Store", default_factory=StoreSection)
    retention: RetentionSection = doc("How long data is kept", default_factory=RetentionSection)
    broker: BrokerSection = doc("Embedded MQTT broker", default_factory=BrokerSection)
    auth: AuthSection = doc("Authentication and authorization", default_factory=AuthSection)
    ingest: IngestSection = doc("Ingest", default_factory=IngestSection)
    identity: IdentitySection = doc("Identity: OAuth2 authorization server", default_factory=IdentitySection)
    rabbitmq: RabbitMQSection = doc("RabbitMQ as the scale-out broker", default_factory=RabbitMQSection)
    updates: UpdatesSection = doc("Update bundles and campaigns", default_factory=UpdatesSection)
    api: ApiSection = doc("The managed API: plans, throttling, usage", default_factory=ApiSection)
    rules: RulesSection = doc("Cloud rules over the ingest stream", default_factory=RulesSection)
    reports: ReportsSection = doc("Daily reports per site", default_factory=ReportsSection)

    def __post_init__(self) -> None:
        if self.server.role != "all" and self.broker.kind != "rabbitmq":
            raise ConfigValueError(
                "server.role",
                f"{self.server.role!r} needs broker.kind = 'rabbitmq' (the embedded broker is in-process)",
            )
        if self.server.role == "rules" and not self.rules.enabled:
            raise ConfigValueError("server.role", "'rules' runs the cloud rules: set rules.enabled = true")

    @property
    def identity_db_path(self) -> Path:
        """The identity database: ``identity.db_path``, or identity.sqlite next to the store."""
        return self.identity.db_path or self.store.path.parent / "identity.sqlite"


def _check_url(key: str, url: str, schemes: tuple[str, ...]) -> None:
    if not url.startswith(schemes):
        raise ConfigValueError(key, f"{url!r} must start with {' or '.join(schemes)}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ConfigValueError(key, f"{url!r} is not a valid URL: {exc}") from exc
    if not parts.hostname:
        raise ConfigValueError(key, f"{url!r} names no host")


def _checked(key: str, check: Callable[[str], str], value: str) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise ConfigValueError(key, str(exc)) from exc


def _check_files(config: CloudConfig) -> None:
    """Check what can only be checked on disk (TLS and token files), with the key path of the failing entry."""
    for key in ("certfile", "keyfile"):
        file = getattr(config.server, key)
        if file is not None and not file.is_file():
            raise ConfigValueError(f"server.{key}", f"{file} is not a file")
    for i, obs in enumerate(config.auth.observers):
        try:
            secret = obs.secret()
        except OSError as exc:
            raise ConfigValueError(f"auth.observers[{i}].token_file", f"cannot be read: {exc.strerror}") from exc
        if len(secret) < 8:
            raise ConfigValueError(f"auth.observers[{i}].token_file", "holds a token shorter than 8 characters")
    try:
        config.identity.oidc.check_files()
    except ConfigValueError as exc:
        raise ConfigValueError(f"identity.oidc.{exc.key_path}", exc.problem) from exc
    if config.store.dsn_file is not None:
        try:
            config.store.postgresql_dsn()
        except OSError as exc:
            raise ConfigValueError("store.dsn_file", f"cannot be read: {exc.strerror}") from exc
    key_file = config.updates.key_file
    if key_file is not None and not key_file.is_file():
        raise ConfigValueError("updates.key_file", f"{key_file} is not a file (make it with `roost bundle keygen`)")
    if config.broker.amqp_password_file is not None:
        try:
            config.broker.amqp_password()
        except OSError as exc:
            raise ConfigValueError("broker.amqp_password_file", f"cannot be read: {exc.strerror}") from exc
    if config.rabbitmq.management_url:
        try:
            config.rabbitmq.management_password()
        except OSError as exc:
            raise ConfigValueError("rabbitmq.management_password_file", f"cannot be read: {exc.strerror}") from exc


def load(path: Path | str) -> CloudConfig:
    """Load and check a cloud config file; raise ConfigError naming the file and key path."""
    try:
        return typedconfig.load_file(CloudConfig, Path(path), check=_check_files)
    except typedconfig.ConfigFileError as exc:
        raise ConfigError(exc.path, exc.key_path, exc.problem) from exc


def loads(text: str, *, base_dir: Path, name: str = "<embedded>") -> CloudConfig:
    """Load a config from a string (the demo's embedded defaults); relative paths are under ``base_dir``."""
    try:
        return typedconfig.load_text(CloudConfig, text, base_dir=base_dir, name=name, check=_check_files)
    except typedconfig.ConfigFileError as exc:
        raise ConfigError(exc.path, exc.key_path, exc.problem) from exc
