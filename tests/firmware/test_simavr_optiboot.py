"""Flashing a simulated Uno for real: optiboot (built by firmware/sim from Debian's source) at 0x7E00 with
BOOTRST, the DTR auto-reset on every open of the pty, and Debian's avrdude writing programs through it
exactly as the Arduino IDE does. The chip then runs what was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.firmware.simavr_rig import OPTIBOOT, TEST_PROGRAM_A, TEST_PROGRAM_B, Serial, Uno, avrdude

pytestmark = pytest.mark.slow


@pytest.fixture
def blank_uno(simavr_bridge: Path) -> Iterator[Uno]:
    """An Uno with only its bootloader (an empty application), auto-reset on."""
    board = Uno(simavr_bridge, "--bootloader", str(OPTIBOOT), "--auto-reset")
    try:
        yield board
    finally:
        board.close()


def _flash(board: Uno, image: Path) -> float:
    since = len(board.events)
    seconds, done = avrdude(board.pty, image)
    assert done.returncode == 0, f"avrdude failed:\n{done.stderr}"
    assert "bytes of flash verified" in done.stderr
    assert "reset external" in board.events[since:]  # avrdude's open reset the chip into optiboot
    return seconds


def _greeting(board: Uno) -> bytes:
    """Open the port (a reset: optiboot waits for a programmer, gives up, starts the application)."""
    since = len(board.events)
    s = Serial(board.pty)
    try:
        line = s.read_until(b"\n", timeout=10)
    finally:
        s.close()
    board.wait_event("reset external", since=since)
    board.wait_event("reset watchdog", since=since)  # optiboot's timeout is its watchdog
    return line


def test_avrdude_writes_programs_through_optiboot_and_the_chip_runs_them(blank_uno: Uno) -> None:
    seconds = _flash(blank_uno, TEST_PROGRAM_A)
    assert seconds < 15
    # optiboot clears MCUSR before it starts the application
    assert _greeting(blank_uno) == b"bridge-test A mcusr=0x00\n"
    _flash(blank_uno, TEST_PROGRAM_B)
    assert _greeting(blank_uno) == b"bridge-test B mcusr=0x00\n"


def test_the_real_firmware_is_written_and_announces(blank_uno: Uno, firmware_hex: Path) -> None:
    seconds = _flash(blank_uno, firmware_hex)
    print(f"roost-node.hex ({firmware_hex.stat().st_size} bytes of hex) written and verified in {seconds:.2f} s")
    s = Serial(blank_uno.pty)
    try:
        frame = s.read_until(b"1.0.0", timeout=10)  # the ANNOUNCE carries the version
    finally:
        s.close()
    assert b"avr-node" in frame
