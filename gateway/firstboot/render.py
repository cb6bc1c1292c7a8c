"""The text of each system file first boot writes: gateway.toml, /etc/hosts, NetworkManager keyfiles, ...

Pure functions of the checked settings, so the tests can compare them and a re-run writes the same bytes.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from gateway.firstboot import paths
from gateway.firstboot.settings import Settings, StaticAddress, Wifi
from gateway.firstboot.tomlwrite import dumps

_NS = uuid.UUID("5c1f4a8e-8f0e-4a7e-9d55-2f2b8a1c0e11")
"""Namespace of the connections' UUIDs: the same roost.toml gives the same UUID on every run."""


def gateway_toml(settings: Settings, *, recovery: bool) -> str:
    """gateway.toml for ``settings``; ``recovery``: roost.toml has problems, so only the local page runs."""
    from gateway.config import GatewayConfig

    data: dict[str, Any] = {
        "gateway": {"state_dir": paths.STATE_DIR},
    }
    cloud = settings.cloud
    if cloud is not None:
        data["gateway"]["tenant"] = cloud.tenant
        data["cloud"] = {"url": cloud.url}
        if cloud.ca_pem:
            data["cloud"]["ca_file"] = paths.CLOUD_CA
    if recovery:
        # Nothing leaves the gateway and no sensor is read until roost.toml is fixed; the local page shows why.
        data["identity"] = {"enroll": "off"}
        data["adapters"] = {"coap": {"enabled": False}}
    else:
        enrollment = settings.enrollment
        if enrollment is not None and enrollment.method == "claim-token":
            data["identity"] = {"claim_token_file": paths.CLAIM_TOKEN}
        if settings.adapters:
            data["adapters"] = settings.adapters
        if settings.paired:
            data["paired"] = list(settings.paired)
        data["update"] = {"root": paths.UPDATE_ROOT, "public_key_file": paths.UPDATE_PUBKEY}
    fields = {f.name for f in dataclasses.fields(GatewayConfig)}
    if "local" in fields:
        data["local"] = {"enabled": True}
    header = (
        "Written by roost first boot from roost.toml"
        + (" (which has problems: see the local page)" if recovery else "")
        + ".\nEvery key: docs/gateway-config.md. First boot writes this file again when it runs again."
    )
    return dumps(data, header)


def hostname_file(name: str) -> str:
    """/etc/hostname."""
    return name + "\n"


DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
    "ff02::1\t\tip6-allnodes\n"
    "ff02::2\t\tip6-allrouters\n"
)


def hosts_file(name: str, current: str | None) -> str:
    """/etc/hosts with ``127.0.1.1 name`` (Debian's convention), keeping every other line of ``current``."""
    lines = [ln for ln in (current or DEFAULT_HOSTS).splitlines() if ln.split("#")[0].split()[:1] != ["127.0.1.1"]]
    at = next((i + 1 for i, ln in enumerate(lines) if ln.split()[:1] == ["127.0.0.1"]), 0)
    lines.insert(at, f"127.0.1.1\t{name}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    """A GKeyFile (NetworkManager keyfile) string value."""
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if out.startswith(" "):
        out = "\\s" + out[1:]
    if out.endswith(" "):
        out = out[:-1] + "\\s"
    return out


def _ssid(ssid: str) -> str:
    raw = ssid.encode()
    plain = ssid.isascii() and ssid.isprintable() and not any(c in ssid for c in ";\\") and ssid == ssid.strip()
    # NetworkManager's keyfile takes an SSID as text, or as its bytes in decimal separated by ';'
    return ssid if plain else "".join(f"{b};" for b in raw)


def _ipv4(static: StaticAddress | None) -> list[str]:
    if static is None:
        return ["[ipv4]", "method=auto"]
    address = str(static.address) + (f",{static.gateway}" if static.gateway else "")
    out = ["[ipv4]", "method=manual", f"address1={address}"]
    if static.dns:
        out.append("dns=" + "".join(f"{d};" for d in static.dns))
        out.append("ignore-auto-dns=true")
    return out


def wifi_connection(wifi: Wifi, static: StaticAddress | None) -> str:
    """roost-wifi.nmconnection (mode 0600: it holds the password)."""
    lines = [
        "[connection]",
        "id=roost-wifi",
        f"uuid={uuid.uuid5(_NS, 'wifi:' + wifi.ssid)}",
        "type=wifi",
        "autoconnect=true",
        "",
        "[wifi]",
        "mode=infrastructure",
        f"ssid={_ssid(wifi.ssid)}",
    ]
    if wifi.hidden:
        lines.append("hidden=true")
    if wifi.psk is not None:
        lines += ["", "[wifi-security]", "key-mgmt=wpa-psk", f"psk={_escape(wifi.psk)}"]
    lines += ["", *_ipv4(static), "", "[ipv6]", "method=auto", "addr-gen-mode=default", "", "[proxy]"]
    return "\n".join(lines) + "\n"


def ethernet_connection(static: StaticAddress) -> str:
    """roost-ethernet.nmconnection: the fixed address on the wired port when there is no Wi-Fi."""
    lines = [
        "[connection]",
        "id=roost-ethernet",
        f"uuid={uuid.uuid5(_NS, 'ethernet')}",
        "type=ethernet",
        "interface-name=eth0",
        "autoconnect=true",
        "autoconnect-priority=10",
        "",
        "[ethernet]",
        "",
        *_ipv4(static),
        "",
        "[ipv6]",
        "method=auto",
        "addr-gen-mode=default",
    ]
    return "\n".join(lines) + "\n"


def regdom_modprobe(country: str) -> str:
    """/etc/modprobe.d line setting the Wi-Fi regulatory domain when the cfg80211 module loads."""
    return (
        f"# Written by roost first boot from roost.toml's wifi.country.\noptions cfg80211 ieee80211_regdom={country}\n"
    )


def cmdline_with_regdom(cmdline: str, country: str) -> str:
    """The Pi's one-line cmdline.txt with ``cfg80211.ieee80211_regdom=XX`` (replacing an earlier one)."""
    words = [w for w in cmdline.split() if not w.startswith("cfg80211.ieee80211_regdom=")]
    return " ".join([*words, f"cfg80211.ieee80211_regdom={country}"]) + "\n"


def authorized_keys(keys: tuple[str, ...]) -> str:
    """root's authorized_keys (what Debian's Raspberry Pi images use: root logs in with a key only)."""
    return AUTHORIZED_KEYS_MARK + "\n" + "\n".join(keys) + "\n"


AUTHORIZED_KEYS_MARK = "# Written by roost first boot from roost.toml's [ssh] authorized_key."
