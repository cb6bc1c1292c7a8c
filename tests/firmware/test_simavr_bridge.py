"""roost-simavr itself (firmware/sim), with its own test program (firmware/sim/test/bridge-test.c): the UART
on the pty without loss and at the baud rate's pace, output pins as events, injected inputs and voltages,
the reset causes in MCUSR, and the refusal of a bootloader that does not fit the chip.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.firmware.simavr_rig import TEST_PROGRAM_A, Serial, Uno
from tests.gateway.test_node_firmware_hex import rec

BYTE_S = 10 / (16_000_000 / (8 * (16 + 1)))
"""One 8N1 byte at 115200 baud as a 16 MHz ATmega makes it (UBRR 16 with U2X: 117647 baud)."""
DEBIAN_OPTIBOOT = Path("/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot_atmega328.hex")


@pytest.fixture
def uno(simavr_bridge: Path) -> Iterator[Uno]:
    board = Uno(simavr_bridge, str(TEST_PROGRAM_A))
    try:
        yield board
    finally:
        board.close()


@pytest.fixture
def serial(uno: Uno) -> Iterator[Serial]:
    s = Serial(uno.pty)
    try:
        uno.send("reset")  # the greeting at power-on went by while nobody had the pty open
        s.read_until(b"mcusr=0x02\n")
        yield s
    finally:
        s.close()


def test_echo_is_lossless_and_paced_at_the_baud_rate(uno: Uno, serial: Serial) -> None:
    data = b"".join(b"line %04d of the lossless echo test\n" % i for i in range(120))  # 4320 bytes
    started = time.monotonic()
    serial.write(data)
    echoed = serial.read_until(b"line 0119 of the lossless echo test\n", timeout=20)
    elapsed = time.monotonic() - started
    assert echoed == data
    wire_s = len(data) * BYTE_S  # 0.37 s
    assert 0.9 * wire_s < elapsed < 3 * wire_s, (
        f"{len(data)} bytes echoed in {elapsed:.3f} s, the wire takes {wire_s:.3f}"
    )


def test_output_pins_are_printed_as_events(uno: Uno, serial: Serial) -> None:
    since = len(uno.events)
    serial.write(b"led 1\n")
    uno.wait_event("pin D13 1", since=since)
    serial.write(b"led 0\n")
    uno.wait_event("pin D13 0", since=since)


def test_adc_channels_temperature_and_an_input_pin_read_what_is_injected(uno: Uno, serial: Serial) -> None:
    uno.send("adc 3 2500")
    uno.send("adc temp 314")
    uno.send("pin D2 0")
    time.sleep(0.05)
    serial.write(b"adc 3\ntemp\npin\n")
    assert serial.read_until(b"pin D2 0\n").endswith(b"adc 3 511\ntemp\ntemp 292\npin\npin D2 0\n")
    uno.send("pin D2 1")
    uno.send("adc 0 5000")
    time.sleep(0.05)
    serial.write(b"pin\nadc 0\n")
    assert serial.read_until(b"adc 0 1023\n").endswith(b"pin D2 1\nadc 0\nadc 0 1023\n")


def test_reset_causes_reach_mcusr(uno: Uno, serial: Serial) -> None:
    since = len(uno.events)
    serial.write(b"reboot\n")  # the program lets the watchdog bite
    serial.read_until(b"bridge-test A mcusr=0x08\n")  # WDRF
    uno.wait_event("reset watchdog", since=since)
    uno.send("reset")
    serial.read_until(b"bridge-test A mcusr=0x02\n")  # EXTRF
    uno.wait_event("reset external", since=since)


def test_opening_the_pty_resets_the_chip_with_auto_reset(simavr_bridge: Path) -> None:
    board = Uno(simavr_bridge, "--auto-reset", str(TEST_PROGRAM_A))
    try:
        for _ in range(2):  # every open: as DTR going active on an Uno
            since = len(board.events)
            s = Serial(board.pty)
            try:
                assert s.read_until(b"\n") == b"bridge-test A mcusr=0x02\n"
                board.wait_event("reset external", since=since)
            finally:
                s.close()
            time.sleep(0.05)  # the bridge looks at the pty every simulated millisecond
    finally:
        board.close()


def test_bad_invocations_and_images_are_refused_with_a_reason(simavr_bridge: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(simavr_bridge), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    assert run().returncode == 2
    too_big = tmp_path / "too-big.hex"
    too_big.write_text(rec(0, 0x8000, b"\xaa\xbb") + "\n" + rec(1, 0) + "\n")  # 2 bytes at 0x8000: past the flash
    done = run(str(too_big))
    assert done.returncode == 2 and "past the end of the ATmega328P's 32 KB flash" in done.stderr
    if DEBIAN_OPTIBOOT.exists():
        # Debian's prebuilt optiboot has 532 bytes of code: it runs past the flash; firmware/sim builds one that fits
        done = run("--bootloader", str(DEBIAN_OPTIBOOT))
        assert done.returncode == 2 and re.search(r"0x8000-0x80.. lie past the end", done.stderr), done.stderr
