"""The AVR firmware's build and its protocol code, built natively, against the shared test vectors."""

from __future__ import annotations

import binascii
import re
import subprocess
import sys
from pathlib import Path

from tests.firmware.conftest import AVR, ROOT

VECTORS = sorted((ROOT / "tests/vectors/roostserial").glob("*.json"))


def test_the_protocol_code_gives_the_vectors_bytes_natively() -> None:
    # needs only a host C compiler: the protocol part and the node's logic include no AVR header
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(AVR), "host-test"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert f"host-test: {len(VECTORS)} vectors" in done.stdout  # every JSON vector, none left out
    assert "node-test: the state machine" in done.stdout  # and the node's logic over a fake board
    counts = re.findall(r"^(\d+) passed, (\d+) failed$", done.stdout, re.MULTILINE)
    assert len(counts) == 2, done.stdout
    (vectors_passed, vectors_failed), (node_passed, node_failed) = counts
    assert vectors_failed == node_failed == "0"
    assert int(vectors_passed) > 5 * len(VECTORS) and int(node_passed) >= 30


def test_the_firmware_fits_its_budget(firmware_hex: Path) -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(AVR), "size"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    sizes = re.search(r"flash (\d+) bytes .* static RAM (\d+) bytes", done.stdout)
    assert sizes is not None, done.stdout
    assert int(sizes[1]) < 16 * 1024 and int(sizes[2]) < 1024
    assert firmware_hex.read_text().startswith(":")  # Intel HEX, for avrdude and the simulator


def test_the_eeprom_image_holds_the_settings_block(avr_toolchain: None, tmp_path: Path) -> None:
    tool = AVR / "tools" / "eeprom_image.py"
    image = tmp_path / "eeprom.hex"
    done = subprocess.run(
        [sys.executable, str(tool), "--id", "greenhouse-3", "--interval", "300"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    image.write_text(done.stdout)
    raw = tmp_path / "eeprom.bin"
    # avr-objcopy reads the Intel HEX as avrdude would
    subprocess.run(["avr-objcopy", "-I", "ihex", "-O", "binary", str(image), str(raw)], check=True, timeout=30)
    block = raw.read_bytes()
    assert len(block) == 40
    assert block[:4] == b"RN\x01\x0c" and block[4:16] == b"greenhouse-3" and block[16:36] == bytes(20)
    assert int.from_bytes(block[36:38], "big") == 300
    assert binascii.crc_hqx(block, 0) == 0  # CRC-16/XMODEM, big-endian, over the block: as settings.c checks

    bad = subprocess.run(
        [sys.executable, str(tool), "--id", "/dev/ttyUSB0"], capture_output=True, text=True, timeout=30, check=False
    )
    assert bad.returncode == 2 and "is not a Roost sensor id" in bad.stderr and not bad.stdout
