"""Network re-configuration (Wi-Fi SSID/PSK, static address) with automatic fall-back to the previous settings.

:class:`NetworkChanger` takes new settings, remembers the current ones, has the backend apply the new ones,
then checks for ``rollback_after_s`` that the cloud can still be reached (an HTTP GET of the cloud's
discovery document, through the backend). If it cannot, the previous settings are put back. A marker file
(``network-pending.json``) holds the previous settings during the trial, so a crash or a reboot in the
middle still ends in a roll-back when the daemon starts again (:meth:`NetworkChanger.resume`).

Backends: :class:`gateway.dm.nmcli.NmcliBackend` drives the image's NetworkManager with ``nmcli`` (one
connection profile, ``roost-wifi`` by default); :class:`FakeNetworkManager`
behaves like NetworkManager for the demo and the tests: it keeps the active settings in
``fake-network.json``, and settings it was told lose the cloud (an SSID or address in
``dm.fake_network_loses_cloud``) make the cloud unreachable, as a wrong PSK or a wrong subnet would.
A PSK is never logged, reported or returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

_LOGGER = logging.getLogger(__name__)
PENDING_FILE = "network-pending.json"
FAKE_FILE = "fake-network.json"
PROBE_TIMEOUT_S = 3.0
PROBE_EVERY_S = 1.0


class NetworkError(Exception):
    """Settings that cannot be applied, or a change that was rolled back; the message is the operator's."""


class NetworkBackend(Protocol):
    """What NetworkManager does for us: read, apply, and try the cloud over the network now active."""

    async def current(self) -> dict[str, Any]:
        """The active settings (``wifi``: ssid/psk, ``ipv4``: method/address/gateway/dns)."""

    async def apply(self, settings: dict[str, Any]) -> None:
        """Activate ``settings``; NetworkError if they cannot be."""

    async def cloud_reachable(self, url: str) -> bool:
        """Whether ``url`` answers over the network now active."""


def check_settings(args: dict[str, Any]) -> dict[str, Any]:
    """Validated settings from a ``network`` command's arguments; NetworkError names the argument."""
    out: dict[str, Any] = {}
    wifi = args.get("wifi")
    if wifi is not None:
        if not isinstance(wifi, dict) or not isinstance(wifi.get("ssid"), str) or not 1 <= len(wifi["ssid"]) <= 32:
            raise NetworkError("'wifi.ssid' must be 1-32 characters")
        psk = wifi.get("psk")
        if psk is not None and (not isinstance(psk, str) or not 8 <= len(psk) <= 63):
            raise NetworkError("'wifi.psk' must be 8-63 characters (WPA2 passphrase)")
        out["wifi"] = {"ssid": wifi["ssid"], "psk": psk}
    ipv4 = args.get("ipv4")
    if ipv4 is not None:
        if not isinstance(ipv4, dict) or ipv4.get("method") not in ("dhcp", "static"):
            raise NetworkError("'ipv4.method' must be 'dhcp' or 'static'")
        checked: dict[str, Any] = {"method": ipv4["method"]}
        if ipv4["method"] == "static":
            try:
                iface = ipaddress.ip_interface(str(ipv4.get("address")))
                gateway = ipaddress.ip_address(str(ipv4.get("gateway")))
                dns = [str(ipaddress.ip_address(str(d))) for d in ipv4.get("dns", [])]
            except ValueError as exc:
                raise NetworkError(f"'ipv4': {exc} (address like 192.168.1.50/24, gateway and dns addresses)") from None
            if gateway not in iface.network:
                raise NetworkError(f"'ipv4.gateway' {gateway} is not in {iface.network}")
            checked.update(address=str(iface), gateway=str(gateway), dns=dns)
        out["ipv4"] = checked
    if not out:
        raise NetworkError("give 'wifi' ({ssid, psk}) and/or 'ipv4' ({method: dhcp|static, address, gateway, dns})")
    return out


def public(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as they may be reported: the PSK replaced by whether there is one."""
    out: dict[str, Any] = json.loads(json.dumps(settings))
    wifi = out.get("wifi")
    if isinstance(wifi, dict) and "psk" in wifi:
        wifi["psk_set"] = bool(wifi.pop("psk"))
    return out


def _write_private(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        body = json.loads(path.read_text())
        if isinstance(body, dict):
            return body
    return None


def http_probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url`` answers (any HTTP status counts: the network reached it)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return bool(r.status)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


class FakeNetworkManager:
    """Behaves like NetworkManager for tests: settings persist; those in ``loses_cloud`` cut the cloud off."""

    def __init__(self, state_dir: Path, loses_cloud: tuple[str, ...] | list[str] = ()) -> None:
        self.path = state_dir / FAKE_FILE
        self.loses_cloud = set(loses_cloud)
        self.applied = 0

    async def current(self) -> dict[str, Any]:
        """The settings last applied (a DHCP wired link before any)."""
        found = await asyncio.to_thread(_read, self.path)
        return found if found is not None else {"ipv4": {"method": "dhcp"}}

    async def apply(self, settings: dict[str, Any]) -> None:
        """Make ``settings`` the active ones (kept across restarts)."""
        await asyncio.to_thread(_write_private, self.path, settings)
        self.applied += 1
        _LOGGER.info("network (fake NetworkManager): activated %s", json.dumps(public(settings)))

    def _cut_off(self, settings: dict[str, Any]) -> bool:
        wifi = settings.get("wifi") or {}
        ipv4 = settings.get("ipv4") or {}
        return wifi.get("ssid") in self.loses_cloud or ipv4.get("address") in self.loses_cloud

    async def cloud_reachable(self, url: str) -> bool:
        """False while settings that lose the cloud are active; else a real HTTP probe."""
        if self._cut_off(await self.current()):
            return False
        return await asyncio.to_thread(http_probe, url)


class NetworkChanger:
    """Applies new settings on probation and rolls back when the cloud cannot be reached with them."""

    def __init__(
        self,
        backend: NetworkBackend,
        state_dir: Path,
        probe_url: str,
        *,
        rollback_after_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.backend = backend
        self._pending = state_dir / PENDING_FILE
        self._url = probe_url
        self.rollback_after_s = rollback_after_s
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self.rollbacks = 0

    async def _reachable_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        for _ in range(int(seconds / PROBE_EVERY_S) + 2):  # bounded: one probe a second until the deadline
            if await self.backend.cloud_reachable(self._url):
                return True
            if time.monotonic() >= deadline:
                break
            await self._sleep(min(PROBE_EVERY_S, max(0.0, deadline - time.monotonic())))
        return False

    async def change(self, args: dict[str, Any]) -> dict[str, Any]:
        """Apply on probation; the result, or NetworkError saying it was rolled back and why."""
        new = check_settings(args)
        async with self._lock:
            previous = await self.backend.current()
            merged = {**previous, **new}
            await asyncio.to_thread(
                _write_private, self._pending, {"previous": previous, "until": time.time() + self.rollback_after_s}
            )
            try:
                try:
                    await self.backend.apply(merged)
                except NetworkError as exc:  # half-applied (the profile changed, activation failed): put it back
                    try:
                        await self._roll_back(previous, f"the new settings could not be activated ({exc})")
                    except NetworkError as again:
                        raise NetworkError(f"{exc}; putting the previous settings back failed too: {again}") from None
                    raise NetworkError(f"{exc}; the previous settings are active again") from None
                ok = await self._reachable_within(self.rollback_after_s)
                if not ok:
                    await self._roll_back(previous, "the cloud could not be reached with them")
                    raise NetworkError(
                        f"rolled back: the cloud could not be reached within {self.rollback_after_s:.0f} s "
                        f"with {json.dumps(public(new))}; the previous settings are active again"
                    )
            finally:
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(self._pending.unlink)
        _LOGGER.info("network: new settings kept (the cloud answers with them)")
        return {"applied": public(merged), "previous": public(previous), "checked_within_s": self.rollback_after_s}

    async def _roll_back(self, previous: dict[str, Any], why: str) -> None:
        self.rollbacks += 1
        _LOGGER.warning("network: %s: rolling back to the previous settings", why)
        await self.backend.apply(previous)

    async def resume(self) -> None:
        """After a restart in the middle of a trial: keep probing until its end, then roll back if needed."""
        pending = await asyncio.to_thread(_read, self._pending)
        if pending is None:
            return
        previous = pending.get("previous")
        until = pending.get("until")
        if isinstance(previous, dict) and isinstance(until, int | float):
            async with self._lock:
                if not await self._reachable_within(max(PROBE_EVERY_S, until - time.time())):
                    await self._roll_back(previous, "a trial of new settings was cut short by a restart")
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._pending.unlink)
