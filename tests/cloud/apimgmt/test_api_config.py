"""The [api] table of cloud.toml: plans and the roles' plans, and what a wrong value is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import loads
from cloud.errors import ConfigError

PLANS = """
[api]
default_plan = "basic"
operator_plan = "basic"
client_plan = "basic"
anonymous_plan = "basic"
plans = [{ name = "basic", rate_per_s = 2.5, burst = 4, description = "for all" }]
"""


def test_configured_plans_are_read(tmp_path: Path) -> None:
    api = loads(PLANS, base_dir=tmp_path).api
    assert [(p.name, p.rate_per_s, p.burst) for p in api.plans] == [("basic", 2.5, 4)]
    assert api.default_plan == "basic" and api.throttle and api.enabled


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ('[api]\nplans = [{ name = "a b" }]', "api.plans[0].name"),
        ('[api]\nplans = [{ name = "x", rate_per_s = 0 }]', "api.plans[0].rate_per_s"),
        ('[api]\nplans = [{ name = "x", burst = 0 }]', "api.plans[0].burst"),
        (PLANS.replace('default_plan = "basic"', 'default_plan = "gold"'), "api.default_plan"),
        (PLANS.replace("plans = [", 'plans = [{ name = "basic" }, '), "api.plans[1].name"),
        ("[api]\nusage_flush_s = 0", "api.usage_flush_s"),
        ("[api]\nusage_retention_days = 0", "api.usage_retention_days"),
        ("[api]\nthrottle = 3", "api.throttle"),
    ],
)
def test_a_wrong_value_is_named(tmp_path: Path, text: str, key_path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(text, base_dir=tmp_path)
    assert caught.value.key_path == key_path, caught.value
