"""``[[adapters.serial]]``: loading, errors that name the entry and key, wiring into the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config
from gateway.daemon import _build_adapters
from gateway.errors import ConfigError
from gateway.hub import Hub
from gateway.pairing import Pairing

PORTS = """
[[adapters.serial]]
path = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K5JX2-if00-port0"

[[adapters.serial]]
path = "/dev/ttyAMA0"
protocol = "nmea"
baud = 9600
sensor = "gps"

[[adapters.serial]]
path = "/dev/ttyUSB1"
protocol = "line"
sensor = "arduino-1"
bytesize = 7
parity = "even"
stopbits = 2
"""


def test_ports_load_with_their_defaults(tmp_path: Path) -> None:
    cfg = config.loads(PORTS, base_dir=tmp_path)
    roost, gps, line = cfg.adapters.serial
    assert roost.protocol == "roost" and roost.baud == 115200 and roost.accept == "paired" and roost.sensor == ""
    assert (gps.protocol, gps.baud, gps.sensor) == ("nmea", 9600, "gps")
    assert (line.bytesize, line.parity, line.stopbits) == (7, "even", 2.0)
    assert config.loads("", base_dir=tmp_path).adapters.serial == ()


def test_the_spec_examples_load(tmp_path: Path) -> None:
    spec = (Path(__file__).resolve().parents[2] / "docs/protocols/serial.md").read_text()
    block = spec.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = config.loads(block, base_dir=tmp_path)
    assert [p.protocol for p in cfg.adapters.serial] == ["roost", "nmea"]


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ('path = "/dev/ttyUSB0"\nbaud = 9601', "adapters.serial[0].baud: 9601 must be one of 1200, 2400"),
        ('path = "ttyUSB0"', "adapters.serial[0].path: 'ttyUSB0' must be an absolute device path"),
        ('path = "/dev/ttyUSB0"\nprotocol = "nmea"', "adapters.serial[0].sensor: is required for protocol = 'nmea'"),
        ('path = "/dev/ttyUSB0"\nsensor = "node-1"', "adapters.serial[0].sensor: a Roost node announces its own id"),
        ('path = "/dev/ttyUSB0"\nprotocol = "line"\nsensor = "/dev/x"', "adapters.serial[0].sensor: sensor id"),
        ('path = "/dev/ttyUSB0"\nprotocol = "modbus"', "adapters.serial[0].protocol: 'modbus' is not allowed"),
        ('path = "/dev/ttyUSB0"\nparity = "N"', "adapters.serial[0].parity: 'N' is not allowed"),
        ('path = "/dev/ttyUSB0"\nstopbits = 3', "adapters.serial[0].stopbits: 3 must be 1, 1.5 or 2"),
        ('path = "/dev/ttyUSB0"\nbytesize = 9', "adapters.serial[0].bytesize: 9 is not allowed"),
        ('path = "/dev/ttyUSB0"\nreopen_max_s = 0.1', "adapters.serial[0].reopen_max_s: must be at least"),
        ('path = "/dev/ttyUSB0"\nspeed = 9600', "adapters.serial[0].speed: unknown key"),
        ("baud = 9600", "adapters.serial[0].path: is required"),
    ],
)
def test_errors_name_the_entry_and_key(tmp_path: Path, entry: str, where: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[[adapters.serial]]\npath = "/dev/ttyS0"\n\n[[adapters.serial]]\n{entry}\n'.replace("[0]", "[1]"))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert f"{path}: {where.replace('[0]', '[1]')}" in str(caught.value)


def test_one_path_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"adapters\.serial\[1\]\.path: '/dev/ttyUSB0' is already configured"):
        config.loads('[[adapters.serial]]\npath = "/dev/ttyUSB0"\n' * 2, base_dir=tmp_path)


class _NoSink:
    async def append(self, readings: object) -> None:
        raise AssertionError("not used")


def test_the_daemon_builds_a_serial_adapter_only_when_ports_are_configured(tmp_path: Path) -> None:
    hub = Hub(_NoSink())
    none = _build_adapters(config.loads("[adapters.coap]\nenabled = false", base_dir=tmp_path), hub, Pairing([]))
    assert none == []
    cfg = config.loads("[adapters.coap]\nenabled = false\n" + PORTS, base_dir=tmp_path)
    [adapter] = _build_adapters(cfg, hub, Pairing([]))
    assert adapter.name == "serial"
    assert [p.section.protocol for p in adapter.ports] == ["roost", "nmea", "line"]  # type: ignore[attr-defined]
