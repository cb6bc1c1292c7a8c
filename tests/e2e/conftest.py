"""Fixtures for end-to-end tests: a real cloud and gateway on loopback, stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A cloud and a gateway (not started yet) with their own ports and state."""
    s = Site(tmp_path)
    try:
        yield s
    finally:
        s.stop_all()
