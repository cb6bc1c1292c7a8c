"""Fixtures for the firmware tests: the AVR build, the simulated board (firmware/sim's roost-simavr) and
the serial line between that board and a real gateway adapter.

The line is a pty pair of the test's own: the gateway opens its slave side (through a symlink, as it
would ``/dev/serial/by-id/...``), and a thread copies bytes between its master side and the simulator's
pty, unchanged. That thread is the cable: noise is put on it in either direction and a frame can be lost
on it, which is what a real line does; neither end is told.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shutil
import subprocess
import threading
import time
import tty
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.roostserial.frame import FrameError, decode_frame
from tests.firmware.simavr_rig import Uno

ROOT = Path(__file__).resolve().parents[2]
AVR = ROOT / "firmware" / "avr"
SIM = ROOT / "firmware" / "sim"
BUILD_TIMEOUT_S = 300


def _missing_tool(what: str) -> None:
    """Skip where the machine lacks a tool and cannot install it; fail where make deps would have."""
    message = f"{what}: `make deps` (as root) installs the AVR toolchain and simulator"
    if os.geteuid() == 0:
        pytest.fail(message)
    pytest.skip(message)


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )


@pytest.fixture(scope="session")
def avr_toolchain() -> None:
    if shutil.which("avr-gcc") is None or not Path("/usr/lib/avr/include/avr/io.h").exists():
        _missing_tool("avr-gcc and avr-libc are not installed")


@pytest.fixture(scope="session")
def firmware_hex(avr_toolchain: None) -> Path:
    """firmware/avr/roost-node.hex, built now (make only rebuilds what changed)."""
    done = _make("-C", str(AVR))
    assert done.returncode == 0, f"the firmware does not build:\n{done.stdout}\n{done.stderr}"
    return AVR / "roost-node.hex"


@pytest.fixture(scope="session")
def simavr_bridge(avr_toolchain: None) -> Path:
    """The simavr-to-pty bridge of firmware/sim, built now."""
    if not Path("/usr/include/simavr/sim_avr.h").exists():
        _missing_tool("libsimavr-dev is not installed")
    done = _make("-C", str(SIM))
    assert done.returncode == 0, f"firmware/sim does not build:\n{done.stdout}\n{done.stderr}"
    for exe in (SIM / "roost-simavr", SIM / "build" / "roost-simavr"):
        if exe.exists():
            return exe
    raise AssertionError("make -C firmware/sim built no roost-simavr")


class Line:
    """The cable between the board and the gateway (see the module's docstring)."""

    def __init__(self, board_pty: str, link: Path) -> None:
        self._board = os.open(board_pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._board)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # raw before the gateway opens it; kept open so the master never sees EIO
        os.set_blocking(self._master, False)
        self.link = link
        link.symlink_to(os.ttyname(self._slave))
        self._lock = threading.Lock()
        self._partial = b""
        self.drop: Counter[int] = Counter()
        """Lose the node's next N frames of a type on the line: ``line.drop[m.MsgType.RESULT] = 1``."""
        self.dropped: list[bytes] = []
        self.from_node: list[tuple[float, bytes]] = []
        """Every frame the node sent (without its delimiter), as it crossed the line."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def noise_to_node(self, data: bytes) -> None:
        """Put ``data`` on the line towards the node now: before whatever the gateway writes next."""
        with self._lock:
            self._write(self._board, data)

    def noise_to_gateway(self, data: bytes) -> None:
        with self._lock:
            self._write(self._master, data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in (self._board, self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        deadline = time.monotonic() + 2.0
        while data and time.monotonic() < deadline:
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as exc:
                if exc.errno == errno.EIO:  # nobody has that end open: the bytes fall off the cable
                    return
                raise

    def _from_node(self, data: bytes) -> None:
        """Forward whole frames (cut at 0x00) to the gateway, losing those ``drop`` names."""
        self._partial += data
        *frames, self._partial = self._partial.split(b"\x00")
        out = b""
        for raw in frames:
            if raw:
                self.from_node.append((time.monotonic(), raw))
            if raw and +self.drop:
                try:
                    frame = decode_frame(raw)
                except FrameError:
                    frame = None
                if frame is not None and self.drop[frame.type] > 0:
                    self.drop[frame.type] -= 1
                    self.dropped.append(raw)
                    continue
            out += raw + b"\x00"
        if out:
            self._write(self._master, out)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._board, self._master], [], [], 0.02)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except (BlockingIOError, OSError):
                    continue
                with self._lock:
                    if fd == self._board:
                        self._from_node(data)
                    else:
                        self._write(self._board, data)


@pytest.fixture
def board(simavr_bridge: Path, firmware_hex: Path) -> Iterator[Uno]:
    """A simulated ATmega328P running the firmware (blank EEPROM: the default id and interval)."""
    b = Uno(simavr_bridge, str(firmware_hex))
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def line(board: Uno, tmp_path: Path) -> Iterator[Line]:
    """The cable from ``board`` to the gateway's port, a symlink standing in for /dev/serial/by-id/..."""
    ln = Line(board.pty, tmp_path / "usb-Arduino_Uno_roost-node-if00")
    try:
        yield ln
    finally:
        ln.close()
