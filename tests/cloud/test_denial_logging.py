"""A client that keeps publishing where it may not is warned about once, then counted quietly."""

from __future__ import annotations

import logging

import pytest

from cloud.broker import plugins


def test_first_denial_warns_repeats_go_to_debug(caplog: pytest.LogCaptureFixture) -> None:
    plugins._WARNED.clear()
    with caplog.at_level(logging.DEBUG, logger="cloud.broker.plugins"):
        for _ in range(50):
            plugins._log_denial("PUBLISH denied and dropped", "gw-x", "roost/other/gw-y/telemetry")
        plugins._log_denial("PUBLISH denied and dropped", "gw-x", "roost/other/gw-z/telemetry")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, "one warning per client and topic"
    assert "gw-y" in warnings[0].getMessage() and "gw-z" in warnings[1].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 49


def test_the_memory_of_warnings_is_bounded() -> None:
    plugins._WARNED.clear()
    for i in range(plugins._WARNED_MAX + 100):
        plugins._log_denial("SUBSCRIBE denied", f"c{i}", "roost/#")
    assert len(plugins._WARNED) == plugins._WARNED_MAX
