"""NetworkManager through its command-line client ``nmcli``: the gateway's Wi-Fi and IPv4 settings.

One connection profile holds what an operator may change (``roost-wifi``, the one first boot writes from
``roost.toml``): its SSID and PSK, and its IPv4 method, address, gateway and DNS servers. Reading uses
``nmcli --show-secrets --get-values ... connection show ID``; applying modifies the profile (creating it for
a first Wi-Fi network) and activates it with ``nmcli --wait N connection up ID``. On the image, a polkit rule
lets the gateway's user modify system connections and nothing else of NetworkManager's
(``systemd/polkit/``).

The PSK goes to ``nmcli`` on its command line: the gateway's unit hides its processes from other users
(``ProtectProc=invisible``), and the PSK never reaches a log or a result (errors are scrubbed of it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import Any

from gateway.dm.network import NetworkError, http_probe

_LOGGER = logging.getLogger(__name__)
FIELDS = (
    "802-11-wireless.ssid",
    "802-11-wireless-security.psk",
    "ipv4.method",
    "ipv4.addresses",
    "ipv4.gateway",
    "ipv4.dns",
)
NMCLI_TIMEOUT_S = 60.0


def unescape(value: str) -> str:
    """A value as ``nmcli --get-values`` prints it (``\\:`` and ``\\\\`` escaped) back to itself."""
    out: list[str] = []
    chars = iter(value)
    for c in chars:
        out.append(next(chars, "\\") if c == "\\" else c)
    return "".join(out)


def parse_profile(lines: list[str]) -> dict[str, Any]:
    """The settings from ``--get-values`` of :data:`FIELDS` (one line each, in that order)."""
    values = dict(zip(FIELDS, (unescape(x) for x in lines), strict=False))
    out: dict[str, Any] = {}
    ssid = values.get("802-11-wireless.ssid", "")
    if ssid:
        out["wifi"] = {"ssid": ssid, "psk": values.get("802-11-wireless-security.psk") or None}
    method = values.get("ipv4.method", "auto")
    if method == "manual":
        addresses = [a.strip() for a in values.get("ipv4.addresses", "").split(",") if a.strip()]
        dns = [d.strip() for d in values.get("ipv4.dns", "").split(",") if d.strip()]
        out["ipv4"] = {
            "method": "static",
            "address": addresses[0] if addresses else "",
            "gateway": values.get("ipv4.gateway", ""),
            "dns": dns,
        }
    else:
        out["ipv4"] = {"method": "dhcp"}
    return out


def modify_args(settings: dict[str, Any]) -> list[str]:
    """``nmcli connection modify ID`` property/value pairs for ``settings`` (see check_settings)."""
    args: list[str] = []
    wifi = settings.get("wifi")
    if isinstance(wifi, dict):
        args += ["802-11-wireless.ssid", str(wifi["ssid"])]
        if wifi.get("psk"):
            args += ["802-11-wireless-security.key-mgmt", "wpa-psk", "802-11-wireless-security.psk", str(wifi["psk"])]
    ipv4 = settings.get("ipv4")
    if isinstance(ipv4, dict):
        if ipv4.get("method") == "static":
            dns = ",".join(str(d) for d in ipv4.get("dns", []))
            args += ["ipv4.method", "manual", "ipv4.addresses", str(ipv4["address"]), "ipv4.gateway",
                     str(ipv4["gateway"]), "ipv4.dns", dns]  # fmt: skip
        else:
            args += ["ipv4.method", "auto", "ipv4.addresses", "", "ipv4.gateway", "", "ipv4.dns", ""]
    return args


class NmcliBackend:
    """Reads and applies the gateway's network settings with ``nmcli``."""

    def __init__(self, connection: str = "roost-wifi", nmcli: str = "nmcli", wait_s: int = 30) -> None:
        self.connection = connection
        self._nmcli = nmcli
        self.wait_s = wait_s

    async def _run(self, *args: str, secret: str | None = None) -> list[str]:
        exe = shutil.which(self._nmcli)
        if exe is None:
            raise NetworkError(
                "network settings need NetworkManager: no nmcli on this gateway (the Roost image has it)"
            )
        proc = await asyncio.create_subprocess_exec(
            exe, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"},
        )  # fmt: skip
        try:
            async with asyncio.timeout(NMCLI_TIMEOUT_S):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise NetworkError(f"NetworkManager did not answer within {NMCLI_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            message = (err.decode(errors="replace").strip() or out.decode(errors="replace").strip())[-300:]
            if secret:
                message = message.replace(secret, "[redacted]")
            raise NetworkError(f"NetworkManager refused: {message or f'nmcli exit {proc.returncode}'}")
        return out.decode(errors="replace").splitlines()

    async def _exists(self) -> bool:
        names = await self._run("--terse", "--get-values", "NAME", "connection", "show")
        return self.connection in (unescape(n) for n in names)

    async def current(self) -> dict[str, Any]:
        """The profile's settings (a DHCP link with no Wi-Fi when there is no profile yet)."""
        if not await self._exists():
            return {"ipv4": {"method": "dhcp"}}
        lines = await self._run(
            "--show-secrets", "--terse", "--get-values", ",".join(FIELDS), "connection", "show", self.connection
        )
        return parse_profile(lines)

    async def apply(self, settings: dict[str, Any]) -> None:
        """Write ``settings`` into the profile (made for a first Wi-Fi network) and activate it."""
        wifi = settings.get("wifi")
        psk = str(wifi.get("psk") or "") if isinstance(wifi, dict) else ""
        if not await self._exists():
            if not isinstance(wifi, dict):
                raise NetworkError(f"there is no connection {self.connection!r} to change: give 'wifi' to make one")
            await self._run(
                "connection", "add", "type", "wifi", "con-name", self.connection, "ifname", "*",
                "ssid", str(wifi["ssid"]),
            )  # fmt: skip
        pairs = modify_args(settings)
        if pairs:
            await self._run("connection", "modify", self.connection, *pairs, secret=psk)
        await self._run("--wait", str(self.wait_s), "connection", "up", self.connection, secret=psk)
        _LOGGER.info("network: NetworkManager activated %s", self.connection)

    async def cloud_reachable(self, url: str) -> bool:
        """An HTTP probe over the network now active."""
        return await asyncio.to_thread(http_probe, url)
