"""``roost firstboot check`` and ``run`` as the installer and the image's unit start them: real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway import config as gwconfig
from gateway.firstboot import paths
from tests.firstboot.rig import GOOD, SECRETS, make_tree


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost.cli", "firstboot", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_check_valid_file_prints_a_summary(tmp_path: Path) -> None:
    (tmp_path / "roost.toml").write_text(GOOD)
    done = roost("check", str(tmp_path / "roost.toml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("roost.toml is valid: ")
    assert (
        'Wi-Fi "Farm Net" (DE)' in done.stdout
        and "cloud https://cloud.example.net (tenant acme, claim token)" in done.stdout
    )
    assert "3 sensors: bme280 on I2C bus 1 (emulated), CoAP greenhouse-1, BLE A4:C1:38:0A:1B:2C" in done.stdout
    assert not any(secret in done.stdout + done.stderr for secret in SECRETS)


def test_check_bad_file_lists_every_problem(tmp_path: Path) -> None:
    bad = GOOD.replace('country = "de"', 'country = "XX"').replace('pin = "0123456"', 'pin = "12"')
    (tmp_path / "roost.toml").write_text(bad)
    done = roost("check", str(tmp_path / "roost.toml"))
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == "roost.toml has 2 problems:"
    assert lines[1] == (
        '  roost.toml, line 6: wifi.country: "XX" is not an ISO 3166 country code (two letters, e.g. DE, GB, US)'
    )
    assert lines[2].startswith("  roost.toml, line 21: local.pin: must be 6 to 12 digits")


def test_run_against_a_tree(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    done = roost("run", "--boot-dir", str(tree.boot), "--root", str(tree.root))
    assert done.returncode == 0, done.stderr
    report = json.loads(tree(paths.REPORT_FILE).read_text())
    assert report["ok"] and report["local_page"]["fingerprint"] in done.stderr
    assert "root file system not grown: a directory-tree run" in done.stderr
    assert "Roost first boot: done." in done.stderr
    assert gwconfig.load(tree(paths.GATEWAY_TOML)).adapters.i2c
    again = roost("run", "--boot-dir", str(tree.boot), "--root", str(tree.root))
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_run_with_problems_exits_1(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, GOOD.replace("Europe/Berlin", "Mars/Olympus"))
    done = roost("run", "--boot-dir", str(tree.boot), "--root", str(tree.root))
    assert done.returncode == 1
    assert "roost.toml has 1 problem;" in done.stderr and "line 3: timezone:" in done.stderr
    assert not tree(paths.DONE_FILE).exists()


def test_example_is_the_shipped_file() -> None:
    done = roost("example")
    assert done.returncode == 0
    shipped = Path(__file__).parents[2] / "gateway/firstboot/roost.example.toml"
    assert done.stdout == shipped.read_text()
