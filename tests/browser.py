"""Debian's headless Chromium under Playwright, for the browser tests (local page, console, developer portal).

Playwright's own browser download is not reachable here, so it drives ``/usr/bin/chromium`` (Debian package
``chromium``; ``make deps`` installs it as root). The flags keep Chromium off the network it would call on its
own (updates, sync, QUIC), which this machine's closed network refuses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

needs_chromium = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (make deps, as root)"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="Playwright for Python is not installed (the dev extra)"
    ),
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's) under Playwright."""
    from playwright.async_api import async_playwright  # imported here: the tests are skipped without it

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
