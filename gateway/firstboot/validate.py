"""Check roost.toml and collect every problem at once: each names its key, its line and what is allowed.

Secrets (the Wi-Fi password, the claim token, the PIN, BLE bind keys) never appear in a message.
"""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, ip_address, ip_interface
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.firstboot.countries import COUNTRIES
from gateway.firstboot.problems import Problems
from gateway.firstboot.sensors import map_sensors
from gateway.firstboot.settings import Cloud, Enrollment, Settings, StaticAddress, Wifi
from wire.names import check_tenant

MAX_BYTES = 256 * 1024
REMOVED = "(applied, removed)"
"""What a secret's value becomes in roost.toml.applied."""
TABLES: dict[str, tuple[str, ...]] = {
    "wifi": ("country", "ssid", "psk", "hidden"),
    "network": ("address", "gateway", "dns"),
    "cloud": ("url", "tenant", "ca_file", "ca_pem"),
    "enrollment": ("claim_token", "method"),
    "ssh": ("authorized_key",),
    "local": ("pin",),
}
TOP_KEYS = ("hostname", "timezone", *TABLES, "sensors")
SECRETS = ("wifi.psk", "enrollment.claim_token", "local.pin")
"""Keys whose values are removed from the boot partition once applied (and each sensor's bind_key)."""
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PIN = re.compile(r"[0-9]{6,12}")
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_CLAIM = re.compile(r"[A-Za-z0-9._~+/=-]{8,1024}")
SSH_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")


def known_zone(name: str) -> bool:
    """Whether ``name`` is a time zone of the tz database this machine has."""
    try:
        zones = zoneinfo.available_timezones()
    except OSError:  # pragma: no cover - an unreadable tz database
        zones = set()
    return name in zones if zones else name in ("UTC", "Etc/UTC")  # no tz database at all: UTC is still known


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of checking roost.toml: what is usable, and every problem."""

    settings: Settings
    problems: Problems

    @property
    def ok(self) -> bool:
        """No problem at all: everything may be applied."""
        return not self.problems


def check_file(path: Path, *, zones: Callable[[str], bool] = known_zone) -> Checked:
    """Check the roost.toml at ``path`` (files it names, like ca_file, are relative to its folder)."""
    problems = Problems()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problems.add("", _missing(path))
        return Checked(Settings(), problems)
    except OSError as exc:
        problems.add("", f"{path} cannot be read: {exc.strerror}")
        return Checked(Settings(), problems)
    if len(raw) > MAX_BYTES:
        problems.add("", f"is {len(raw)} bytes: a roost.toml has a few kilobytes at most; is it the right file?")
        return Checked(Settings(), problems)
    try:
        text = raw.decode("utf-8-sig")  # Windows' Notepad may put a byte-order mark first
    except UnicodeDecodeError as exc:
        problems.add("", f"is not UTF-8 text (byte {exc.start}): save it as UTF-8 (any plain-text editor can)")
        return Checked(Settings(), problems)
    return check_text(text, base_dir=path.parent, zones=zones)


def _missing(path: Path) -> str:
    """Why there is no roost.toml, as precisely as the folder tells."""
    try:
        near = sorted(p.name for p in path.parent.iterdir() if p.name.lower().startswith(path.name.lower()))
    except OSError:
        near = []
    near = [n for n in near if n not in (path.name + ".example", path.name + ".applied")]
    if near:
        return (
            f'there is no {path.name} in {path.parent}, but there is "{near[0]}": rename it to {path.name} exactly '
            "(Windows may hide a .txt it added)"
        )
    return f"there is no {path.name} in {path.parent}: copy roost.toml.example to roost.toml and edit it"


def check_text(text: str, *, base_dir: Path | None, zones: Callable[[str], bool] = known_zone) -> Checked:
    """Check roost.toml's text; ``base_dir`` is where relative file names (ca_file) are looked up."""
    problems = Problems(text=text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        where = f" (column {m.group(2)})" if m else ""
        problems.add("", f"is not valid TOML: {reason}{where}; see roost.toml.example for the form", line=line)
        return Checked(Settings(), problems)
    for key in data:
        if key not in TOP_KEYS:
            problems.add(key, f"unknown key (roost.toml has: {', '.join(TOP_KEYS)})")
    tables = {name: _table(data, name, problems) for name in TABLES}
    settings = Settings(
        hostname=_hostname(data.get("hostname"), problems),
        timezone=_timezone(data.get("timezone", "Etc/UTC"), zones, problems),
        wifi=_wifi(tables["wifi"], problems),
        network=_network(tables["network"], problems),
        cloud=_cloud(tables["cloud"], base_dir, problems, given="cloud" in data),
        enrollment=_enrollment(tables["enrollment"], problems),
        ssh_keys=_ssh(tables["ssh"], problems),
        pin=_pin(tables["local"], problems, given="local" in data),
    )
    mapped = map_sensors(data.get("sensors"), problems)
    if mapped is not None:
        settings = replace(
            settings, adapters=mapped.adapters, paired=tuple(mapped.paired), sensors=tuple(mapped.summary)
        )
    problems.items.sort(key=lambda p: p.line or 0)  # in the order of the file: the installer reads top down
    return Checked(settings, problems)


def _table(data: dict[str, Any], name: str, problems: Problems) -> dict[str, Any] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add(name, f"must be a table ([{name}] on a line of its own, then its keys)")
        return None
    for key in value:
        if key not in TABLES[name]:
            problems.add(f"{name}.{key}", f"unknown key (allowed in [{name}]: {', '.join(TABLES[name])})")
    return value


def _string(table: dict[str, Any], key: str, full: str, problems: Problems, *, secret: bool = False) -> str | None:
    value = table.get(key)
    if value is None or isinstance(value, str):
        return value
    shown = "a number or other value" if secret else repr(value)
    problems.add(full, f'must be text in quotes (key = "..."), not {shown}')
    return None


def _hostname(value: Any, problems: Problems) -> str | None:
    if value is None:
        return None
    rule = "may contain letters, digits and '-', at most 63 characters, not starting or ending with '-'"
    if not isinstance(value, str) or not _HOSTNAME.fullmatch(value):
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        problems.add("hostname", f"{shown} {rule}" if isinstance(value, str) else f"must be text: {rule}")
        return None
    return value.lower()


def _timezone(value: Any, zones: Callable[[str], bool], problems: Problems) -> str | None:
    if not isinstance(value, str) or ".." in value or value.startswith("/") or not zones(value):
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        problems.add(
            "timezone",
            f"{shown} is not a time zone this gateway knows (see /usr/share/zoneinfo; e.g. Europe/Berlin, Etc/UTC)",
        )
        return None
    return value


def _wifi(table: dict[str, Any] | None, problems: Problems) -> Wifi | None:
    if table is None:
        return None
    before = len(problems)
    country = _string(table, "country", "wifi.country", problems)
    if country is None and "country" not in table:
        problems.add("wifi.country", "is required: the country the gateway is in (two letters, e.g. DE, GB, US)")
    elif country is not None and country.upper() not in COUNTRIES:
        problems.add("wifi.country", f'"{country}" is not an ISO 3166 country code (two letters, e.g. DE, GB, US)')
    ssid = _string(table, "ssid", "wifi.ssid", problems)
    if ssid is None and "ssid" not in table:
        problems.add("wifi.ssid", "is required: the name of the Wi-Fi network")
    elif ssid is not None and not 1 <= len(ssid.encode()) <= 32:
        problems.add("wifi.ssid", "must be 1 to 32 bytes long (a Wi-Fi network's name)")
    psk = _string(table, "psk", "wifi.psk", problems, secret=True)
    if psk == REMOVED:
        problems.add("wifi.psk", "was removed from the boot partition once applied: write the Wi-Fi password again")
    elif psk is not None and not (
        _HEX64.fullmatch(psk) or (8 <= len(psk) <= 63 and psk.isascii() and psk.isprintable())
    ):
        problems.add(
            "wifi.psk",
            "must be 8 to 63 characters (letters, digits, punctuation, spaces: no accents), or 64 hex digits",
        )
    hidden = table.get("hidden", False)
    if not isinstance(hidden, bool):
        problems.add("wifi.hidden", f"must be true or false, not {hidden!r}")
    if len(problems) > before or country is None or ssid is None:
        return None
    return Wifi(country=country.upper(), ssid=ssid, psk=psk, hidden=bool(hidden))


def _network(table: dict[str, Any] | None, problems: Problems) -> StaticAddress | None:
    if table is None:
        return None
    before = len(problems)
    raw = _string(table, "address", "network.address", problems)
    address: IPv4Interface | None = None
    if raw is None and "address" not in table:
        problems.add("network.address", 'is required for a fixed address: address/prefix, e.g. "192.168.1.50/24"')
    elif raw is not None:
        try:
            iface = ip_interface(raw)
        except ValueError:
            iface = None
        if not isinstance(iface, IPv4Interface) or "/" not in raw or iface.network.prefixlen in (0, 32):
            problems.add(
                "network.address", f'"{raw}" is not an IPv4 address with its prefix length (e.g. "192.168.1.50/24")'
            )
        elif iface.ip in (iface.network.network_address, iface.network.broadcast_address):
            problems.add("network.address", f"\"{raw}\" is the network's own or broadcast address, not a host's")
        else:
            address = iface
    gateway: IPv4Address | None = None
    raw_gw = _string(table, "gateway", "network.gateway", problems)
    if raw_gw is not None:
        gw = _ipv4(raw_gw)
        if gw is None:
            problems.add("network.gateway", f'"{raw_gw}" is not an IPv4 address (the router, e.g. "192.168.1.1")')
        elif address is not None and gw not in address.network:
            problems.add("network.gateway", f'"{raw_gw}" is not in the address\'s network {address.network}')
        else:
            gateway = gw
    dns_raw = table.get("dns", [])
    dns: list[IPv4Address] = []
    if isinstance(dns_raw, str):
        dns_raw = [dns_raw]
    if not isinstance(dns_raw, list) or len(dns_raw) > 3:
        problems.add("network.dns", 'must be a list of at most 3 IPv4 addresses, e.g. ["192.168.1.1", "9.9.9.9"]')
    else:
        for entry in dns_raw:
            server = _ipv4(entry) if isinstance(entry, str) else None
            if server is None:
                problems.add("network.dns", f'{entry!r} is not an IPv4 address (a name server, e.g. "9.9.9.9")')
            else:
                dns.append(server)
    if len(problems) > before or address is None:
        return None
    return StaticAddress(address=address, gateway=gateway, dns=tuple(dns))


def _ipv4(text: str) -> IPv4Address | None:
    try:
        addr = ip_address(text)
    except ValueError:
        return None
    return addr if isinstance(addr, IPv4Address) else None


def _cloud(table: dict[str, Any] | None, base_dir: Path | None, problems: Problems, *, given: bool) -> Cloud | None:
    if table is None:
        if not given:  # given but not a table: said already
            problems.add(
                "cloud", 'is required: a [cloud] table with url = "https://..." (the address of your Roost cloud)'
            )
        return None
    before = len(problems)
    url = _string(table, "url", "cloud.url", problems)
    if url is None and "url" not in table:
        problems.add("cloud.url", 'is required: the cloud\'s address, e.g. "https://cloud.example.net"')
    elif url is not None:
        problem = _url_problem(url)
        if problem:
            problems.add("cloud.url", problem)
    tenant = _string(table, "tenant", "cloud.tenant", problems) or "default"
    try:
        check_tenant(tenant)
    except ValueError:
        problems.add("cloud.tenant", f'"{tenant}" may contain lower-case letters, digits and \'-\' (e.g. "acme")')
    ca_pem = _ca(table, base_dir, problems)
    if len(problems) > before or url is None:
        return None
    return Cloud(url=url.rstrip("/"), tenant=tenant, ca_pem=ca_pem)


def _url_problem(url: str) -> str | None:
    rule = 'must be the cloud\'s address starting with https:// (or http://), e.g. "https://cloud.example.net"'
    if not url.startswith(("https://", "http://")):
        return f'"{url}" {rule}'
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f'"{url}" {rule}'
    if not parts.hostname or port == 0 or any(c.isspace() for c in url):
        return f'"{url}" {rule}'
    return None


def _ca(table: dict[str, Any], base_dir: Path | None, problems: Problems) -> str | None:
    ca_file = _string(table, "ca_file", "cloud.ca_file", problems)
    ca_pem = _string(table, "ca_pem", "cloud.ca_pem", problems)
    if ca_file is not None and ca_pem is not None:
        problems.add("cloud.ca_pem", "give either ca_file or ca_pem, not both")
        return None
    key = "cloud.ca_pem"
    if ca_file is not None:
        key = "cloud.ca_file"
        path = Path(ca_file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            ca_pem = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            problems.add(key, f'"{ca_file}" cannot be read: put the CA certificate (PEM) beside roost.toml')
            return None
    if ca_pem is None:
        return None
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(ca_pem.encode("ascii", "replace"))
    except ValueError:
        certs = []
    if not certs:
        problems.add(
            key, "is not a PEM certificate (text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----)"
        )
        return None
    return ca_pem.strip() + "\n"


def _enrollment(table: dict[str, Any] | None, problems: Problems) -> Enrollment | None:
    if table is None:
        return Enrollment(method="device-flow")
    token = _string(table, "claim_token", "enrollment.claim_token", problems, secret=True)
    method = _string(table, "method", "enrollment.method", problems)
    if method is not None and method not in ("claim-token", "device-flow"):
        problems.add("enrollment.method", f'"{method}" must be "claim-token" or "device-flow"')
        return None
    if token is None and "claim_token" in table:
        return None
    if token == REMOVED:
        problems.add(
            "enrollment.claim_token", "was removed from the boot partition once applied: write the claim token again"
        )
        return None
    if method == "device-flow":
        if token is not None:
            problems.add("enrollment.claim_token", 'leave it out with method = "device-flow" (or drop the method)')
            return None
        return Enrollment(method="device-flow")
    if token is None:
        problems.add(
            "enrollment.claim_token",
            'is required: the token from "roost cloud admin claim-create", or method = "device-flow"',
        )
        return None
    if not _CLAIM.fullmatch(token):
        problems.add(
            "enrollment.claim_token",
            'must be the token "roost cloud admin claim-create" printed: 8 to 1024 letters, digits and - _ . ~ + / =, '
            "no spaces",
        )
        return None
    return Enrollment(method="claim-token", claim_token=token)


def _ssh(table: dict[str, Any] | None, problems: Problems) -> tuple[str, ...]:
    if table is None:
        return ()
    value = table.get("authorized_key")
    if value is None:
        problems.add("ssh.authorized_key", "is required in [ssh]: your public key (the line in ~/.ssh/id_ed25519.pub)")
        return ()
    lines = [value] if isinstance(value, str) else value
    if not isinstance(lines, list) or not all(isinstance(v, str) for v in lines) or not lines:
        problems.add("ssh.authorized_key", "must be one public key line in quotes, or a list of them")
        return ()
    keys = []
    for line in lines:
        problem = _ssh_key_problem(line.strip())
        if problem:
            problems.add("ssh.authorized_key", problem)
        else:
            keys.append(line.strip())
    return tuple(keys) if len(keys) == len(lines) else ()


def _ssh_key_problem(line: str) -> str | None:
    if "PRIVATE KEY" in line:
        return "this is a private key: give the public key (the .pub file's line) and keep the private key to yourself"
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    rule = (
        'is not an SSH public key line (like "ssh-ed25519 AAAAC3Nza... you@laptop", the contents of id_ed25519.pub; '
        f"types: {', '.join(SSH_KEY_TYPES)})"
    )
    parts = line.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES or "\n" in line:
        return rule
    try:
        load_ssh_public_key(" ".join(parts[:2]).encode())
    except (ValueError, TypeError):
        return rule
    except Exception:  # cryptography raises UnsupportedAlgorithm for types it does not know
        return rule
    return None


def _pin(table: dict[str, Any] | None, problems: Problems, *, given: bool) -> str | None:
    rule = "must be 6 to 12 digits"
    if table is None and given:  # given but not a table: said already
        return None
    if table is None or "pin" not in table:
        problems.add("local.pin", f'is required ([local] pin = "..."): the setup PIN for the local page; it {rule}')
        return None
    pin = table["pin"]
    if isinstance(pin, int) and not isinstance(pin, bool):
        problems.add("local.pin", f'{rule}, written in quotes (pin = "...") so that leading zeros are kept')
        return None
    if pin == REMOVED:
        problems.add("local.pin", f"was removed from the boot partition once applied: write the PIN again ({rule})")
        return None
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        problems.add("local.pin", f"{rule} (0-9 only, in quotes)")
        return None
    return pin
