"""SHT3x: the datasheet's CRC example, the conversion formulas, round trips through the emulator
over -40..125 °C, the no-clock-stretching NACK timing, faults and fuzzed replies."""

from __future__ import annotations

import ctypes
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import BusTimeout, ChecksumError, DriverError, NoAcknowledge, NotReady
from drivers.i2c import sht3x
from drivers.i2c.emulated_bus import EmulatedI2cBus, Faults, ManualClock
from drivers.i2c.sht3x import Repeatability, Sht3x, crc8, decode_measurement
from drivers.i2c.sht3x_emulator import Sht3xEmulator
from tests.drivers.i2c_fuzz import CountingSleep, FuzzBus

ADDR = 0x44


def rig(**kw: object) -> tuple[Sht3xEmulator, EmulatedI2cBus, ManualClock]:
    clock = ManualClock()
    emu = Sht3xEmulator(clock=clock.now, **kw)  # type: ignore[arg-type]
    return emu, EmulatedI2cBus({ADDR: emu}), clock


# --- the datasheet's examples first --------------------------------------------------------------


def test_crc_of_0xbeef_is_0x92() -> None:
    assert crc8(b"\xbe\xef") == 0x92  # section 4.12, table 19


def test_crc_properties() -> None:
    assert crc8(b"") == 0xFF, "initialization 0xFF"
    assert crc8(b"\x00\x00") == 0x81
    assert sht3x.word_with_crc(0xBEEF) == b"\xbe\xef\x92"
    assert sht3x.check_word(b"\xbe\xef\x92") == 0xBEEF
    assert sht3x.check_word(b"\xbe\xef\x93") is None


@pytest.mark.parametrize(
    ("reply", "celsius", "rh"),
    [
        (bytes.fromhex("0000 81 0000 81"), -45.0, 0.0),
        (bytes.fromhex("ffff ac ffff ac"), 130.0, 100.0),
        (sht3x.word_with_crc(0x6666) + sht3x.word_with_crc(0x8000), -45 + 175 * 0x6666 / 65535, 100 * 0x8000 / 65535),
    ],
)
def test_conversion_formulas(reply: bytes, celsius: float, rh: float) -> None:
    assert decode_measurement(reply) == pytest.approx((celsius, rh), abs=1e-9)


def test_commands_on_the_wire() -> None:
    _, bus, clock = rig()
    Sht3x(bus, ADDR, sleep=clock.sleep).read()
    assert next(iter(bus.history)) == (ADDR, "w", b"\x24\x00"), "single shot, high repeatability, no stretching"
    assert [(kind, len(data)) for _, kind, data in bus.history] == [("w", 2), ("r", 6)]
    assert Repeatability.MEDIUM.value.payload == b"\x24\x0b" and Repeatability.LOW.value.payload == b"\x24\x16"


# --- round trips --------------------------------------------------------------------------------

RESOLUTION_T = 175 / 65535
RESOLUTION_RH = 100 / 65535


@settings(max_examples=200, deadline=None)
@given(celsius=st.floats(-40, 125), rh=st.floats(0, 100), rep=st.sampled_from(list(Repeatability)))
def test_round_trip_over_the_full_range(celsius: float, rh: float, rep: Repeatability) -> None:
    _, bus, clock = rig(temperature=celsius, humidity=rh)
    got = {m.metric: (m.value, m.unit) for m in Sht3x(bus, ADDR, repeatability=rep, sleep=clock.sleep).read()}
    t, t_unit = got["temperature"]
    h, h_unit = got["humidity"]
    assert (t_unit, h_unit) == ("Cel", "%RH")
    assert abs(float(t) - celsius) <= RESOLUTION_T / 2 + 0.005 + 1e-9
    assert abs(float(h) - rh) <= RESOLUTION_RH / 2 + 0.005 + 1e-9


def test_status_register_clear_and_reset() -> None:
    _emu, bus, clock = rig()
    driver = Sht3x(bus, ADDR, sleep=clock.sleep)
    assert driver.read_status() == 0x8010, "alert pending and reset detected after power-on"
    bus.i2c_rdwr(*[])  # an empty combined transaction is fine
    from smbus2 import i2c_msg

    bus.i2c_rdwr(i2c_msg.write(ADDR, sht3x.CLEAR_STATUS.payload))
    assert driver.read_status() == 0x0000
    bus.i2c_rdwr(i2c_msg.write(ADDR, sht3x.HEATER_ON.payload))
    assert driver.read_status() == 0x2000
    bus.i2c_rdwr(i2c_msg.write(ADDR, sht3x.SOFT_RESET.payload))
    assert driver.read_status() == 0x8010
    bus.i2c_rdwr(i2c_msg.write(ADDR, b"\x12\x34"))
    assert driver.read_status() & 0x0002, "an invalid command is flagged"


# --- timing: NACK while measuring ---------------------------------------------------------------


def test_emulator_nacks_a_read_before_the_measurement_is_done() -> None:
    from smbus2 import i2c_msg

    _, bus, clock = rig()
    bus.i2c_rdwr(i2c_msg.write(ADDR, b"\x24\x00"))
    clock.sleep(0.005)
    with pytest.raises(OSError) as info:
        bus.i2c_rdwr(i2c_msg.read(ADDR, 6))
    assert info.value.errno == 121  # EREMOTEIO, as on a Raspberry Pi
    clock.sleep(0.010)
    msg = i2c_msg.read(ADDR, 6)
    bus.i2c_rdwr(msg)
    assert decode_measurement(ctypes.string_at(msg.buf, msg.len))[0] == pytest.approx(22.0, abs=0.01)
    with pytest.raises(OSError):
        bus.i2c_rdwr(i2c_msg.read(ADDR, 6))  # nothing left to read: NACK


def test_driver_retries_a_read_that_comes_too_early() -> None:
    _, bus, clock = rig(temperature=33.3)
    # A sleep that only waits half of what it is asked for: the first read comes too early.
    driver = Sht3x(bus, ADDR, sleep=lambda s: clock.sleep(s / 2))
    assert driver.read()[0].value == pytest.approx(33.3, abs=0.01)
    reads = [kind for _, kind, _ in bus.history if kind == "r"]
    assert reads == ["r"], "NACKed attempts leave no data; exactly one read succeeded"


# --- faults -------------------------------------------------------------------------------------


def test_bad_crc_is_a_checksum_error() -> None:
    emu, bus, clock = rig()
    emu.bad_crc = True
    with pytest.raises(ChecksumError, match=r"SHT3x at 0x44: CRC mismatch on the temperature word"):
        Sht3x(bus, ADDR, sleep=clock.sleep).read()


def test_never_ready_is_not_ready_within_a_bound() -> None:
    emu, bus, clock = rig()
    emu.never_ready = True
    start = clock.t
    with pytest.raises(NotReady, match="NACK on read"):
        Sht3x(bus, ADDR, sleep=clock.sleep).read()
    assert clock.t - start < 0.05


def test_missing_chip_nack_and_stuck_bus() -> None:
    with pytest.raises(NoAcknowledge, match="SHT3x at 0x45"):
        Sht3x(EmulatedI2cBus(), 0x45).read()
    emu, bus, clock = rig(faults=Faults(stuck=True))
    with pytest.raises(BusTimeout):
        Sht3x(bus, ADDR, sleep=clock.sleep).read()
    emu.faults.stuck = False
    emu.faults.nack = True
    with pytest.raises(NoAcknowledge):
        Sht3x(bus, ADDR, sleep=clock.sleep).read()


# --- fuzz ---------------------------------------------------------------------------------------


@given(st.binary(min_size=6, max_size=6))
def test_decode_random_replies(reply: bytes) -> None:
    try:
        t, rh = decode_measurement(reply)
    except ChecksumError:
        assert crc8(reply[0:2]) != reply[2] or crc8(reply[3:5]) != reply[5]
        return
    assert -45.0 <= t <= 130.0 and 0.0 <= rh <= 100.0


@given(st.binary(max_size=12).filter(lambda b: len(b) != 6))
def test_decode_refuses_wrong_lengths(reply: bytes) -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        decode_measurement(reply)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_bus_bytes_give_measurements_or_a_driver_error(data: st.DataObject) -> None:
    driver = Sht3x(FuzzBus(data), ADDR, sleep=CountingSleep())
    try:
        ms = driver.read()
    except DriverError as exc:
        assert str(exc).startswith("SHT3x at 0x44: ")
        return
    assert [m.metric for m in ms] == ["temperature", "humidity"]
    assert all(isinstance(m.value, float) and math.isfinite(m.value) for m in ms)
