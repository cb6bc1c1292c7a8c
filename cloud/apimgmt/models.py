"""Request and response bodies of the managed API, as the OpenAPI document shows them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cloud.apimgmt.plans import MAX_BURST, MAX_RATE


class ApplicationBody(BaseModel):
    """A new application (``POST /api/v1/applications``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80, description="What the application is, for people")
    scopes: list[str] = Field(
        min_length=1,
        max_length=10,
        description="What it may do: readings:read, gateways:read, events:read, commands:write, topics:read",
    )
    plan: str | None = Field(default=None, max_length=40, description="Its plan (default: the default plan)")


class PlanChoice(BaseModel):
    """An application's new plan (``PUT /api/v1/applications/{id}/plan``)."""

    model_config = ConfigDict(extra="forbid")
    plan: str = Field(min_length=1, max_length=40, description="The plan's name")


class PlanModel(BaseModel):
    """A plan: a token bucket of ``burst`` requests refilled at ``rate_per_s``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", description="The plan's name")
    rate_per_s: float = Field(gt=0, le=MAX_RATE, description="Requests per second refilled")
    burst: int = Field(ge=1, le=MAX_BURST, description="Requests that may come at once")
    unlimited: bool = Field(default=False, description="Never throttled (rate and burst are ignored)")
    description: str = Field(default="", max_length=500, description="What the portal says about it")


class PlansBody(BaseModel):
    """A tenant's whole set of plans (``PUT /api/v1/plans``)."""

    model_config = ConfigDict(extra="forbid")
    items: list[PlanModel] = Field(min_length=1, max_length=50)


class PlansPage(BaseModel):
    """The caller's tenant's plans, and which plans the roles fall under."""

    items: list[PlanModel]
    default_plan: str = Field(description="Plan of new applications, and of a caller refused its own")
    operator_plan: str = Field(description="Plan of operators and observers")
    client_plan: str = Field(description="Plan of API clients that are not applications (made by an admin)")
    anonymous_plan: str = Field(description="Plan of requests without a credential")


class Application(BaseModel):
    """An application: an OAuth2 client (client credentials grant) with scopes and a plan."""

    id: str = Field(description="The application's id, which is its OAuth2 client_id")
    client_id: str
    name: str
    tenant: str
    owner: str = Field(description="The operator who registered it")
    plan: str
    scopes: list[str]
    created: str = Field(description="RFC 3339")
    secret_rotated: str | None = Field(description="When the secret was last replaced (RFC 3339)")


class ApplicationWithSecret(Application):
    """An application with its client secret: shown once, when made or replaced; stored only hashed."""

    client_secret: str
    token_endpoint: str = Field(description="Where to exchange client_id and client_secret for access tokens")


class ApplicationsPage(BaseModel):
    """A page of applications."""

    items: list[Application]
    next_cursor: str | None


class UsageItem(BaseModel):
    """Calls of one client to one endpoint (method and route template) over the range asked."""

    client: str
    endpoint: str = Field(description="Method and route template, e.g. 'GET /api/v1/readings'")
    calls: int
    errors_4xx: int
    errors_5xx: int
    throttled: int = Field(description="Calls refused with 429 (also counted in errors_4xx)")
    latency_p50_ms: float | None = Field(description="Median latency (upper edge of its histogram bin)")
    latency_p95_ms: float | None
    first: str = Field(description="First minute with calls (RFC 3339)")
    last: str = Field(description="Last minute with calls (RFC 3339)")


class UsageMinute(BaseModel):
    """Calls and errors in one minute."""

    minute: str
    calls: int
    errors: int


class UsagePage(BaseModel):
    """Usage per client and endpoint, and per minute."""

    items: list[UsageItem]
    minutes: list[UsageMinute]
