"""The I2C bus scan: i2cdetect-style probing, chip identification by address and id register, and the
``roost gateway scan i2c`` command (run as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import BusTimeout, DriverError
from drivers.i2c.ads1115 import Ads1115
from drivers.i2c.ads1115_emulator import Ads1115Emulator
from drivers.i2c.bme280_emulator import Bme280Emulator
from drivers.i2c.emulated_bus import ChipModel, EmulatedI2cBus, ManualClock, demo_bus
from drivers.i2c.scan import Found, probe, scan
from drivers.i2c.sht3x_emulator import Sht3xEmulator
from tests.drivers.i2c_fuzz import FuzzBus


class Plain(ChipModel):
    """Some chip Roost has no driver for: it ACKs and answers 0x00."""

    def on_write(self, data: bytes) -> None:
        pass

    def on_read(self, length: int) -> bytes:
        return bytes(length)


def test_demo_bus() -> None:
    found = scan(demo_bus())
    assert [(f.address, f.chip) for f in found] == [(0x44, "SHT3x"), (0x48, "ADS1115"), (0x76, "BME280")]
    assert found[2].measures == ("temperature", "pressure", "humidity")
    assert found[0].as_json() == {
        "address": "0x44",
        "chip": "SHT3x",
        "measures": ["temperature", "humidity"],
        "detail": "status register read with a valid CRC",
    }


def test_probe_like_i2cdetect() -> None:
    bus = EmulatedI2cBus({0x3C: Plain(), 0x50: Plain()})
    assert [f.address for f in scan(bus)] == [0x3C, 0x50]
    probes = {addr: (kind, data) for addr, kind, data in bus.history}
    assert probes[0x3C] == ("w", b""), "a quick write elsewhere"
    assert probes[0x50] == ("r", b"\x00"), "a read at EEPROM addresses"
    assert scan(EmulatedI2cBus()) == []


def test_unknown_devices_are_listed_unnamed() -> None:
    bus = EmulatedI2cBus({0x3C: Plain(), 0x76: Plain(), 0x44: Plain()})
    found = {f.address: f for f in scan(bus)}
    assert found[0x3C] == Found(0x3C, None, (), "no Roost driver knows this address")
    assert found[0x76].chip is None and "does not answer like one" in found[0x76].detail
    assert found[0x44].chip is None, "an SHT3x status read with a wrong CRC is not an SHT3x"


@pytest.mark.parametrize(("chip_id", "name"), [(0x60, "BME280"), (0x58, "BMP280"), (0x61, "BME680")])
def test_bosch_chips_by_id(chip_id: int, name: str) -> None:
    [f] = scan(EmulatedI2cBus({0x77: Bme280Emulator(chip_id=chip_id)}))
    assert (f.address, f.chip) == (0x77, name)
    assert ("humidity" in f.measures) == (name != "BMP280")


def test_sht3x_is_named_by_its_status_even_when_measurements_are_corrupt() -> None:
    emu = Sht3xEmulator()
    emu.bad_crc = True  # corrupts measurements, not the status word
    assert scan(EmulatedI2cBus({0x45: emu}))[0].chip == "SHT3x"


def test_ads1115_is_recognised_after_a_driver_configured_it() -> None:
    clock = ManualClock()
    emu = Ads1115Emulator(clock=clock.now)
    bus = EmulatedI2cBus({0x49: emu})
    Ads1115(bus, 0x49, full_scale=1.024, sleep=clock.sleep).read()
    assert bus.read_i2c_block_data(0x49, 1, 2) != [0x85, 0x83]
    assert scan(bus)[0].chip == "ADS1115"


def test_a_stuck_bus_ends_the_scan_with_a_timeout() -> None:
    bus = demo_bus()
    bus.stuck = True
    with pytest.raises(BusTimeout, match="bus timed out"):
        scan(bus)


def test_a_nacking_chip_is_not_listed() -> None:
    bus = demo_bus()
    bus.devices[0x76].faults.nack = True
    assert [f.address for f in scan(bus)] == [0x44, 0x48]
    assert probe(bus, 0x48) and not probe(bus, 0x76)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_scan_of_a_random_bus(data: st.DataObject) -> None:
    try:
        found = scan(FuzzBus(data), first=0x40, last=0x4F)
    except DriverError:
        return
    assert all(0x40 <= f.address <= 0x4F for f in found)


# --- the command --------------------------------------------------------------------------------


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost.cli", "gateway", "scan", "i2c", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_table_on_the_emulated_bus() -> None:
    out = roost("--emulated")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "I2C bus emulated: 3 devices answered"
    assert lines[1].split() == ["ADDRESS", "CHIP", "MEASURES", "IDENTIFIED", "BY"]
    assert lines[2].startswith("0x44") and "SHT3x" in lines[2] and "temperature, humidity" in lines[2]
    assert lines[4].startswith("0x76") and "BME280" in lines[4]


def test_cli_json_on_the_emulated_bus() -> None:
    out = roost("--emulated", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["bus"] == "emulated"
    assert [(d["address"], d["chip"]) for d in doc["devices"]] == [
        ("0x44", "SHT3x"),
        ("0x48", "ADS1115"),
        ("0x76", "BME280"),
    ]


def test_cli_missing_bus_says_what_to_do() -> None:
    out = roost("--bus", "250")
    assert out.returncode == 1
    assert out.stdout == ""
    assert "/dev/i2c-250 does not exist" in out.stderr and "raspi-config" in out.stderr
