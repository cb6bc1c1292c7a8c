"""The shapes of the API's answers (pydantic), for /openapi.json and for checking what the routes return.

Item models allow members they do not name (``extra="allow"``), so a route may add one before its model
says so; lists follow docs/api.md's paging (``items`` and ``next_cursor``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Value = float | bool | str


class Item(BaseModel):
    """An object that may carry more members than its model names."""

    model_config = ConfigDict(extra="allow")


class Page(Item):
    """A page of a list."""

    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


class Reading(Item):
    gateway: str
    sensor: str
    metric: str
    value: Value = Field(description="A number, a boolean or a string (SenML v, vb, vs)")
    unit: str | None
    ts: str = Field(description="RFC 3339, UTC")


class ReadingBucket(Item):
    """One rollup bucket of a sensor's metric (``resolution`` 1m or 1h): numeric readings only."""

    t: str = Field(description="The start of the bucket, RFC 3339, UTC")
    min: float
    max: float
    avg: float
    count: int = Field(description="Readings in the bucket")
    last: float = Field(description="The bucket's latest value")
    last_ts: str = Field(description="The time of last, RFC 3339, UTC")


class ReadingsPage(Page):
    items: list[Reading | ReadingBucket] = Field(description="Readings, or rollup buckets with resolution 1m/1h")
    resolution: str | None = Field(default=None, description="With resolution given: 1m or 1h (raw: absent)")
    next: str | None = Field(description="The same as next_cursor (the readings contract's name)")


class Gateway(Item):
    id: str
    tenant: str
    online: bool
    last_seen: str | None = Field(description="RFC 3339, UTC; null if never seen")
    health: dict[str, Any] | None = Field(description="The gateway's latest health report")
    ingest: dict[str, int] = Field(description="Ingest counters of this gateway")


class GatewaysPage(Page):
    items: list[Gateway]


class Counters(BaseModel):
    counters: dict[str, int]


class PolicyItem(Item):
    id: str
    effect: str
    text: str


class PolicySet(Item):
    version: int
    text: str
    items: list[PolicyItem]


class PolicyReplaced(Item):
    version: int
    sha256: str
    by: str


class PolicyVersion(Item):
    version: int
    by: str
    at: str
    comment: str
    sha256: str
    text: str


class PolicyHistoryPage(Page):
    items: list[PolicyVersion]


class Health(Item):
    status: str = Field(description="ok, degraded (an API worker without its broker: reads still work) or failing")
    store: str
    broker: str
    counters: dict[str, int]


class DiscoveryDocument(Item):
    mqtt_ws_url: str
    api_url: str
    ack: str
    senml_encodings: list[str]
    senml_compression: list[str]
    max_pack_bytes: int
    mqtt_tcp_url: str | None = None
    issuer: str | None = None


class Event(Item):
    gateway: str
    id: str
    kind: str
    ts: str
    key: str
    rule: str | None
    state: str | None
    severity: str | None
    message: str
    sensor: str | None
    metric: str | None
    value: Value | None
    data: dict[str, Any]


class EventsPage(Page):
    items: list[Event]
    next: str | None = Field(description="The same as next_cursor (kept for existing clients)")


class Alert(Item):
    gateway: str
    key: str
    state: str = Field(description="open or cleared")
    severity: str
    message: str
    rule: str | None
    sensor: str | None
    metric: str | None
    value: Value | None
    first_raised: str | None
    last_change: str
    raises: int
    acknowledged_by: str | None
    acknowledged_at: str | None


class AlertsPage(Page):
    items: list[Alert]


class Command(Item):
    request_id: str
    tenant: str
    gateway: str
    command: str
    args: dict[str, Any]
    issued_by: str
    issued_at: float
    deadline: float
    status: str = Field(description="pending, ok, error, unknown, invalid, expired or timeout")
    result: dict[str, Any] | None
    error: str | None
    finished: float | None
    sends: int


class CommandsPage(Page):
    items: list[Command]


class FleetGateway(Item):
    id: str
    tenant: str
    online: bool
    last_seen: float | None
    version: str | None
    tags: list[str]
    site: str | None
    in_sync: bool


class FleetGatewaysPage(Page):
    items: list[FleetGateway]


class Tags(Item):
    gateway: str
    tags: list[str]
    site: str | None


class GatewayState(Item):
    gateway: str
    desired: dict[str, Any] | None
    reported: dict[str, Any] | None
    reported_at: float | None
    in_sync: bool


class BulkResult(Item):
    command: str
    selected: int
    summary: dict[str, int]
    items: list[dict[str, Any]]


class Revocation(Item):
    gateway: str
    tokens_revoked: int
    stolen: bool
    at: float


class AuditEntry(Item):
    at: float
    who: str
    action: str
    target: str
    detail: Any


class AuditPage(Page):
    items: list[AuditEntry]


class Bundle(Item):
    name: str
    version: str
    hardware: list[str]
    sha256: str
    size: int
    created: str
    uploaded_at: float
    uploaded_by: str
    key_id: str


class BundlesPage(Page):
    items: list[Bundle]


class Campaign(Item):
    id: str
    tenant: str
    bundle: str
    version: str
    state: str = Field(description="running, halted or completed")
    stage: int
    stages: list[int]
    summary: dict[str, int]
    gateways: list[dict[str, Any]]


class CampaignsPage(Page):
    items: list[Campaign]


class Approval(Item):
    gateway_id: str
    tenant: str
    hardware_id: str | None


class Denial(Item):
    user_code: str
    status: str


class DesiredState(Item):
    version: int


class OperatorSession(Item):
    operator: str
    tenant: str
    role: str
    expires: str = Field(description="RFC 3339: when the session ends at the latest")
    idle_expires: str = Field(description="RFC 3339: when it ends if no request comes before")


class SignedIn(OperatorSession):
    csrf_token: str = Field(description="Send it in X-Roost-CSRF with every unsafe request of the session")


class AccessToken(Item):
    token_type: str = Field(description="Bearer")
    access_token: str = Field(description="A JWT (RFC 9068)")
    expires_in: int
    scope: str


class OAuthToken(AccessToken):
    """RFC 6749 §5.1 (gateways also get refresh_token, gateway_id and tenant)."""

    refresh_token: str | None = None


class DeviceAuthorization(Item):
    """RFC 8628 §3.2."""

    device_code: str
    user_code: str
    verification_uri: str
    expires_in: int
    interval: int | None = None
