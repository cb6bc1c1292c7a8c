#!/usr/bin/env python3
"""Write the node's settings block (src/avr/settings.h) as an Intel HEX EEPROM image on stdout.

    python3 tools/eeprom_image.py --id greenhouse-3 --interval 60 > roost-eeprom.hex
    avrdude -p atmega328p -c usbasp -U eeprom:w:roost-eeprom.hex:i

An id given here overrides the one built in (make NODE_ID=...); ``--id ''`` keeps the built-in one.
The Uno's own bootloader does not write EEPROM: use an ISP programmer, or build the id in instead.
"""

from __future__ import annotations

import argparse
import binascii
import re
import sys

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]{0,31}")


def settings_block(node_id: str, interval_s: int) -> bytes:
    """The 40 bytes at EEPROM address 0: magic, layout, id, interval, CRC-16/XMODEM (big-endian)."""
    if node_id and not _ID.fullmatch(node_id):
        raise ValueError(f"{node_id!r} is not a Roost sensor id: 1-32 of A-Z a-z 0-9 - : . / _, starting alphanumeric")
    if not 1 <= interval_s <= 0xFFFF:
        raise ValueError(f"the interval is 1 to 65535 seconds, not {interval_s}")
    raw = node_id.encode("ascii")
    body = b"RN\x01" + bytes((len(raw),)) + raw.ljust(32, b"\x00") + interval_s.to_bytes(2, "big")
    return body + binascii.crc_hqx(body, 0).to_bytes(2, "big")


def intel_hex(data: bytes, address: int = 0) -> str:
    """``data`` as Intel HEX data records of 16 bytes, then the end-of-file record."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        at = address + off
        record = bytes((len(chunk), at >> 8, at & 0xFF, 0)) + chunk
        lines.append(":" + (record + bytes(((-sum(record)) & 0xFF,))).hex().upper())
    lines.append(":00000001FF")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="The Roost AVR node's EEPROM settings as Intel HEX.")
    parser.add_argument("--id", default="", help="the node id (empty: the one built into the firmware)")
    parser.add_argument("--interval", type=int, default=60, help="seconds between readings (1-65535)")
    args = parser.parse_args(argv)
    try:
        block = settings_block(args.id, args.interval)
    except ValueError as exc:
        print(f"eeprom_image: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(intel_hex(block))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
