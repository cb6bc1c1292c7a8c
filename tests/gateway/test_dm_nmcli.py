"""The NetworkManager backend over ``nmcli``, against a stand-in nmcli that behaves like NetworkManager's.

The stand-in (tests/gateway/fake_nmcli.py) keeps profiles in a file and fails as NetworkManager does; the
changer's probe of the cloud is a real HTTP server on loopback (or a closed port, for a lost cloud).
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.dm.network import NetworkChanger, NetworkError
from gateway.dm.nmcli import NmcliBackend, modify_args, parse_profile, unescape
from tests.e2e.harness import free_port

FAKE = Path(__file__).with_name("fake_nmcli.py")


@pytest.fixture
def nmcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    exe = tmp_path / "nmcli"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    exe.chmod(0o755)
    monkeypatch.setenv("FAKE_NMCLI_STATE", str(tmp_path / "nm.json"))
    return exe


def _state(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "nm.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def cloud() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/.well-known/roost"
    srv.shutdown()
    srv.server_close()


def test_values_are_unescaped_and_parsed() -> None:
    assert unescape(r"caf\:e\\net") == r"caf:e\net"
    static = parse_profile(["Home", "s3cret-pass", "manual", "192.168.1.50/24", "192.168.1.1", "1.1.1.1,9.9.9.9"])
    assert static == {
        "wifi": {"ssid": "Home", "psk": "s3cret-pass"},
        "ipv4": {
            "method": "static",
            "address": "192.168.1.50/24",
            "gateway": "192.168.1.1",
            "dns": ["1.1.1.1", "9.9.9.9"],
        },
    }
    assert parse_profile(["", "", "auto", "", "", ""]) == {"ipv4": {"method": "dhcp"}}
    assert modify_args({"ipv4": {"method": "dhcp"}})[:2] == ["ipv4.method", "auto"]


async def test_a_first_wifi_network_is_created_activated_and_read_back(nmcli: Path, tmp_path: Path) -> None:
    nm = NmcliBackend(nmcli=str(nmcli))
    assert await nm.current() == {"ipv4": {"method": "dhcp"}}
    ipv4 = {"method": "static", "address": "10.0.0.9/24", "gateway": "10.0.0.1", "dns": ["10.0.0.1"]}
    settings = {"wifi": {"ssid": "Barn: east", "psk": "hay-and-oats"}, "ipv4": ipv4}
    await nm.apply(settings)
    assert _state(tmp_path)["active"] == "roost-wifi"
    assert await nm.current() == settings  # the colon in the SSID survives nmcli's escaping
    await nm.apply({**settings, "ipv4": {"method": "dhcp"}})
    assert (await nm.current())["ipv4"] == {"method": "dhcp"}


async def test_refusals_name_the_reason_and_never_the_psk(nmcli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nm = NmcliBackend(nmcli=str(nmcli))
    with pytest.raises(NetworkError, match="give 'wifi' to make one"):
        await nm.apply({"ipv4": {"method": "dhcp"}})
    monkeypatch.setenv("FAKE_NMCLI_AP_PSK", "the-real-one")
    with pytest.raises(NetworkError, match="Secrets were required") as info:
        await nm.apply({"wifi": {"ssid": "Barn", "psk": "not-the-real-one"}})
    assert "not-the-real-one" not in str(info.value)
    with pytest.raises(NetworkError, match="no nmcli on this gateway"):
        await NmcliBackend(nmcli="/nonexistent/nmcli").current()


async def test_settings_that_cannot_be_activated_are_rolled_back(
    nmcli: Path, tmp_path: Path, cloud: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    nm = NmcliBackend(nmcli=str(nmcli))
    await nm.apply({"wifi": {"ssid": "Barn", "psk": "hay-and-oats"}})
    changer = NetworkChanger(nm, tmp_path, cloud, rollback_after_s=5)
    monkeypatch.setenv("FAKE_NMCLI_NO_AP", "Office")
    with pytest.raises(NetworkError, match=r"No network with SSID 'Office' found.*previous settings are active again"):
        await changer.change({"wifi": {"ssid": "Office", "psk": "paper-clips"}})
    assert (await nm.current())["wifi"] == {"ssid": "Barn", "psk": "hay-and-oats"}
    assert _state(tmp_path)["active"] == "roost-wifi" and changer.rollbacks == 1
    assert not (tmp_path / "network-pending.json").exists()

    kept = await changer.change({"wifi": {"ssid": "Loft", "psk": "pigeon-post"}})
    assert kept["applied"]["wifi"] == {"ssid": "Loft", "psk_set": True}
    assert (await nm.current())["wifi"]["ssid"] == "Loft"


@pytest.mark.slow  # waits out real deadlines (make test runs it)
async def test_settings_that_lose_the_cloud_are_rolled_back(nmcli: Path, tmp_path: Path) -> None:
    nm = NmcliBackend(nmcli=str(nmcli))
    await nm.apply({"wifi": {"ssid": "Barn", "psk": "hay-and-oats"}})
    unreachable = f"http://127.0.0.1:{free_port()}/.well-known/roost"  # nothing listens: the cloud is gone
    changer = NetworkChanger(nm, tmp_path, unreachable, rollback_after_s=5)
    with pytest.raises(NetworkError, match="rolled back: the cloud could not be reached"):
        await changer.change({"ipv4": {"method": "static", "address": "10.9.9.9/24", "gateway": "10.9.9.1"}})
    assert (await nm.current())["ipv4"] == {"method": "dhcp"}
    calls = _state(tmp_path)["calls"]
    assert sum(1 for c in calls if c[-2:] == ["up", "roost-wifi"]) == 3  # first network, the trial, the roll-back
