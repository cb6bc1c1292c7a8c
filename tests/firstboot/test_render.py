"""The files' texts: NetworkManager keyfiles, /etc/hosts, cmdline.txt, TOML, line numbers, redaction."""

from __future__ import annotations

import json
import subprocess
import tomllib
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from gateway.firstboot import bootfile, render
from gateway.firstboot.problems import key_lines, line_of
from gateway.firstboot.settings import StaticAddress, Wifi
from gateway.firstboot.tomlwrite import dumps
from tests.firstboot.rig import GOOD, SECRETS


def test_keyfile_escapes_what_a_key_file_would_misread() -> None:
    text = render.wifi_connection(Wifi(country="GB", ssid="café;5G", psk=" pass\\word ", hidden=True), None)
    lines = text.splitlines()
    assert "ssid=" + "".join(f"{b};" for b in "café;5G".encode()) in lines  # as bytes: ';' and 'é' stay exact
    assert "psk=\\spass\\\\word\\s" in lines  # GKeyFile: \s for the spaces at the ends, \\ for a backslash
    assert "hidden=true" in lines
    open_net = render.wifi_connection(Wifi(country="GB", ssid="Cafe", psk=None), None)
    assert "[wifi-security]" not in open_net


def test_keyfile_static_address() -> None:
    static = StaticAddress(
        address=IPv4Interface("10.1.2.3/16"), gateway=IPv4Address("10.1.0.1"), dns=(IPv4Address("10.1.0.1"),)
    )
    lines = render.wifi_connection(Wifi(country="DE", ssid="x", psk="12345678"), static).splitlines()
    assert lines[lines.index("[ipv4]") + 1 :][:4] == [
        "method=manual", "address1=10.1.2.3/16,10.1.0.1", "dns=10.1.0.1;", "ignore-auto-dns=true",
    ]  # fmt: skip


def test_same_settings_same_connection_uuid() -> None:
    wifi = Wifi(country="DE", ssid="Farm", psk="12345678")
    assert render.wifi_connection(wifi, None) == render.wifi_connection(wifi, None)


def test_hosts_keeps_other_lines() -> None:
    current = "127.0.0.1\tlocalhost\n127.0.1.1\told-name\n10.0.0.5 nas # the NAS\n"
    assert render.hosts_file("barn", current) == "127.0.0.1\tlocalhost\n127.0.1.1\tbarn\n10.0.0.5 nas # the NAS\n"
    assert render.hosts_file("barn", None).splitlines()[:2] == ["127.0.0.1\tlocalhost", "127.0.1.1\tbarn"]


def test_cmdline_regdom_replaced_not_repeated() -> None:
    once = render.cmdline_with_regdom("root=/dev/x rootwait cfg80211.ieee80211_regdom=US quiet\n", "DE")
    assert once == "root=/dev/x rootwait quiet cfg80211.ieee80211_regdom=DE\n"
    assert render.cmdline_with_regdom(once, "DE") == once


def test_toml_writer_round_trips() -> None:
    data = {
        "paired": ["a", "b"],
        "gateway": {"state_dir": "/var/lib/roost", "quote": 'say "hi"\n\\'},
        "adapters": {"i2c": [{"chip": "bme280", "address": 118, "emulated": True}], "ble": {"devices": [{"x": 1.5}]}},
        "modbus": [{"registers": [{"name": "v", "address": 0}]}],
    }
    assert tomllib.loads(dumps(data, "a header\nsecond line")) == data


def test_key_lines_follow_arrays_of_tables_and_skip_strings() -> None:
    text = (
        'a = 1\n[t]\nx.y = 2\nml = """\nfake = 3\n"""\n[[s]]\nk = 1\n[[s]]\nk = 2\n[[s.r]]\nn = 1\n'
        "arr = [\n  1,\n]\nafter = 4\n"
    )
    lines = key_lines(text)
    assert lines["a"] == 1 and lines["t"] == 2 and lines["t.x.y"] == 3 and lines["t.ml"] == 4
    assert "t.fake" not in lines and "fake" not in lines
    assert lines["s[0].k"] == 8 and lines["s[1]"] == 9 and lines["s[1].k"] == 10 and lines["s[1].r[0].n"] == 12
    assert lines["s[1].r[0].after"] == 16
    assert line_of(lines, "s[1].r[0].missing") == 11 and line_of(lines, "nowhere") is None


def test_redaction_keeps_comments_and_removes_every_secret() -> None:
    out = bootfile.redacted(GOOD)
    assert not any(secret in out for secret in SECRETS)
    assert "# the barn's Wi-Fi" in out and out.count("\n") == GOOD.count("\n")
    data = tomllib.loads(out)
    assert data["wifi"]["psk"] == data["local"]["pin"] == "(applied, removed)"
    assert data["sensors"][2]["bind_key"] == "(applied, removed)"


@pytest.mark.parametrize(
    "line",
    ['psk = """multi\nline hunter2"""', "psk = 'literal hunter2' # c", 'psk="a\\"b" # c', "psk = '''x'''"],
)
def test_redaction_of_other_string_forms(line: str) -> None:
    text = f'[wifi]\ncountry = "DE"\n{line}\n[local]\npin = 12345678 # number\n'
    out = bootfile.redacted(text)
    data = tomllib.loads(out)
    assert data["wifi"]["psk"] == data["local"]["pin"] == "(applied, removed)"
    assert "hunter2" not in out and "12345678" not in out and 'a\\"b' not in out


GKEYFILE_READER = """
import json, sys
from gi.repository import GLib
kf = GLib.KeyFile()
kf.load_from_file(sys.argv[1], GLib.KeyFileFlags.NONE)
print(json.dumps({g: {k: kf.get_string(g, k) for k in kf.get_keys(g)[0]} for g in kf.get_groups()[0]}))
"""


def _gkeyfile(path: Path) -> dict[str, dict[str, str]]:
    done = subprocess.run(
        ["/usr/bin/python3", "-c", GKEYFILE_READER, str(path)], capture_output=True, text=True, timeout=30, check=True
    )
    return dict(json.loads(done.stdout))


@pytest.mark.skipif(
    subprocess.run(["/usr/bin/python3", "-c", "import gi"], capture_output=True, check=False).returncode != 0,
    reason="GLib's key-file parser (python3-gi) is not installed for the system's python3",
)
@pytest.mark.parametrize("psk", [" lead and trail ", "back\\slash\\", "semi;colon#hash=eq", "x" * 63])
def test_glib_reads_the_keyfile_as_networkmanager_does(psk: str, tmp_path: Path) -> None:
    path = tmp_path / "roost-wifi.nmconnection"
    path.write_text(render.wifi_connection(Wifi(country="DE", ssid="Farm Net", psk=psk, hidden=True), None))
    groups = _gkeyfile(path)
    assert groups["wifi-security"]["psk"] == psk
    assert groups["wifi"]["ssid"] == "Farm Net" and groups["wifi"]["hidden"] == "true"
    assert groups["connection"]["type"] == "wifi" and groups["ipv4"]["method"] == "auto"
