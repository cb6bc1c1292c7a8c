"""The gateway id ``cloud`` is the cloud's own (its rules raise alerts under it): no gateway may take it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import ConfigError, loads
from cloud.identity import admin


def test_a_gateway_cannot_be_enrolled_as_cloud(tmp_path: Path) -> None:
    db = tmp_path / "identity.sqlite"
    admin.create_tenant(db, "acme")
    with pytest.raises(ValueError, match="'cloud' is reserved"):
        admin.enroll_gateway(db, tenant="acme", hardware_id=None, public_key=None, method="admin", gateway_id="cloud")
    # A board whose hardware id happens to be "cloud" gets a generated id instead.
    record = admin.enroll_gateway(db, tenant="acme", hardware_id="cloud", public_key=None, method="claim")
    assert record.id != "cloud"
    assert record.id.startswith("gw-")


def test_the_allow_list_refuses_cloud(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reserved"):
        loads('[[auth.gateways]]\nid = "cloud"\n', base_dir=tmp_path)
