"""The page's mDNS announcement with python-zeroconf, for real, on the loopback interface only: another
zeroconf instance (as a phone's browser would) finds ``roost-XXXX.local`` and resolves it to the page's port.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from gateway.localpage import cert, mdns
from tests.localpage import rig

LOOPBACK = ["127.0.0.1"]


class _Names:
    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        self.found = asyncio.Event()

    def add_service(self, zc: Any, type_: str, name: str) -> None:
        if name == self.wanted:
            self.found.set()

    def remove_service(self, zc: Any, type_: str, name: str) -> None:
        return None

    def update_service(self, zc: Any, type_: str, name: str) -> None:
        return None


async def test_the_page_is_found_and_resolved_as_roost_xxxx_local() -> None:
    host = cert.host_name(rig.GATEWAY_ID)
    assert host == "roost-ee42.local"
    port = rig.free_port()
    async with mdns.announced(host, port, interfaces=LOOPBACK) as up:
        assert up
        phone = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
        try:
            await phone.zeroconf.async_wait_for_start()
            listener = _Names("roost-ee42._https._tcp.local.")
            browser = AsyncServiceBrowser(phone.zeroconf, mdns.SERVICE_TYPE, listener=listener)
            try:
                async with asyncio.timeout(10):
                    await listener.found.wait()
            finally:
                await browser.async_cancel()
            info = AsyncServiceInfo(mdns.SERVICE_TYPE, "roost-ee42." + mdns.SERVICE_TYPE)
            assert await info.async_request(phone.zeroconf, 3000)
            assert info.port == port and info.server == "roost-ee42.local."
            assert info.parsed_addresses() == ["127.0.0.1"]
            assert info.properties == {b"path": b"/"}
        finally:
            await phone.async_close()


async def test_a_name_another_device_holds_is_not_taken_and_the_page_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    port = rig.free_port()
    async with mdns.announced("roost-beef.local", port, interfaces=LOOPBACK) as first:
        assert first
        async with mdns.announced("roost-beef.local", port + 1, interfaces=LOOPBACK) as second:
            assert not second
    assert "cannot be announced over mDNS as roost-beef.local" in caplog.text


def test_host_names_from_gateway_ids() -> None:
    assert cert.host_name("10000000a1b2c3d4") == "roost-c3d4.local"
    assert cert.host_name("3F2504E0-4F89-11D3-9A0C-0305E82C3301") == "roost-3301.local"
    assert cert.host_name("gw-1") == "roost-0001.local"
