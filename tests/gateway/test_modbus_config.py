"""``[[adapters.modbus]]`` tables: loaded into typed sections, refused with the key path that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config as gwconfig
from gateway.errors import ConfigError

METER = """
[[adapters.modbus]]
path = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0"
name = "meters"
unit = 1
baud = 9600
parity = "none"
interval_s = 5

[[adapters.modbus.registers]]
name = "voltage"
kind = "input"
address = 0
type = "float32"
unit = "V"

[[adapters.modbus.registers]]
name = "energy"
kind = "holding"
address = 72
type = "uint32"
word_order = "little"
scale = 0.01
unit = "kWh"

[[adapters.modbus.registers]]
name = "relay"
kind = "coil"
address = 0

[[adapters.modbus]]
path = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0"
name = "meters"
unit = 2
baud = 9600
parity = "none"

[[adapters.modbus.registers]]
name = "temperature"
address = 3
type = "int16"
scale = 0.1
unit = "Cel"
"""


def _load(text: str) -> gwconfig.GatewayConfig:
    return gwconfig.loads(text, base_dir=Path("/etc/roost"), name="gateway.toml")


def test_a_meter_map_loads() -> None:
    cfg = _load(METER)
    one, two = cfg.adapters.modbus
    assert (one.sensor_id, two.sensor_id) == ("meters-1", "meters-2")
    assert one.interval_s == 5.0 and one.parity == "none" and one.serial_settings() == (9600, "N", 1)
    voltage, energy, relay = (r.definition() for r in one.registers)
    assert (voltage.kind, voltage.type, voltage.unit) == ("input", "float32", "V")
    assert (energy.word_order, energy.scale, energy.unit) == ("little", 0.01, "kWh")
    assert (relay.kind, relay.type, relay.unit) == ("coil", "bool", None)
    assert two.registers[0].definition().type == "int16"


def test_defaults() -> None:
    cfg = _load('[[adapters.modbus]]\npath = "/dev/ttyUSB0"\n[[adapters.modbus.registers]]\nname = "x"\naddress = 1\n')
    (u,) = cfg.adapters.modbus
    assert u.sensor_id == "ttyUSB0-1"
    assert (u.baud, u.parity, u.stopbits, u.unit, u.retries, u.max_read) == (9600, "even", 1, 1, 2, 125)
    assert u.registers[0].definition().type == "uint16"
    assert _load("").adapters.modbus == ()


def _unit(extra: str = "", register: str = 'name = "x"\naddress = 1') -> str:
    return f'[[adapters.modbus]]\npath = "/dev/ttyUSB0"\n{extra}\n[[adapters.modbus.registers]]\n{register}\n'


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (_unit("unit = 0"), "adapters.modbus[0].unit", "between 1 and 247"),
        (_unit("baud = 9601"), "adapters.modbus[0].baud", "must be one of"),
        (_unit('parity = "mark"'), "adapters.modbus[0].parity", "not allowed"),
        (_unit("stopbits = 3"), "adapters.modbus[0].stopbits", "1 or 2"),
        (_unit("timeout_s = 0"), "adapters.modbus[0].timeout_s", "between"),
        (_unit("retries = -1"), "adapters.modbus[0].retries", "between 0 and 10"),
        (_unit("max_read = 200"), "adapters.modbus[0].max_read", "between 4 and 125"),
        (_unit("speed = 1"), "adapters.modbus[0].speed", "unknown key"),
        (_unit('sensor = "/dev/ttyUSB0"'), "adapters.modbus[0].sensor", "is not valid"),
        (_unit('name = "a b"'), "adapters.modbus[0].name", "letters, digits"),
        ('[[adapters.modbus]]\npath = "ttyUSB0"\nregisters = []', "adapters.modbus[0].path", "absolute device path"),
        ('[[adapters.modbus]]\npath = "/dev/ttyUSB0"\nregisters = []', "adapters.modbus[0].registers", "is empty"),
        ('[[adapters.modbus]]\npath = "/dev/ttyUSB0"', "adapters.modbus[0].registers", "is required"),
        (_unit(register='name = "x"'), "adapters.modbus[0].registers[0].address", "is required"),
        (_unit(register='name = "a:b"\naddress = 1'), "adapters.modbus[0].registers[0].name", "metric id 'a:b'"),
        (_unit(register='name = "x"\naddress = 70000'), "adapters.modbus[0].registers[0].address", "0 and 65535"),
        (
            _unit(register='name = "x"\naddress = 65535\ntype = "float32"'),
            "adapters.modbus[0].registers[0].address",
            "runs past address 65535",
        ),
        (_unit(register='name = "x"\naddress = 1\ntype = "float"'), "adapters.modbus[0].registers[0].type", "one of"),
        (
            _unit(register='name = "x"\naddress = 1\nkind = "coil"\ntype = "int16"'),
            "adapters.modbus[0].registers[0].type",
            "one bit",
        ),
        (
            _unit(register='name = "x"\naddress = 1\nkind = "coil"\nscale = 2.0'),
            "adapters.modbus[0].registers[0].scale",
            "do not apply",
        ),
        (_unit(register='name = "x"\naddress = 1\nscale = 0.0'), "adapters.modbus[0].registers[0].scale", "not be 0"),
        (_unit(register='name = "x"\naddress = 1\nunit = "k W"'), "adapters.modbus[0].registers[0].unit", "SenML"),
        (
            _unit(register='name = "x"\naddress = 1\nword_order = "middle"'),
            "adapters.modbus[0].registers[0].word_order",
            "not allowed",
        ),
        (
            _unit() + '[[adapters.modbus.registers]]\nname = "x"\naddress = 2\n',
            "adapters.modbus[0].registers[1].name",
            "already registers[0]",
        ),
        (_unit() + _unit(), "adapters.modbus[1].unit", "unit 1 on /dev/ttyUSB0 is already modbus[0]"),
        (_unit() + _unit("unit = 2\nbaud = 19200"), "adapters.modbus[1].baud", "must be the same for every unit"),
        (
            _unit() + _unit("unit = 2\ntimeout_s = 0.5"),
            "adapters.modbus[1].timeout_s",
            "must be the same for every unit",
        ),
        (
            _unit('name = "a"') + '[[adapters.modbus]]\npath = "/dev/ttyUSB1"\nname = "a"\n'
            '[[adapters.modbus.registers]]\nname = "x"\naddress = 1\n',
            "adapters.modbus[1].sensor",
            "sensor id 'a-1' is already modbus[0]'s",
        ),
        (
            _unit() + '[[adapters.serial]]\npath = "/dev/ttyUSB0"\nprotocol = "nmea"\nsensor = "gps"\n',
            "adapters.modbus[0].path",
            "is already serial[0]'s port",
        ),
    ],
)
def test_errors_name_the_key(text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(text)
    message = str(info.value)
    assert message.startswith(f"gateway.toml: {key}: "), message
    assert words in message, message


def test_pymodbus_is_imported_only_when_modbus_is_configured(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = f"""
import sys
from pathlib import Path
from gateway import config, daemon
from gateway.hub import Hub
from gateway.pairing import Pairing

class Sink:
    async def append(self, readings): pass

bare = config.loads('[adapters.coap]\\nenabled = false\\n', base_dir=Path({str(tmp_path)!r}))
assert daemon._build_adapters(bare, Hub(Sink()), Pairing((), accept_any=True)) == []
assert "pymodbus" not in sys.modules, "pymodbus imported without a modbus unit"
text = '[adapters.coap]\\nenabled = false\\n' + {_unit()!r}
cfg = config.loads(text, base_dir=Path({str(tmp_path)!r}))
(adapter,) = daemon._build_adapters(cfg, Hub(Sink()), Pairing((), accept_any=True))
assert adapter.name == "modbus" and "pymodbus" in sys.modules
assert [d.sensor for d in adapter.units] == ["ttyUSB0-1"]
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_the_technicians_example_loads() -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocols" / "modbus.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", doc, re.DOTALL)
    cfg = _load(block)
    assert [u.sensor_id for u in cfg.adapters.modbus] == ["meters-1", "meters-2"]
    assert [r.name for r in cfg.adapters.modbus[0].registers] == ["voltage", "current", "power", "frequency", "energy"]
