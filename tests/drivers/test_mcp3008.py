"""MCP3008: the SPI frame of figure 6-1 byte by byte, round trips through the bit-level emulator
(single-ended and pseudo-differential, several references), faults and fuzzed replies."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import BusError, DeviceError
from drivers.spi.mcp3008 import INPUT_BY_NAME, INPUTS, Mcp3008, decode_reply, request
from drivers.spi.mcp3008_emulator import Mcp3008Emulator

# --- the datasheet's frame first --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("ch0", [0x01, 0x80, 0x00]),  # start bit, SGL=1, D2..D0=000
        ("ch5", [0x01, 0xD0, 0x00]),  # SGL=1, 101
        ("ch7", [0x01, 0xF0, 0x00]),
        ("ch0-ch1", [0x01, 0x00, 0x00]),  # SGL=0, 000: CH0 = IN+, CH1 = IN-
        ("ch1-ch0", [0x01, 0x10, 0x00]),  # 001: CH0 = IN-, CH1 = IN+
        ("ch6-ch7", [0x01, 0x60, 0x00]),
        ("ch7-ch6", [0x01, 0x70, 0x00]),
    ],
)
def test_request_bytes(name: str, sent: list[int]) -> None:
    assert request(INPUT_BY_NAME[name]) == sent


def test_differential_table() -> None:
    pairs = {(i.select, i.positive, i.negative) for i in INPUTS if not i.single_ended}
    assert pairs == {(0, 0, 1), (1, 1, 0), (2, 2, 3), (3, 3, 2), (4, 4, 5), (5, 5, 4), (6, 6, 7), (7, 7, 6)}


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ([0xFF, 0xFB, 0xFF], 0x3FF),  # undriven bits high, null bit 0, B9..B0 all 1
        ([0x00, 0x03, 0xFF], 0x3FF),
        ([0xFF, 0xF8, 0x00], 0x000),
        ([0xFF, 0xFA, 0x5A], 0x25A),
    ],
)
def test_decode_reply(reply: list[int], code: int) -> None:
    assert decode_reply(reply) == code


def test_null_bit_must_be_zero() -> None:
    with pytest.raises(ValueError, match="null bit"):
        decode_reply([0xFF, 0xFF, 0xFF])


def test_emulator_bit_level_frame() -> None:
    emu = Mcp3008Emulator(vref=3.3)
    emu.voltages[2] = 3.3 * 0x2C5 / 1024 + 1e-6  # code 0x2C5 = 10 1100 0101
    reply = emu.xfer2([0x01, 0xA0, 0x00, 0x00])
    assert reply[1] == 0b11111_0_10 and reply[2] == 0xC5
    assert reply[3] == 0b01000110, "then LSB first: B1..B8 after B0"
    # Leading zero bits before the start bit are ignored: a 5-bit-earlier frame gives the same code.
    early = emu.xfer2([0b0000_1101, 0b0000_0000, 0x00])
    bits = "".join(f"{b:08b}" for b in early)
    assert bits[10:11] == "0" and int(bits[11:21], 2) == 0x2C5


# --- round trips --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    vref=st.sampled_from([1.0, 2.5, 3.3, 5.0]),
    fractions=st.lists(st.floats(0, 1), min_size=8, max_size=8),
    name=st.sampled_from([i.name for i in INPUTS]),
)
def test_round_trip(vref: float, fractions: list[float], name: str) -> None:
    emu = Mcp3008Emulator(vref=vref)
    emu.voltages = [f * vref for f in fractions]
    inp = INPUT_BY_NAME[name]
    if inp.negative is not None:
        emu.voltages[inp.negative] = min(emu.voltages[inp.negative], 0.1)  # IN- within 100 mV of VSS
    driver = Mcp3008(emu, vref=vref, inputs=[name])
    [m] = driver.read()
    expected = emu.voltages[inp.positive] - (0.0 if inp.negative is None else emu.voltages[inp.negative])
    lsb = vref / 1024
    assert (m.metric, m.unit) == (name, "V")
    if expected <= 0:
        assert m.value == 0.0
    elif expected >= vref - lsb:
        assert driver.read_code(name) == 1023
    else:
        assert -0.00005 <= expected - float(m.value) < lsb + 0.00005, "the code is the integer part of 1024 VIN/VREF"


def test_sensor_ids_and_spi_settings() -> None:
    emu = Mcp3008Emulator()
    driver = Mcp3008(emu, bus=0, device=1, speed_hz=1_350_000)
    assert driver.sensor_id(3) == "spi0.1-ch3"
    assert (emu.mode, emu.max_speed_hz) == (0, 1_350_000)
    assert [m.metric for m in driver.read()] == [f"ch{n}" for n in range(8)]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="inputs"):
        Mcp3008(Mcp3008Emulator(), inputs=["ch8"])
    with pytest.raises(ValueError, match="inputs"):
        Mcp3008(Mcp3008Emulator(), inputs=["ch0-ch2"])
    with pytest.raises(ValueError, match="speed_hz"):
        Mcp3008(Mcp3008Emulator(), speed_hz=10_000_000)


# --- faults -------------------------------------------------------------------------------------


def test_floating_miso_is_a_device_error() -> None:
    emu = Mcp3008Emulator()
    emu.miso_stuck_high = True
    with pytest.raises(DeviceError, match=r"MCP3008 at spi0.0: null bit is 1 .*MISO floating"):
        Mcp3008(emu).read()


def test_io_error_is_a_bus_error() -> None:
    emu = Mcp3008Emulator()
    driver = Mcp3008(emu, bus=1, device=0)
    emu.io_error = True
    with pytest.raises(BusError, match=r"MCP3008 at spi1\.0") as info:
        driver.read()
    assert info.value.address == "spi1.0"


def test_wrong_spi_mode_shows_in_the_values() -> None:
    emu = Mcp3008Emulator(vref=3.3)
    emu.voltages[0] = 1.0
    driver = Mcp3008(emu, inputs=["ch0"])
    assert driver.read()[0].value == pytest.approx(1.0, abs=3.3 / 1024)
    emu.mode = 1  # someone changed the mode behind the driver's back: sampling on the wrong edge
    assert driver.read()[0].value != pytest.approx(1.0, abs=0.1), "one bit off: about twice the value"


def test_stuck_low_miso_reads_zero() -> None:
    """A limitation, stated: an all-zero line looks like 0 V (the frame has no other check)."""
    emu = Mcp3008Emulator()
    emu.voltages = [1.0] * 8
    emu.miso_stuck_low = True
    assert {m.value for m in Mcp3008(emu).read()} == {0.0}


# --- fuzz ---------------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 255), min_size=0, max_size=6))
def test_decode_random_replies(reply: list[int]) -> None:
    try:
        code = decode_reply(reply)
    except ValueError:
        assert len(reply) != 3 or reply[1] & 0x04
        return
    assert 0 <= code <= 1023


class RandomSpi:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.mode = 0
        self.max_speed_hz = 0

    def xfer2(self, values: list[int]) -> list[int]:
        if self.data.draw(st.integers(0, 9)) == 0:
            raise OSError(5, "Input/output error")
        return self.data.draw(st.lists(st.integers(0, 255), min_size=len(values), max_size=len(values)))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_spi_bytes_give_measurements_or_a_driver_error(data: st.DataObject) -> None:
    try:
        ms = Mcp3008(RandomSpi(data), vref=3.3).read()
    except (BusError, DeviceError) as exc:
        assert str(exc).startswith("MCP3008 at spi0.0: ")
        return
    assert all(0.0 <= float(m.value) < 3.3 and math.isfinite(float(m.value)) for m in ms)
