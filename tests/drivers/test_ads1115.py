"""ADS1115: config bits and codes against the datasheet's tables, round trips through the emulator for
every input and gain, conversion timing (OS bit), faults and fuzzed bus data."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import BusTimeout, DriverError, NoAcknowledge, NotReady
from drivers.i2c import ads1115
from drivers.i2c.ads1115 import MUX_BY_NAME, MUXES, PGAS, Ads1115, code_to_volts, config_word
from drivers.i2c.ads1115_emulator import Ads1115Emulator, volts_to_code
from drivers.i2c.emulated_bus import EmulatedI2cBus, Faults, ManualClock
from tests.drivers.i2c_fuzz import CountingSleep, FuzzBus

ADDR = 0x48
FULL_SCALES = [p.full_scale for p in PGAS]


def rig(vdd: float = 5.0) -> tuple[Ads1115Emulator, EmulatedI2cBus, ManualClock]:
    clock = ManualClock()
    emu = Ads1115Emulator(vdd=vdd, clock=clock.now)
    return emu, EmulatedI2cBus({ADDR: emu}), clock


# --- the datasheet's tables first -----------------------------------------------------------------


def test_reset_config_is_the_default_single_shot_word() -> None:
    # 0x8583: OS=1, MUX=000 (AIN0-AIN1), PGA=010 (±2.048 V), MODE=1, DR=100 (128 SPS), COMP_QUE=11.
    assert config_word(MUX_BY_NAME["AIN0-AIN1"], 2.048, 128) == ads1115.CONFIG_RESET == 0x8583
    assert config_word(MUX_BY_NAME["AIN3"], 0.256, 860) == 0b1_111_101_1_111_0_0_0_11
    assert config_word(MUX_BY_NAME["AIN0"], 6.144, 8) == 0b1_100_000_1_000_0_0_0_11


@pytest.mark.parametrize(
    ("code", "fraction"),
    [(0x7FFF, 1 - 2**-15), (0x0001, 2**-15), (0x0000, 0.0), (0xFFFF, -(2**-15)), (0x8000, -1.0)],
)
@pytest.mark.parametrize("fs", FULL_SCALES)
def test_output_codes_table(code: int, fraction: float, fs: float) -> None:
    # Table "Output Codes": +FS(2^15-1)/2^15 is 7FFFh, +FS/2^15 is 0001h, 0 is 0, -FS/2^15 is FFFFh, <= -FS is 8000h.
    assert code_to_volts(code, fs) == pytest.approx(fraction * fs, abs=1e-12)
    assert volts_to_code(fraction * fs, fs) == code


def test_clipping_at_full_scale() -> None:
    assert volts_to_code(5.0, 2.048) == 0x7FFF
    assert volts_to_code(-5.0, 2.048) == 0x8000


def test_mux_table() -> None:
    assert [(m.name, m.code) for m in MUXES] == [
        ("AIN0-AIN1", 0),
        ("AIN0-AIN3", 1),
        ("AIN1-AIN3", 2),
        ("AIN2-AIN3", 3),
        ("AIN0", 4),
        ("AIN1", 5),
        ("AIN2", 6),
        ("AIN3", 7),
    ]


# --- round trips --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    fs=st.sampled_from(FULL_SCALES),
    mux=st.sampled_from(MUXES),
    rate=st.sampled_from(ads1115.DATA_RATES),
    fractions=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_round_trip_every_input_and_gain(fs: float, mux: ads1115.Mux, rate: int, fractions: list[float]) -> None:
    emu, bus, clock = rig(vdd=5.0)
    emu.voltages = [f * 5.0 for f in fractions]
    driver = Ads1115(bus, ADDR, inputs=[mux.name], full_scale=fs, data_rate=rate, sleep=clock.sleep)
    expected = emu.voltages[mux.positive] - (0.0 if mux.negative is None else emu.voltages[mux.negative])
    got = driver.read_input(mux.name)
    lsb = fs / 32768
    if abs(expected) < fs - lsb:
        assert abs(got - expected) <= lsb / 2 + 1e-12
    else:
        assert got == pytest.approx(math.copysign(fs, expected), abs=lsb), "clipped at full scale"
    [m] = driver.read()
    assert (m.metric, m.unit) == (mux.name.lower(), "V")
    assert abs(float(m.value) - got) <= 0.00005 + 1e-12


def test_read_all_inputs() -> None:
    emu, bus, clock = rig(vdd=3.3)
    emu.voltages = [0.1, 1.0, 2.5, 3.3]
    got = {m.metric: m.value for m in Ads1115(bus, ADDR, sleep=clock.sleep).read()}
    assert got == {"ain0": 0.1, "ain1": 1.0, "ain2": 2.5, "ain3": 3.3}
    assert emu.conversions == 4


def test_os_bit_reads_0_while_converting() -> None:
    emu, bus, clock = rig()
    assert bus.read_i2c_block_data(ADDR, 1, 2) == [0x85, 0x83], "reset value"
    word = config_word(MUX_BY_NAME["AIN0"], 4.096, 8)  # 8 SPS: 125 ms
    bus.write_i2c_block_data(ADDR, 1, [word >> 8, word & 0xFF])
    assert bus.read_i2c_block_data(ADDR, 1, 2)[0] & 0x80 == 0, "converting"
    clock.sleep(0.1)
    assert bus.read_i2c_block_data(ADDR, 1, 2)[0] & 0x80 == 0, "still converting at 100 ms"
    clock.sleep(0.03)
    assert bus.read_i2c_block_data(ADDR, 1, 2)[0] & 0x80, "done"
    assert emu.conversions == 1


def test_driver_waits_one_conversion_period() -> None:
    _emu, bus, clock = rig()
    start = clock.t
    Ads1115(bus, ADDR, inputs=["AIN0"], data_rate=8, sleep=clock.sleep).read()
    assert clock.t - start >= 1 / 8


def test_bad_options_are_refused() -> None:
    bus = EmulatedI2cBus()
    with pytest.raises(ValueError, match="inputs"):
        Ads1115(bus, inputs=["AIN4"])
    with pytest.raises(ValueError, match="full_scale"):
        Ads1115(bus, full_scale=5.0)
    with pytest.raises(ValueError, match="data_rate"):
        Ads1115(bus, data_rate=100)


# --- faults -------------------------------------------------------------------------------------


def test_faults_are_driver_errors() -> None:
    emu, bus, clock = rig()
    driver = Ads1115(bus, ADDR, sleep=clock.sleep)
    emu.faults.nack = True
    with pytest.raises(NoAcknowledge, match="ADS1115 at 0x48"):
        driver.read()
    emu.faults.nack = False
    emu.faults.stuck = True
    with pytest.raises(BusTimeout):
        driver.read()
    emu.faults.stuck = False
    emu.never_ready = True
    with pytest.raises(NotReady, match="conversion of AIN0 not done"):
        driver.read()


@pytest.mark.parametrize("steps", range(6))
def test_a_nack_mid_conversion(steps: int) -> None:
    # One conversion is five address phases: config write, config pointer + read, conversion pointer + read.
    emu, bus, clock = rig()
    emu.faults = Faults(nack_after=steps)
    driver = Ads1115(bus, ADDR, inputs=["AIN0"], sleep=clock.sleep)
    if steps < 5:
        with pytest.raises(NoAcknowledge):
            driver.read()
    else:
        assert driver.read()[0].value == 0.0


# --- fuzz ---------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_bus_bytes_give_measurements_or_a_driver_error(data: st.DataObject) -> None:
    driver = Ads1115(FuzzBus(data), ADDR, inputs=["AIN0", "AIN1-AIN3"], sleep=CountingSleep())
    try:
        ms = driver.read()
    except DriverError as exc:
        assert str(exc).startswith("ADS1115 at 0x48: ")
        return
    assert all(-4.096 <= float(m.value) < 4.096 for m in ms)


@given(st.integers(0, 0xFFFF), st.sampled_from(FULL_SCALES))
def test_code_to_volts_is_bounded_and_inverts(code: int, fs: float) -> None:
    volts = code_to_volts(code, fs)
    assert -fs <= volts < fs
    assert volts_to_code(volts, fs) == code
