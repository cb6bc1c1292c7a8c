"""A running gateway with its local page, per test (the page keeps its sessions in memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.daemon import Daemon
from tests.localpage import rig


@dataclass
class Site:
    """The gateway, its page's port and state folder, and a browser signed out."""

    daemon: Daemon
    port: int
    state: Path
    config: Path
    browser: rig.Browser

    def another_browser(self) -> rig.Browser:
        """A second client with its own cookies."""
        return rig.Browser(self.port, self.state)


@pytest.fixture
async def site(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    marker = request.node.get_closest_marker("page_config")
    extra = marker.kwargs.get("extra", "") if marker else ""
    pin_set = marker.kwargs.get("pin_set", True) if marker else True
    port = rig.free_port()
    cfg = rig.write_config(tmp_path, port, extra=extra, pin_set=pin_set)
    async with rig.gateway(cfg, port) as d:
        browser = rig.Browser(port, tmp_path / "state")
        try:
            yield Site(d, port, tmp_path / "state", cfg, browser)
        finally:
            await browser.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "page_config(extra='', pin_set=True): the local page's gateway.toml extras")
