"""``roost firstboot check FILE`` and ``roost firstboot run --boot-dir DIR [--root DIR]`` (docs/install.md).

``check`` is for the installer's laptop: every problem in a roost.toml at once, or a one-line summary.
``run`` is what the image's roost-firstboot.service starts once, as root, before the gateway.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_PROBLEMS = 1


def add_parser(sub: Any) -> None:
    """Add ``roost firstboot ...``."""
    p = sub.add_parser("firstboot", help="check or apply the installer's roost.toml (the image runs it at first boot)")
    acts = p.add_subparsers(dest="firstboot_action", required=True, metavar="ACTION")
    c = acts.add_parser("check", help="check a roost.toml and list every problem in it")
    c.add_argument("file", type=Path, help="the roost.toml to check")
    c.set_defaults(func=check_command)
    e = acts.add_parser("example", help="print the commented example roost.toml (every key explained)")
    e.set_defaults(func=example_command)
    r = acts.add_parser("run", help="apply roost.toml from the boot partition (as root, once)")
    r.add_argument(
        "--boot-dir", type=Path, default=Path("/boot/firmware"), help="the boot partition (default %(default)s)"
    )
    r.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        help="prefix of every system path written (default /; tests use a folder)",
    )
    r.add_argument("--force", action="store_true", help="run even though first boot has finished before")
    r.set_defaults(func=run_command)


def summary(settings: Any) -> str:
    """What a valid roost.toml sets up, in one line."""
    s = settings
    parts = []
    if s.wifi is not None:
        parts.append(f'Wi-Fi "{s.wifi.ssid}" ({s.wifi.country}{", hidden" if s.wifi.hidden else ""})')
    else:
        parts.append("no Wi-Fi (Ethernet)")
    parts.append(f"fixed address {s.network.address}" if s.network is not None else "DHCP")
    if s.cloud is not None and s.enrollment is not None:
        how = "claim token" if s.enrollment.method == "claim-token" else "device flow"
        parts.append(f"cloud {s.cloud.url} (tenant {s.cloud.tenant}, {how})")
    parts.append(f"hostname {s.hostname}" if s.hostname else "hostname roost-XXXX")
    parts.append(f"time zone {s.timezone}")
    parts.append(f"SSH on ({len(s.ssh_keys)} key{'s' if len(s.ssh_keys) != 1 else ''})" if s.ssh_keys else "SSH off")
    count = len(s.sensors)
    listed = f": {', '.join(x.label for x in s.sensors)}" if count else ""
    parts.append(f"{count} sensor{'s' if count != 1 else ''}{listed}")
    return "; ".join(parts)


def check_command(args: argparse.Namespace) -> int:
    """Print every problem of ``args.file`` (exit 1) or what it sets up (exit 0)."""
    from gateway.firstboot.validate import check_file

    checked = check_file(args.file)
    name = args.file.name
    if not checked.ok:
        count = len(checked.problems)
        print(f"{name} has {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
        for p in checked.problems.items:
            where = f", line {p.line}" if p.line else ""
            key = f"{p.key}: " if p.key else ""
            print(f"  {name}{where}: {key}{p.message}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"{name} is valid: {summary(checked.settings)}")
    return 0


def example_command(_args: argparse.Namespace) -> int:
    """Print the example roost.toml the image puts on the boot partition as roost.toml.example."""
    from importlib.resources import files

    sys.stdout.write(files("gateway.firstboot").joinpath("roost.example.toml").read_text(encoding="utf-8"))
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Apply the boot partition's roost.toml under ``args.root``; 0 when the gateway is set up."""
    from gateway.firstboot import apply, console

    env = apply.environment(args.root, args.boot_dir)
    out = apply.run(env, force=args.force)
    console.for_root(env.root).say([*(f"  {note}" for note in out.notes), *out.console_lines()])
    return 0 if out.ok and out.finished else EXIT_PROBLEMS
