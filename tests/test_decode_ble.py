"""``roost decode ble`` as a technician runs it (a real process): JSON on stdout, a reason on stderr and exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

KEY = "231d39c1d7cc1ab1aee224cd096db932"
MAC = "54:48:E6:8F:80:A5"
ENCRYPTED = "0201061216d2fc41e445f3c9962b332211006c7c4519"  # bthome.io/encryption's example


def _roost(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost.cli", "decode", "ble", *argv], capture_output=True, text=True, timeout=60
    )


def _ok(*argv: str) -> dict[str, Any]:
    out = _roost(*argv)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_the_bthome_spec_example() -> None:
    doc = _ok("020106 0B094449592D73656E736F72 0A16D2FC4002C40903BF13", "--mac", "54:48:e6:8f:80:a5")
    assert doc == {
        "format": "bthome",
        "sensor": MAC,
        "readings": [
            {"metric": "temperature", "value": 25.0, "unit": "Cel"},
            {"metric": "humidity", "value": 50.55, "unit": "%RH"},
        ],
        "encrypted": False,
        "packet_id": None,
        "counter": None,
        "name": "DIY-sensor",
    }


def test_the_encryption_example_with_its_key() -> None:
    doc = _ok(ENCRYPTED, "--mac", MAC, "--key", KEY)
    assert doc["format"] == "bthome-encrypted" and doc["encrypted"] is True and doc["counter"] == 1122867
    assert doc["readings"][0] == {"metric": "temperature", "value": 25.06, "unit": "Cel"}


def test_a_ruuvi_copied_from_nrf_connect() -> None:
    doc = _ok("0x0201061BFF99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
    assert doc["format"] == "ruuvi-rawv2" and doc["sensor"] == "CB:B8:33:4C:88:4F" and doc["packet_id"] == 205
    assert {"metric": "pressure", "value": 100044, "unit": "Pa"} in doc["readings"]


def test_without_a_mac_a_bthome_sensor_is_null() -> None:
    assert _ok("0201060A16D2FC4002C40903BF13")["sensor"] is None


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ((ENCRYPTED, "--mac", MAC), "needs the device's bind key: --key"),
        ((ENCRYPTED,), "needs the device's bind key: --key (32 hex digits) and --mac"),
        ((ENCRYPTED, "--key", KEY), "the sender's MAC address (the nonce holds it): --mac"),
        ((ENCRYPTED, "--mac", MAC, "--key", KEY[:-1] + "3"), "the bind key is wrong or the data was corrupted"),
        ((ENCRYPTED, "--mac", "54:48:E6:8F:80:A6", "--key", KEY), "the MIC did not match"),
        ((ENCRYPTED, "--mac", MAC, "--key", "abcd"), "a bind key is 16 bytes (32 hex digits), this is 2 bytes"),
        ((ENCRYPTED, "--mac", MAC, "--key", "xyz"), "--key is not hex bytes"),
        ((ENCRYPTED, "--mac", "gateway-1"), "is not a MAC address"),
        (("02010G",), "the advertisement is not hex bytes"),
        (("0201060A16D2FC4002C409",), "says 10 bytes follow, only 7 do"),
        (("0201060809" + b"Pixel 8".hex(),), "no decoder recognises this advertisement"),
        (("0201060B161C182302C4090303BF13",), "service data 181c"),
    ],
)
def test_errors_go_to_stderr_with_exit_1(argv: tuple[str, ...], words: str) -> None:
    out = _roost(*argv)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.startswith("roost decode ble: ") and words in out.stderr, out.stderr
