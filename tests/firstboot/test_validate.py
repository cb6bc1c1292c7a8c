"""roost.toml's checks: one case per rule, each naming its key, its line and what is allowed; all at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.firstboot.validate import check_file, check_text
from tests.firstboot.rig import CLAIM, GOOD, PIN, PSK, SECRETS
from tests.pki import make_ca

PEM_TEXT = "-----BEGIN CERTIFICATE-----\\nnot really\\n-----END CERTIFICATE-----"


def replace(old: str, new: str) -> Callable[[str], str]:
    """An edit of GOOD: ``old`` (which must be there) becomes ``new``."""

    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def append(extra: str) -> Callable[[str], str]:
    """An edit of GOOD: ``extra`` added at the end."""
    return lambda text: text + extra


def after(table: str, extra: str) -> Callable[[str], str]:
    """An edit of GOOD: ``extra`` added right below the ``table`` header."""
    return replace(f"[{table}]\n", f"[{table}]\n{extra}\n")


@dataclass(frozen=True)
class Rule:
    """One rule: how GOOD is broken, the key the problem must name, what it must say, the line it points at."""

    edit: Callable[[str], str]
    key: str
    says: str
    marker: str | None
    """A piece of the line the problem must point at; None: no line."""


RULES: dict[str, Rule] = {
    "toml-syntax": Rule(replace('country = "de"', 'country = "de'), "", "is not valid TOML", 'country = "de'),
    "unknown-top-key": Rule(
        replace("timezone =", 'colour = "blue"\ntimezone ='), "colour", "roost.toml has: hostname, timezone", "colour"
    ),
    "unknown-table-key": Rule(
        after("wifi", "channel = 6"), "wifi.channel", "allowed in [wifi]: country, ssid, psk, hidden", "channel"
    ),
    "table-not-table": Rule(
        lambda t: replace("[ssh]\n", "[ssh_old]\n")(replace("timezone =", "ssh = 1\ntimezone =")(t)),
        "ssh",
        "must be a table ([ssh] on a line of its own",
        "ssh = 1",
    ),
    "text-not-number": Rule(replace('ssid = "Farm Net"', "ssid = 5"), "wifi.ssid", "must be text in quotes", "ssid"),
    "wifi-country-unknown": Rule(
        replace('country = "de"', 'country = "XX"'),
        "wifi.country",
        '"XX" is not an ISO 3166 country code (two letters, e.g. DE, GB, US)',
        "country",
    ),
    "wifi-country-missing": Rule(
        replace('country = "de"\n', ""), "wifi.country", "is required: the country the gateway is in", "[wifi]"
    ),
    "wifi-ssid-long": Rule(
        replace('ssid = "Farm Net"', f'ssid = "{"x" * 33}"'), "wifi.ssid", "must be 1 to 32 bytes", "ssid"
    ),
    "wifi-ssid-missing": Rule(replace('ssid = "Farm Net"\n', ""), "wifi.ssid", "is required", "[wifi]"),
    "wifi-psk-short": Rule(
        replace(PSK, "short"), "wifi.psk", "must be 8 to 63 characters (letters, digits, punctuation", "psk"
    ),
    "wifi-psk-accents": Rule(replace(PSK, "grüne wiese 123"), "wifi.psk", "no accents), or 64 hex digits", "psk"),
    "wifi-psk-removed": Rule(replace(PSK, "(applied, removed)"), "wifi.psk", "write the Wi-Fi password again", "psk"),
    "wifi-hidden": Rule(after("wifi", 'hidden = "yes"'), "wifi.hidden", "must be true or false", "hidden"),
    "hostname-chars": Rule(
        replace('hostname = "barn-gw"', 'hostname = "barn_gw"'),
        "hostname",
        "may contain letters, digits and '-', at most 63 characters",
        "hostname",
    ),
    "hostname-long": Rule(
        replace('hostname = "barn-gw"', f'hostname = "{"a" * 64}"'), "hostname", "at most 63 characters", "hostname"
    ),
    "hostname-dash": Rule(
        replace('hostname = "barn-gw"', 'hostname = "-barn"'), "hostname", "not starting or ending with '-'", "hostname"
    ),
    "timezone": Rule(
        replace("Europe/Berlin", "Mars/Olympus"),
        "timezone",
        '"Mars/Olympus" is not a time zone this gateway knows (see /usr/share/zoneinfo',
        "timezone",
    ),
    "timezone-path": Rule(
        replace("Europe/Berlin", "../../etc/passwd"), "timezone", "is not a time zone this gateway knows", "timezone"
    ),
    "network-address-prefix": Rule(
        append('[network]\naddress = "192.168.1.50"\n'),
        "network.address",
        'is not an IPv4 address with its prefix length (e.g. "192.168.1.50/24")',
        "address =",
    ),
    "network-address-ipv6": Rule(
        append('[network]\naddress = "fd00::5/64"\n'), "network.address", "is not an IPv4 address", "address ="
    ),
    "network-address-missing": Rule(
        append('[network]\ngateway = "192.168.1.1"\n'),
        "network.address",
        "is required for a fixed address",
        "[network]",
    ),
    "network-address-network": Rule(
        append('[network]\naddress = "192.168.1.0/24"\n'),
        "network.address",
        "is the network's own or broadcast address",
        "address =",
    ),
    "network-gateway-outside": Rule(
        append('[network]\naddress = "192.168.1.50/24"\ngateway = "10.0.0.1"\n'),
        "network.gateway",
        "is not in the address's network 192.168.1.0/24",
        "gateway =",
    ),
    "network-gateway-bad": Rule(
        append('[network]\naddress = "192.168.1.50/24"\ngateway = "router"\n'),
        "network.gateway",
        "is not an IPv4 address (the router",
        "gateway =",
    ),
    "network-dns-bad": Rule(
        append('[network]\naddress = "192.168.1.50/24"\ndns = ["9.9.9.9", "dns.example"]\n'),
        "network.dns",
        "'dns.example' is not an IPv4 address (a name server",
        "dns =",
    ),
    "network-dns-many": Rule(
        append('[network]\naddress = "192.168.1.50/24"\ndns = ["1.1.1.1", "1.0.0.1", "9.9.9.9", "8.8.8.8"]\n'),
        "network.dns",
        "a list of at most 3 IPv4 addresses",
        "dns =",
    ),
    "cloud-missing": Rule(
        replace('[cloud]\nurl = "https://cloud.example.net"\ntenant = "acme"\n', ""),
        "cloud",
        'is required: a [cloud] table with url = "https://..."',
        None,
    ),
    "cloud-url-missing": Rule(
        replace('url = "https://cloud.example.net"\n', ""), "cloud.url", "is required: the cloud's address", "[cloud]"
    ),
    "cloud-url-scheme": Rule(
        replace("https://cloud.example.net", "ftp://cloud.example.net"),
        "cloud.url",
        "must be the cloud's address starting with https:// (or http://)",
        "url =",
    ),
    "cloud-url-port": Rule(
        replace("https://cloud.example.net", "https://cloud.example.net:99999"),
        "cloud.url",
        "starting with https://",
        "url =",
    ),
    "cloud-tenant": Rule(
        replace('tenant = "acme"', 'tenant = "Acme Corp"'),
        "cloud.tenant",
        "may contain lower-case letters, digits and '-'",
        "tenant",
    ),
    "cloud-ca-pem": Rule(
        after("cloud", f'ca_pem = "{PEM_TEXT}"'),
        "cloud.ca_pem",
        "is not a PEM certificate (text from -----BEGIN",
        "ca_pem",
    ),
    "cloud-ca-file-missing": Rule(
        after("cloud", 'ca_file = "no-such-ca.pem"'),
        "cloud.ca_file",
        "cannot be read: put the CA certificate (PEM) beside roost.toml",
        "ca_file",
    ),
    "cloud-ca-both": Rule(
        after("cloud", f'ca_file = "ca.pem"\nca_pem = "{PEM_TEXT}"'),
        "cloud.ca_pem",
        "either ca_file or ca_pem",
        "ca_pem",
    ),
    "enrollment-method": Rule(
        after("enrollment", 'method = "qr-code"'),
        "enrollment.method",
        'must be "claim-token" or "device-flow"',
        "method",
    ),
    "enrollment-both": Rule(
        after("enrollment", 'method = "device-flow"'),
        "enrollment.claim_token",
        'leave it out with method = "device-flow"',
        "claim_token",
    ),
    "enrollment-neither": Rule(
        replace(f'claim_token = "{CLAIM}"\n', ""),
        "enrollment.claim_token",
        'is required: the token from "roost cloud admin claim-create", or method = "device-flow"',
        "[enrollment]",
    ),
    "enrollment-token-form": Rule(
        replace(CLAIM, "has spaces in it"), "enrollment.claim_token", "no spaces", "claim_token"
    ),
    "enrollment-token-removed": Rule(
        replace(CLAIM, "(applied, removed)"), "enrollment.claim_token", "write the claim token again", "claim_token"
    ),
    "ssh-key-form": Rule(
        replace("[ssh]\nauthorized_key", '[ssh]\nauthorized_key = "ssh-ed25519 AAAAnope me"\nold'),
        "ssh.authorized_key",
        'is not an SSH public key line (like "ssh-ed25519 AAAAC3Nza... you@laptop"',
        "authorized_key",
    ),
    "ssh-key-private": Rule(
        replace("[ssh]\nauthorized_key", '[ssh]\nauthorized_key = "-----BEGIN OPENSSH PRIVATE KEY-----"\nold'),
        "ssh.authorized_key",
        "this is a private key: give the public key",
        "authorized_key",
    ),
    "ssh-key-missing": Rule(
        replace("[ssh]\nauthorized_key", "[ssh]\nold_key"), "ssh.authorized_key", "is required in [ssh]", "[ssh]"
    ),
    "pin-short": Rule(replace(f'pin = "{PIN}"', 'pin = "12345"'), "local.pin", "must be 6 to 12 digits", "pin ="),
    "pin-long": Rule(
        replace(f'pin = "{PIN}"', 'pin = "1234567890123"'), "local.pin", "must be 6 to 12 digits", "pin ="
    ),
    "pin-letters": Rule(replace(f'pin = "{PIN}"', 'pin = "12ab5678"'), "local.pin", "must be 6 to 12 digits", "pin ="),
    "pin-number": Rule(
        replace(f'pin = "{PIN}"', "pin = 12345678"), "local.pin", "must be 6 to 12 digits, written in quotes", "pin ="
    ),
    "pin-missing": Rule(replace(f'pin = "{PIN}"\n', ""), "local.pin", "is required", "[local]"),
    "sensor-kind-unknown": Rule(
        replace('kind = "coap"', 'kind = "teleport"'),
        "sensors[1].kind",
        '"teleport" is not a kind of sensor this gateway knows (one of coap, serial, i2c, spi, ble, zigbee, modbus)',
        'kind = "teleport"',
    ),
    "sensor-kind-missing": Rule(
        append('[[sensors]]\nid = "x"\n'), "sensors[3].kind", "is missing: give a kind of sensor", "[[sensors]]"
    ),
    "sensor-key-unknown": Rule(
        replace('chip = "bme280"', 'chip = "bme280"\ncolour = "red"'),
        "sensors[0].colour",
        'unknown key for kind = "i2c" (allowed: kind, chip, bus, address, id, interval_s, emulated)',
        "colour",
    ),
    "sensor-key-required": Rule(
        append('[[sensors]]\nkind = "serial"\nprotocol = "nmea"\n'),
        "sensors[3].path",
        'is required for kind = "serial": the device path, like /dev/serial/by-id/',
        "[[sensors]]",
    ),
    "sensor-value-refused": Rule(
        replace('chip = "bme280"', 'chip = "bme281"'),
        "sensors[0].chip",
        "'bme281' is not allowed: must be one of 'bme280', 'sht3x', 'ads1115'",
        "chip",
    ),
    "sensor-address-range": Rule(
        replace('chip = "bme280"', 'chip = "bme280"\naddress = 0x40'),
        "sensors[0].address",
        "a bme280 answers only at 0x76, 0x77",
        "address = 0x40",
    ),
    "sensor-id-renamed": Rule(
        replace('id = "barn-climate"', 'id = "/dev/barn"'),
        "sensors[0].id",
        "start with a letter or digit",
        'id = "/dev/barn"',
    ),
    "sensor-same-address": Rule(
        append('[[sensors]]\nkind = "i2c"\nchip = "bme280"\nemulated = true\n'),
        "sensors[3].address",
        "bus 1 address 0x76 is already sensors[0]",
        "[[sensors]]",
    ),
    "sensor-coap-duplicate": Rule(
        append('[[sensors]]\nkind = "coap"\nid = "greenhouse-1"\n'),
        "sensors[3].id",
        "'greenhouse-1' is already sensors[1]'s id",
        None,
    ),
    "sensor-two-zigbee": Rule(
        append(
            '[[sensors]]\nkind = "zigbee"\nradio = "memory"\n'
            '[[sensors]]\nkind = "zigbee"\nradio = "znp"\npath = "/dev/ttyACM0"\n'
        ),
        "sensors[4].kind",
        "only one Zigbee radio is supported (sensors[3] is one)",
        None,
    ),
    "sensor-zigbee-path": Rule(
        append('[[sensors]]\nkind = "zigbee"\nradio = "znp"\n'),
        "sensors[3].path",
        "must be the radio's device path, like /dev/serial/by-id/",
        None,
    ),
    "sensor-ble-key": Rule(
        replace(f'bind_key = "{SECRETS[3]}"', 'bind_key = "abc123"'),
        "sensors[2].bind_key",
        "must be 32 hex characters (16 bytes)",
        "bind_key",
    ),
    "sensor-modbus-register": Rule(
        append('[[sensors]]\nkind = "modbus"\npath = "/dev/ttyUSB0"\nregisters = [{ name = "v:x", address = 0 }]\n'),
        "sensors[3].registers[0].name",
        "start with a letter or digit, then only A-Z a-z 0-9 - . / _",
        "registers =",
    ),
    "sensor-modbus-parity": Rule(
        append(
            '[[sensors]]\nkind = "modbus"\npath = "/dev/ttyUSB0"\nparity = "mark"\n'
            'registers = [{ name = "v", address = 0 }]\n'
        ),
        "sensors[3].parity",
        "must be one of 'none', 'even', 'odd'",
        "parity",
    ),
    "sensors-not-list": Rule(
        lambda t: t.split("[[sensors]]")[0].replace("timezone =", 'sensors = "all of them"\ntimezone =', 1),
        "sensors",
        "must be a list of [[sensors]] tables",
        "sensors =",
    ),
}


def _line(text: str, marker: str) -> int:
    at = text.rindex(marker)  # the last one: edits add their lines at the end
    return text.count("\n", 0, at) + 1


@pytest.mark.parametrize("name", list(RULES))
def test_rule(name: str, tmp_path: Path) -> None:
    rule = RULES[name]
    text = rule.edit(GOOD)
    checked = check_text(text, base_dir=tmp_path)
    assert not checked.ok
    found = [p for p in checked.problems.items if p.key == rule.key]
    assert found, f"no problem at {rule.key!r}: {[str(p) for p in checked.problems.items]}"
    problem = found[0]
    assert rule.says in problem.message
    if rule.marker is not None:
        assert problem.line == _line(text, rule.marker), str(problem)
    for secret in SECRETS:  # a problem never repeats a secret
        assert secret not in str(problem)


def test_good_file_checks_out(tmp_path: Path) -> None:
    checked = check_text(GOOD, base_dir=tmp_path)
    assert checked.ok, [str(p) for p in checked.problems.items]
    s = checked.settings
    assert s.wifi is not None and s.wifi.country == "DE" and s.wifi.psk == PSK
    assert s.cloud is not None and s.cloud.tenant == "acme"
    assert s.enrollment is not None and s.enrollment.method == "claim-token"
    assert s.pin == PIN and s.hostname == "barn-gw" and s.timezone == "Europe/Berlin"
    assert s.paired == ("greenhouse-1",)
    assert s.adapters["i2c"] == [{"chip": "bme280", "emulated": True, "sensor": "barn-climate", "interval_s": 5}]
    assert s.adapters["ble"]["devices"][0]["name"] == "fridge"
    assert PSK not in repr(s) and PIN not in repr(s) and CLAIM not in repr(s)


def test_every_problem_at_once(tmp_path: Path) -> None:
    text = GOOD
    for name in ("wifi-country-unknown", "hostname-chars", "timezone", "pin-short", "sensor-value-refused",
                 "cloud-tenant", "enrollment-token-form"):  # fmt: skip
        text = RULES[name].edit(text)
    checked = check_text(text, base_dir=tmp_path)
    keys = [p.key for p in checked.problems.items]
    assert sorted(keys) == sorted(
        [
            "wifi.country",
            "hostname",
            "timezone",
            "local.pin",
            "sensors[0].chip",
            "cloud.tenant",
            "enrollment.claim_token",
        ]
    )
    lines = [p.line or 0 for p in checked.problems.items]
    assert lines == sorted(lines)  # in the order of the file


def test_partial_settings_keep_the_parts_that_checked_out(tmp_path: Path) -> None:
    checked = check_text(RULES["pin-short"].edit(GOOD), base_dir=tmp_path)
    assert checked.settings.wifi is not None and checked.settings.pin is None
    assert checked.problems.under("local") and not checked.problems.under("wifi")


def test_device_flow_and_no_enrollment_table(tmp_path: Path) -> None:
    text = replace(f'claim_token = "{CLAIM}"', 'method = "device-flow"')(GOOD)
    checked = check_text(text, base_dir=tmp_path)
    assert checked.ok and checked.settings.enrollment is not None
    assert checked.settings.enrollment.method == "device-flow"
    text = replace(f'[enrollment]\nclaim_token = "{CLAIM}"\n', "")(GOOD)
    enrollment = check_text(text, base_dir=tmp_path).settings.enrollment
    assert enrollment is not None and enrollment.method == "device-flow"


def test_static_address_and_ca_file(tmp_path: Path) -> None:
    make_ca(tmp_path / "cloud-ca.pem", "Test CA")
    text = after("cloud", 'ca_file = "cloud-ca.pem"')(GOOD)
    text += '[network]\naddress = "192.168.1.50/24"\ngateway = "192.168.1.1"\ndns = ["192.168.1.1", "9.9.9.9"]\n'
    checked = check_text(text, base_dir=tmp_path)
    assert checked.ok, [str(p) for p in checked.problems.items]
    assert checked.settings.cloud is not None and "BEGIN CERTIFICATE" in (checked.settings.cloud.ca_pem or "")
    net = checked.settings.network
    assert net is not None and str(net.address) == "192.168.1.50/24" and str(net.gateway) == "192.168.1.1"


def test_file_problems(tmp_path: Path) -> None:
    missing = check_file(tmp_path / "roost.toml")
    assert "there is no roost.toml" in str(missing.problems.items[0])
    (tmp_path / "roost.toml.example").write_text("")
    (tmp_path / "Roost.toml.txt").write_text(GOOD)
    renamed = check_file(tmp_path / "roost.toml").problems.items[0].message
    assert 'but there is "Roost.toml.txt": rename it to roost.toml exactly' in renamed
    (tmp_path / "Roost.toml.txt").unlink()
    (tmp_path / "roost.toml").write_bytes(b'hostname = "caf\xe9"\n')
    latin1 = check_file(tmp_path / "roost.toml")
    assert "is not UTF-8 text" in latin1.problems.items[0].message
    (tmp_path / "roost.toml").write_bytes(b"x" * 300_000)
    assert "is it the right file?" in check_file(tmp_path / "roost.toml").problems.items[0].message


def test_a_file_saved_by_windows_notepad(tmp_path: Path) -> None:
    (tmp_path / "roost.toml").write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    checked = check_file(tmp_path / "roost.toml")
    assert checked.ok, [str(p) for p in checked.problems.items]


def test_the_example_needs_only_the_marked_values(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "gateway/firstboot/roost.example.toml"
    text = example.read_text()
    checked = check_text(text, base_dir=tmp_path)
    assert sorted(p.key for p in checked.problems.items) == ["local.pin", "wifi.psk", "wifi.ssid"]
    for line in text.splitlines():  # every key has a comment above it or beside it
        if "=" in line and not line.startswith("#"):
            before = text.splitlines()[text.splitlines().index(line) - 1]
            assert before.startswith("#") or "#" in line, line
    filled = text.replace('ssid = ""', 'ssid = "Farm"').replace('psk = ""', f'psk = "{PSK}"')
    filled = filled.replace('pin = ""', f'pin = "{PIN}"')
    assert check_text(filled, base_dir=tmp_path).ok
    lines = filled.splitlines()
    start = lines.index("# [[sensors]]")
    uncommented = "\n".join([*lines[:start], *(line[2:] if line.startswith("# ") else "" for line in lines[start:])])
    checked = check_text(uncommented, base_dir=tmp_path)  # every commented-out sensor is a valid example too
    assert checked.ok, [str(p) for p in checked.problems.items]
    assert [x.kind for x in checked.settings.sensors] == ["i2c", "spi", "serial", "modbus", "ble", "zigbee", "coap"]


def test_known_zone_without_a_tz_database(monkeypatch: pytest.MonkeyPatch) -> None:
    import zoneinfo

    from gateway.firstboot.validate import known_zone

    assert known_zone("Europe/Berlin") and not known_zone("Mars/Olympus")
    monkeypatch.setattr(zoneinfo, "available_timezones", set)
    assert known_zone("Etc/UTC") and not known_zone("Europe/Berlin")
