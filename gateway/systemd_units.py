"""What the gateway needs from its systemd unit: the bus groups for a config, and the unit's exposure score.

``roost-gateway.service`` lists every bus group (``SupplementaryGroups=dialout i2c spi bluetooth``); first
boot writes :func:`groups_dropin`'s text to :data:`DROPIN_PATH` so the daemon keeps only the groups of the
buses gateway.toml configures. ``python -m gateway.systemd_units score systemd/roost-gateway.service``
prints ``systemd-analyze security``'s exposure level for a unit file and fails above the ceiling.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config import GatewayConfig

DROPIN_PATH = Path("/etc/systemd/system/roost-gateway.service.d/10-buses.conf")
ALL_GROUPS = ("dialout", "i2c", "spi", "bluetooth")
"""Every group the unit may add, in the unit's order."""
CEILING = 2.5
"""The worst exposure level the gateway's unit may have (0 = locked down, 10 = fully exposed)."""
_EXPOSURE = re.compile(r"Overall exposure level for (?P<unit>\S+): (?P<score>\d+(?:\.\d+)?)")


class ScoreError(Exception):
    """systemd-analyze could not rate the unit; the message says why."""


class NoSystemdAnalyze(ScoreError):
    """systemd-analyze is not installed here."""


def bus_groups(config: GatewayConfig) -> list[str]:
    """The supplementary groups the configured buses need, in :data:`ALL_GROUPS` order.

    dialout: serial ports (Roost nodes, NMEA, line protocol, Modbus RTU) and the Zigbee radio's port;
    i2c and spi: their bus devices; bluetooth: BlueZ's D-Bus policy for BLE.
    """
    a = config.adapters
    wanted = {
        "dialout": bool(a.serial or a.modbus or a.zigbee.enabled),
        "i2c": bool(a.i2c),
        "spi": bool(a.spi),
        "bluetooth": a.ble.enabled,
    }
    return [g for g in ALL_GROUPS if wanted[g]]


def groups_dropin(config: GatewayConfig) -> str:
    """The drop-in that trims ``SupplementaryGroups=`` to the buses ``config`` uses (the empty line resets it)."""
    groups = bus_groups(config)
    lines = [
        "# Written by Roost's first boot from /etc/roost/gateway.toml: only the groups of the buses configured.",
        "# Written again when the buses change; delete it to give the gateway every bus group.",
        "[Service]",
        "SupplementaryGroups=",
    ]
    if groups:
        lines.append("SupplementaryGroups=" + " ".join(groups))
    return "\n".join(lines) + "\n"


def exposure(unit_file: Path, *, systemd_analyze: str = "systemd-analyze") -> float:
    """``systemd-analyze security --offline=yes`` on ``unit_file``: its overall exposure level (0-10)."""
    exe = shutil.which(systemd_analyze)
    if exe is None:
        raise NoSystemdAnalyze("systemd-analyze is not installed (Debian package: systemd; make deps installs it)")
    if not unit_file.is_file():
        raise ScoreError(f"{unit_file}: no such unit file")
    done = subprocess.run(
        [exe, "security", "--offline=yes", "--no-pager", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = _EXPOSURE.search(done.stdout)
    if match is None:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ScoreError(f"{unit_file.name}: systemd-analyze gave no score ({detail[-1] if detail else 'no output'})")
    return float(match.group("score"))


def main(argv: Sequence[str] | None = None) -> int:
    """``score UNIT_FILE [--ceiling N]``: print the exposure level; exit 1 above the ceiling or on error.

    Without systemd-analyze it says so and exits 0, as the tests skip then.
    """
    parser = argparse.ArgumentParser(prog="python -m gateway.systemd_units")
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="rate a unit file with systemd-analyze security")
    score.add_argument("unit_file", type=Path)
    score.add_argument("--ceiling", type=float, default=CEILING)
    args = parser.parse_args(argv)
    try:
        level = exposure(args.unit_file)
    except NoSystemdAnalyze as exc:
        print(f"note: {args.unit_file.name} not rated: {exc}", file=sys.stderr)
        return 0
    except ScoreError as exc:
        print(f"cannot rate {args.unit_file.name}: {exc}", file=sys.stderr)
        return 1
    verdict = "" if level <= args.ceiling else " ABOVE THE CEILING"
    print(f"{args.unit_file.name} exposure: {level:.1f} (ceiling {args.ceiling:.1f}){verdict}")
    return 0 if level <= args.ceiling else 1


if __name__ == "__main__":
    sys.exit(main())
