"""``roost gateway pair|devices|label``: the technician's pairing tools, talking to the running daemon.

They reach the daemon through its control socket in the state folder (``gateway/control.py``), so they
run on the gateway as the service user (or root). ``devices`` reads the registry file directly when the
daemon is not running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def add_parsers(gateway_actions: Any) -> None:
    """Add pair, devices and label under ``roost gateway``."""
    pair = gateway_actions.add_parser("pair", help="open a pairing window (Zigbee permit-join) on the running gateway")
    pair.add_argument("kind", choices=["zigbee"], help="which radio")
    pair.add_argument("--config", "-c", required=True, help="gateway.toml")
    pair.add_argument("--seconds", type=int, default=None, help="how long joining is allowed (default: permit_join_s)")
    pair.add_argument("--name", default="", help="name for the device that joins (a second one gets '... 2')")
    pair.add_argument("--location", default="", help="where the device is (room, cabinet, ...)")
    pair.set_defaults(func=pair_command)
    dev = gateway_actions.add_parser("devices", help="list the paired devices in the gateway's registry")
    dev.add_argument("--config", "-c", required=True, help="gateway.toml")
    dev.add_argument("--kind", default=None, help="only this kind (zigbee, ble, ...)")
    dev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dev.set_defaults(func=devices_command)
    lab = gateway_actions.add_parser("label", help="set a paired device's name and location")
    lab.add_argument("kind", help="zigbee, ble, ...")
    lab.add_argument("id", help="the device id (a Zigbee IEEE address like 00:12:4b:00:1c:a1:b2:c3)")
    lab.add_argument("--config", "-c", required=True, help="gateway.toml")
    lab.add_argument("--name", default=None)
    lab.add_argument("--location", default=None)
    lab.set_defaults(func=label_command)


def _state_dir(config: str) -> Path:
    from gateway import config as gwconfig

    return gwconfig.load(Path(config)).gateway.state_dir


def _ask(args: argparse.Namespace, payload: dict[str, Any]) -> Any:
    from gateway.control import SOCKET_NAME, request

    return asyncio.run(request(_state_dir(args.config) / SOCKET_NAME, payload))


def _fail(what: str, exc: Exception) -> int:
    print(f"roost gateway {what}: {exc}", file=sys.stderr)
    return 1


def pair_command(args: argparse.Namespace) -> int:
    """Open a permit-join window on the running gateway and say until when."""
    from gateway.control import ControlError
    from gateway.errors import ConfigError

    try:
        result = _ask(
            args,
            {"op": "pair", "kind": args.kind, "seconds": args.seconds, "name": args.name, "location": args.location},
        )
    except (ControlError, ConfigError) as exc:
        return _fail("pair", exc)
    until = datetime.fromtimestamp(float(result["until"]), UTC).astimezone().strftime("%H:%M:%S")
    print(f"{args.kind}: pairing open for {result['seconds']} s (until {until}); put the device in pairing mode now")
    return 0


def devices_command(args: argparse.Namespace) -> int:
    """List the registry (from the daemon, or the file when it is not running)."""
    from gateway.control import ControlError
    from gateway.errors import ConfigError

    try:
        try:
            devices = _ask(args, {"op": "devices", "kind": args.kind})
        except ControlError:
            from gateway.registry import FILE_NAME, Registry

            path = _state_dir(args.config) / FILE_NAME
            if not path.exists():
                raise
            reg = Registry(path)
            try:
                devices = reg.devices(args.kind)
            finally:
                reg.close()
    except (ControlError, ConfigError) as exc:
        return _fail("devices", exc)
    if args.json:
        json.dump(devices, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not devices:
        print("no paired devices")
        return 0
    print(f"{'kind':8} {'id':26} {'name':20} {'location':16} {'model':18} status")
    for d in devices:
        print(
            f"{d.get('kind', ''):8} {d.get('id', ''):26} {d.get('name', ''):20.20} {d.get('location', ''):16.16} "
            f"{d.get('model') or '':18.18} {d.get('status', '')}"
        )
    return 0


def label_command(args: argparse.Namespace) -> int:
    """Set a device's name and location."""
    from gateway.control import ControlError
    from gateway.errors import ConfigError

    if args.name is None and args.location is None:
        return _fail("label", ValueError("give --name and/or --location"))
    try:
        entry = _ask(
            args, {"op": "label", "kind": args.kind, "id": args.id, "name": args.name, "location": args.location}
        )
    except (ControlError, ConfigError) as exc:
        return _fail("label", exc)
    print(f"{entry['kind']} {entry['id']}: name {entry.get('name', '')!r}, location {entry.get('location', '')!r}")
    return 0
