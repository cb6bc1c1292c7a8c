"""Fixtures for the cloud tests: a real cloud server on loopback (port 0)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.config import loads
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A running cloud with the test allow-list and observer tokens."""
    config = loads(BASE_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        yield server
