"""Plans: named rate tiers (a token bucket of ``burst`` requests refilled at ``rate_per_s``), held per tenant.

A tenant uses the configured plans (``[[api.plans]]``, else :data:`BUILT_IN`) until an admin sets its own
with ``PUT /api/v1/plans``; the throttle reads the current set on every request, so a change applies to the
next request. Whether a caller may be throttled under a plan at all is the policies' ``use_plan`` decision
(:func:`plan_resource` is the resource it is asked about).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cloud.policy.model import Resource

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
MAX_RATE = 1_000_000.0
MAX_BURST = 1_000_000
MAX_PLANS = 50


def check_plan_values(name: str, rate_per_s: float, burst: int) -> None:
    """ValueError("key: problem") for a plan name, rate or burst that cannot be used."""
    if not _NAME.match(name):
        raise ValueError(f"name: {name!r} must be 1-40 letters, digits, '-' or '_' (starting with a letter or digit)")
    if isinstance(rate_per_s, bool) or not math.isfinite(rate_per_s) or not 0 < rate_per_s <= MAX_RATE:
        raise ValueError(f"rate_per_s: must be a number greater than 0 and at most {MAX_RATE:g}")
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
        raise ValueError(f"burst: must be a whole number from 1 to {MAX_BURST}")


@dataclass(frozen=True, slots=True)
class Plan:
    """One plan; ``unlimited`` plans are never throttled."""

    name: str
    rate_per_s: float
    burst: int
    unlimited: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        check_plan_values(self.name, self.rate_per_s, self.burst)
        if len(self.description) > 500:
            raise ValueError("description: at most 500 characters")

    @property
    def window_s(self) -> int:
        """Seconds an empty bucket takes to fill again (the ``w`` of the RateLimit-Policy field)."""
        return max(1, math.ceil(self.burst / self.rate_per_s))

    def as_json(self) -> dict[str, Any]:
        """The plan as the API shows it."""
        return {
            "name": self.name,
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "unlimited": self.unlimited,
            "description": self.description,
        }


BUILT_IN: tuple[Plan, ...] = (
    Plan("free", 5.0, 10, description="For trying things out: 5 requests a second, 10 at once"),
    Plan("standard", 50.0, 100, description="For production integrations: 50 requests a second, 100 at once"),
    Plan("unlimited", 1.0, 1, unlimited=True, description="Never throttled (only where the policies allow it)"),
    Plan("operator", 200.0, 400, description="People signed in to the console and their scripts"),
    Plan("anonymous", 20.0, 60, description="Requests without a credential (an open API), per address"),
)


def plan_of_json(index: int, raw: Any) -> Plan:
    """A plan from the API's JSON; ValueError("items[i].key: problem")."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"items[{index}]: must be an object with name, rate_per_s and burst")
    unknown = set(raw) - {"name", "rate_per_s", "burst", "unlimited", "description"}
    if unknown:
        raise ValueError(f"items[{index}].{sorted(unknown)[0]}: unknown field")
    name, rate, burst = raw.get("name"), raw.get("rate_per_s", 1.0), raw.get("burst", 1)
    unlimited, description = raw.get("unlimited", False), raw.get("description", "")
    if not isinstance(name, str):
        raise ValueError(f"items[{index}].name: must be a string")
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise ValueError(f"items[{index}].rate_per_s: must be a number")
    if not isinstance(unlimited, bool):
        raise ValueError(f"items[{index}].unlimited: must be true or false")
    if not isinstance(description, str):
        raise ValueError(f"items[{index}].description: must be a string")
    try:
        return Plan(name, float(rate), burst, unlimited, description)
    except ValueError as exc:
        raise ValueError(f"items[{index}].{exc}") from None


def plan_set(plans: Iterable[Plan], *, required: Iterable[str] = ()) -> dict[str, Plan]:
    """Plans by name; ValueError naming a duplicate, too many plans, or a required plan that is missing."""
    found: dict[str, Plan] = {}
    for i, plan in enumerate(plans):
        if plan.name in found:
            raise ValueError(f"items[{i}].name: {plan.name!r} is listed twice")
        found[plan.name] = plan
    if not found:
        raise ValueError("items: give at least one plan")
    if len(found) > MAX_PLANS:
        raise ValueError(f"items: at most {MAX_PLANS} plans")
    missing = sorted(set(required) - set(found))
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise ValueError(f"items: {names} is needed (in use or configured) and may not be removed")
    return found


def plan_resource(tenant: str, plan: Plan) -> Resource:
    """The Cedar ``Plan`` resource of a tenant's plan (what ``use_plan`` is decided on)."""
    attrs = (
        ("tenant", {"__entity": {"type": "Tenant", "id": tenant}}),
        ("name", plan.name),
        ("unlimited", plan.unlimited),
    )
    rid = f"{tenant}/{plan.name}"
    return Resource("Plan", rid, attrs, ("plan", rid, plan.unlimited))
