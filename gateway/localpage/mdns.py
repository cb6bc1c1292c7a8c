"""Announcing the page over mDNS as ``roost-XXXX.local`` (python-zeroconf): service ``_https._tcp``.

A phone or laptop on the site's network then opens ``https://roost-XXXX.local/`` without knowing the
gateway's address. Failing to announce (no multicast on the network, a port taken by avahi without
sharing) is logged and the page carries on: it is still reachable by address.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Sequence

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_https._tcp.local."


def _addresses(interfaces: Sequence[str] | None) -> list[bytes]:
    """The addresses announced: the given ones, else every IPv4/IPv6 address of this host but loopback."""
    if interfaces:
        return [socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in interfaces]
    import ifaddr

    out: list[bytes] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                out.append(socket.inet_aton(ip.ip))
            elif ip.is_IPv6 and isinstance(ip.ip, tuple) and ip.ip[0] != "::1" and not ip.ip[0].startswith("fe80"):
                out.append(socket.inet_pton(socket.AF_INET6, ip.ip[0]))
    return out


@contextlib.asynccontextmanager
async def announced(host: str, port: int, *, interfaces: Sequence[str] | None = None) -> AsyncIterator[bool]:
    """Announce ``host`` (``roost-XXXX.local``) with an ``_https._tcp`` service on ``port`` while the ``with`` lasts.

    Yields whether the announcement is up. ``interfaces`` limits it to those addresses (tests use 127.0.0.1).
    """
    from zeroconf import IPVersion, NonUniqueNameException, ServiceInfo
    from zeroconf.asyncio import AsyncZeroconf

    label = host.removesuffix(".local")
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{label}.{SERVICE_TYPE}",
        port=port,
        addresses=_addresses(interfaces),
        server=f"{host}.",
        properties={"path": "/"},
    )
    zc: AsyncZeroconf | None = None
    up = False
    try:
        zc = (
            AsyncZeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)
            if interfaces
            else AsyncZeroconf(ip_version=IPVersion.All)
        )
        await zc.async_register_service(info, allow_name_change=False)
        up = True
        _LOGGER.info("Local page announced over mDNS as %s (port %d)", host, port)
    except (OSError, NonUniqueNameException, ValueError) as exc:
        _LOGGER.warning("The local page cannot be announced over mDNS as %s (%s): open it by address", host, exc)
    try:
        yield up
    finally:
        if zc is not None:
            with contextlib.suppress(Exception):  # going away: nothing to do about a failure
                if up:
                    await zc.async_unregister_service(info)
                await zc.async_close()
