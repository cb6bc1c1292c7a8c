"""``roost gateway scan i2c``: list what answers on an I2C bus and name the chips Roost knows.

On a gateway it opens ``/dev/i2c-N`` with smbus2 (``--bus N``, default 1, the header's SDA/SCL
on a Raspberry Pi); ``--emulated`` scans the demo's emulated bus instead (a BME280 at 0x76, an
SHT3x at 0x44, an ADS1115 at 0x48), so it can be shown without hardware. A table for a
technician by default, ``--json`` for a program. Errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the drivers load only when the command runs, so building the parser stays cheap
    from smbus2 import SMBus

    from drivers.bus import I2cBus
    from drivers.i2c.scan import Found

DEFAULT_BUS = 1


def add_parser(gateway_actions: Any) -> None:
    """Add ``scan i2c`` under ``roost gateway``."""
    p = gateway_actions.add_parser("scan", help="list the chips that answer on a local bus (I2C)")
    sub = p.add_subparsers(dest="scan_bus", required=True, metavar="BUS")
    i2c = sub.add_parser("i2c", help="probe I2C addresses 0x03-0x77 like i2cdetect and name known chips")
    i2c.add_argument(
        "--bus", type=int, default=DEFAULT_BUS, help=f"the bus number N of /dev/i2c-N (default {DEFAULT_BUS})"
    )
    i2c.add_argument("--emulated", action="store_true", help="scan the demo's emulated bus instead of hardware")
    i2c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    i2c.set_defaults(func=scan_command)


def _open(number: int) -> SMBus:
    """``smbus2.SMBus(number)``, or OSError with what the technician should do."""
    import smbus2

    path = f"/dev/i2c-{number}"
    try:
        return smbus2.SMBus(number)
    except FileNotFoundError:
        raise OSError(
            errno.ENOENT,
            f"{path} does not exist: enable I2C (sudo raspi-config nonint do_i2c 0, or dtparam=i2c_arm=on "
            "in /boot/firmware/config.txt, then reboot) and check the bus number (ls /dev/i2c-*)",
        ) from None
    except PermissionError:
        raise OSError(
            errno.EACCES,
            f"{path}: permission denied: add this user to group i2c (sudo usermod -aG i2c $USER, then log in again)",
        ) from None
    except OSError as exc:
        raise OSError(exc.errno, f"{path}: cannot open: {exc.strerror or exc}") from None


def _table(label: str, found: list[Found]) -> str:
    rows = [("ADDRESS", "CHIP", "MEASURES", "IDENTIFIED BY")]
    rows += [(f"0x{f.address:02x}", f.chip or "unknown", ", ".join(f.measures) or "-", f.detail) for f in found]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"I2C bus {label}: {len(found)} device{'s' if len(found) != 1 else ''} answered"]
    if found:
        lines += [
            "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3] for row in rows
        ]
    else:
        lines.append("nothing answered: check wiring (SDA, SCL, GND, power) and pull-up resistors")
    return "\n".join(line.rstrip() for line in lines)


def scan_command(args: argparse.Namespace) -> int:
    """Scan and print; 0 on success, 1 when the bus cannot be opened or is stuck."""
    from drivers.errors import DriverError
    from drivers.i2c.scan import scan

    bus: I2cBus
    if args.emulated:
        from drivers.i2c.emulated_bus import demo_bus

        bus, label, close = demo_bus(), "emulated", None
    else:
        try:
            real = _open(args.bus)
        except OSError as exc:
            print(f"roost gateway scan i2c: {exc.strerror}", file=sys.stderr)
            return 1
        bus, label, close = real, str(args.bus), real.close
    try:
        found = scan(bus)
    except DriverError as exc:
        print(f"roost gateway scan i2c: bus {label}: {exc.problem}", file=sys.stderr)
        return 1
    finally:
        if close is not None:
            close()
    if args.json:
        doc = {"bus": label, "devices": [f.as_json() for f in found]}
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_table(label, found))
    return 0
