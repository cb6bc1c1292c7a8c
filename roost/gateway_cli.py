"""``roost gateway pair|unpair|devices|label|status``: the technician's tools, talking to the running daemon.

They reach the daemon through its control socket in the state folder (``gateway/control.py``), so they
run on the gateway as the service user (or root). ``devices`` reads the registry file directly when the
daemon is not running; ``pair ble`` and ``unpair ble`` then write it (the BLE adapter loads it at start).
A bind key is never printed.
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
    pair = gateway_actions.add_parser(
        "pair", help="pair a device: Zigbee permit-join window, or a BLE device by its address and bind key"
    )
    pair.add_argument("kind", choices=["zigbee", "ble"], help="which radio")
    pair.add_argument("--config", "-c", required=True, help="gateway.toml")
    pair.add_argument("--seconds", type=int, default=None, help="zigbee: how long joining is allowed")
    pair.add_argument("--mac", default=None, help="ble: the device's Bluetooth address (A4:C1:38:0A:1B:2C)")
    pair.add_argument("--key", default=None, help="ble: its bind key, 32 hex characters ('-': read it from stdin)")
    pair.add_argument("--name", default="", help="the device's name (zigbee: a second one that joins gets '... 2')")
    pair.add_argument("--location", default="", help="where the device is (room, cabinet, ...)")
    pair.set_defaults(func=pair_command)
    unpair = gateway_actions.add_parser("unpair", help="forget a BLE device paired with 'pair ble'")
    unpair.add_argument("kind", choices=["ble"], help="which radio")
    unpair.add_argument("--config", "-c", required=True, help="gateway.toml")
    unpair.add_argument("--mac", required=True, help="the device's Bluetooth address")
    unpair.set_defaults(func=unpair_command)
    dev = gateway_actions.add_parser(
        "devices", help="list the paired devices in the gateway's registry, and BLE devices heard but not paired"
    )
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
    st = gateway_actions.add_parser(
        "status", help="what the local page's status shows: cloud, enrollment, first boot, buffer, adapters"
    )
    st.add_argument("--config", "-c", required=True, help="gateway.toml")
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    st.set_defaults(func=status_command)


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
    """Open a permit-join window on the running gateway and say until when; or pair a BLE device."""
    from gateway.control import ControlError
    from gateway.errors import ConfigError

    if args.kind == "ble":
        return _pair_ble(args)
    if args.mac is not None or args.key is not None:
        return _fail("pair", ValueError("--mac and --key are for ble; a Zigbee device joins during --seconds"))
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


def _offline_registry(args: argparse.Namespace, address: str, what: str) -> Any:
    """The registry file, for when the daemon is not running; refuses a device that gateway.toml lists."""
    from gateway import config as gwconfig
    from gateway.adapters.ble.paired import PairingRefused
    from gateway.registry import FILE_NAME, Registry

    cfg = gwconfig.load(Path(args.config))
    if any(d.address == address for d in cfg.adapters.ble.devices):
        raise PairingRefused(
            f"{address} is listed in gateway.toml ([[adapters.ble.devices]]), which wins over pairing: {what} it there"
        )
    state_dir = cfg.gateway.state_dir
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Registry(state_dir / FILE_NAME)


def _pair_ble(args: argparse.Namespace) -> int:
    from gateway.adapters.ble import paired
    from gateway.control import ControlError, NotRunning
    from gateway.errors import ConfigError

    if args.seconds is not None:
        return _fail("pair", ValueError("--seconds is for zigbee; a BLE device is paired by --mac"))
    try:
        key_text = sys.stdin.readline().strip() if args.key == "-" else args.key
        address, key = paired.check_mac(args.mac), paired.check_key(key_text)
        name, location = paired.check_label("name", args.name), paired.check_label("location", args.location)
        request = {"op": "pair", "kind": "ble", "id": address, "key": key, "name": name, "location": location}
        try:
            entry = _ask(args, request)
        except NotRunning:
            reg = _offline_registry(args, address, "change")
            try:
                entry = {**paired.record(reg, address, key=key, name=name, location=location), "offline": True}
            finally:
                reg.close()
    except (ControlError, ConfigError, ValueError) as exc:
        return _fail("pair", exc)
    has_key = bool(entry.get("encrypted") or (entry.get("extra") or {}).get("bind_key_set"))
    what = f"ble {address}: paired (name {entry.get('name', '')!r}, location {entry.get('location', '')!r}, "
    what += "bind key set)" if has_key else "no bind key)"
    if entry.get("offline"):
        print(f"{what}; recorded in the registry: the gateway takes it when it starts (it is not running now)")
    elif entry.get("active"):
        print(f"{what}; its readings are bridged from its next advertisement")
    else:
        print(f"{what}; recorded in the registry: BLE is not enabled in gateway.toml ([adapters.ble] enabled = true)")
    return 0


def unpair_command(args: argparse.Namespace) -> int:
    """Forget a BLE device paired with ``pair ble`` (through the daemon, or in the registry file)."""
    from gateway.adapters.ble import paired
    from gateway.control import ControlError, NotRunning
    from gateway.errors import ConfigError

    try:
        address = paired.check_mac(args.mac)
        try:
            _ask(args, {"op": "unpair", "kind": "ble", "id": address})
            print(f"ble {address}: unpaired; its readings are no longer bridged")
        except NotRunning:
            reg = _offline_registry(args, address, "remove")
            try:
                if not paired.forget(reg, address):
                    raise ControlError(f"{address} is not paired") from None
            finally:
                reg.close()
            print(f"ble {address}: removed from the registry (the gateway is not running)")
    except (ControlError, ConfigError, ValueError) as exc:
        return _fail("unpair", exc)
    return 0


def _status(d: dict[str, Any]) -> str:
    status = str(d.get("status", ""))
    if (d.get("extra") or {}).get("bind_key_set"):
        status += ", key set"
    if status in ("unpaired", "needs-key"):
        status = f"heard, {'not paired' if status == 'unpaired' else 'needs a key'}: pair it with --mac"
    return status


def devices_command(args: argparse.Namespace) -> int:
    """List the registry (from the daemon, or the file when it is not running)."""
    from gateway.control import ControlError, NotRunning
    from gateway.errors import ConfigError

    try:
        try:
            devices = _ask(args, {"op": "devices", "kind": args.kind})
        except NotRunning:
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
            f"{d.get('model') or '':18.18} {_status(d)}"
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


def _status_text(st: dict[str, Any]) -> str:
    """The status for a technician, one fact a line."""
    gw, cloud, buf, page = st["gateway"], st["cloud"], st["buffer"], st["local_page"]
    lines = [
        f"gateway    {gw['id']} (tenant {gw['tenant']}, software {gw['version']}, up {int(gw['uptime_s'])} s)",
        f"cloud      {'connected' if cloud['connected'] else 'NOT connected'} to {cloud['url']}"
        f" ({cloud['sent']} packs sent, {cloud['reconnects']} reconnects)",
    ]
    enr = st.get("enrollment")
    if enr:
        line = f"enrollment {enr.get('state', 'unknown')}"
        if enr.get("user_code") and enr.get("state") not in ("enrolled", "denied"):
            line += f": approve code {enr['user_code']} at {enr.get('verification_uri', '')}"
        lines.append(line)
    fb = st.get("firstboot")
    if fb is not None:
        lines.append("first boot " + ("ok" if fb["ok"] else f"found {len(fb['errors'])} problem(s) in roost.toml:"))
        lines += [f"           - {e['key']}: {e['message']}" for e in fb["errors"]]
    lines.append(
        f"buffer     {buf['readings']} readings waiting ({buf['bytes'] // 1024} KiB of {buf['max_bytes'] // 1024} KiB),"
        f" {buf['events']} events, {buf['dropped']} dropped"
    )
    if not st["adapters"]:
        lines.append("adapters   none configured")
    for a in st["adapters"]:
        refused = sum(int(v) for v in a["rejected"].values())
        detail = f" ({a['detail']})" if a["detail"] else ""
        lines.append(f"adapter    {a['name']:8} {a['state']}{detail}; {a['accepted']} readings, {refused} refused")
    if page["enabled"]:
        lines.append(f"local page {page['url']}" + ("" if page["pin_set"] else " (no setup PIN set: [local] pin)"))
        if page["fingerprint"]:
            lines.append(f"           certificate SHA-256 {page['fingerprint']}")
    else:
        lines.append("local page off ([local] enabled = true in gateway.toml)")
    return "\n".join(lines)


def _offline_status(config: str) -> str:
    """What the state folder says while the daemon is not running: first boot, enrollment, the certificate."""
    from gateway import config as gwconfig
    from gateway.localpage import cert, status

    cfg = gwconfig.load(Path(config))
    state_dir = cfg.gateway.state_dir
    lines = []
    fb = status.firstboot_report(state_dir)
    if fb is not None:
        lines.append("first boot " + ("ok" if fb["ok"] else f"found {len(fb['errors'])} problem(s) in roost.toml:"))
        lines += [f"           - {e['key']}: {e['message']}" for e in fb["errors"]]
    enr = status.enrollment(state_dir)
    if enr:
        lines.append(f"enrollment {enr.get('state', 'unknown')} (when the gateway last ran)")
    fingerprint = cert.read_fingerprint(state_dir / "local")
    if fingerprint:
        lines.append(f"local page certificate SHA-256 {fingerprint}")
    return "\n".join(lines)


def status_command(args: argparse.Namespace) -> int:
    """Ask the running daemon for its status and print it (what the state folder says when it is not running)."""
    from gateway.control import ControlError, NotRunning
    from gateway.errors import ConfigError

    try:
        st = _ask(args, {"op": "status"})
    except NotRunning as exc:
        code = _fail("status", exc)
        try:
            offline = _offline_status(args.config)
        except ConfigError:
            offline = ""
        if offline and not args.json:
            print(offline)
        return code
    except (ControlError, ConfigError) as exc:
        return _fail("status", exc)
    if args.json:
        json.dump(st, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_status_text(st))
    return 0
