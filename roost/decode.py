"""``roost decode``: turn a payload a technician copied into JSON on stdout; errors on stderr, exit 1."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from wire import senml
from wire.errors import PayloadError, WireError


def _payload(arg: str) -> bytes:
    if arg == "-":
        return sys.stdin.buffer.read()
    if arg.startswith("@"):
        return Path(arg[1:]).read_bytes()
    text = arg.strip()
    if text[:1] in ("[", "{"):
        return text.encode()
    try:
        return bytes.fromhex(text.replace(" ", "").replace(":", ""))
    except ValueError as exc:
        raise ValueError("the payload is neither hex bytes nor JSON text (or @FILE, or - for stdin)") from exc


def decode_command(args: argparse.Namespace) -> int:
    """Decode and print; 0 on success, 1 when the payload is bad."""
    try:
        raw = _payload(args.payload)
        readings = senml.decode(raw)
    except (OSError, ValueError, WireError) as exc:
        print(f"roost decode {args.format}: {exc}", file=sys.stderr)
        return 1
    doc = {
        "format": "senml",
        "encoding": senml.sniff(raw),
        "readings": [
            {
                "sensor": r.sensor,
                "metric": r.metric,
                "value": r.value,
                "unit": r.unit,
                "ts": datetime.fromtimestamp(r.ts, UTC).isoformat().replace("+00:00", "Z"),
            }
            for r in readings
        ],
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def decode_nmea_command(args: argparse.Namespace) -> int:
    """Decode one NMEA 0183 sentence (or ``-``: the first line on stdin) and print it; 1 when it is bad."""
    from drivers.nmea import NmeaError, decode_sentence

    text = sys.stdin.readline() if args.sentence == "-" else args.sentence
    try:
        result = decode_sentence(text)
    except NmeaError as exc:
        print(f"roost decode nmea: {exc}", file=sys.stderr)
        return 1
    fix = result.fix
    doc = {
        "format": "nmea",
        "sentence": result.sentence,
        "talker": result.talker,
        "readings": [{"metric": m.metric, "value": m.value, "unit": m.unit} for m in result.measurements],
        "fix": None
        if fix is None
        else {
            "lat": fix.lat,
            "lon": fix.lon,
            "alt": fix.alt_m,
            "quality": fix.quality,
            "satellites": fix.satellites,
            "hdop": fix.hdop,
        },
        "utc": None if result.utc is None else result.utc.isoformat().replace("+00:00", "Z"),
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _serial_bytes(arg: str) -> bytes:
    if arg == "-":
        return sys.stdin.buffer.read()
    if arg.startswith("@"):
        return Path(arg[1:]).read_bytes()
    text = arg.strip().replace(" ", "").replace(":", "")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError("the frame is not hex bytes (or @FILE of raw bytes, or - for stdin)") from exc


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def decode_serial_command(args: argparse.Namespace) -> int:
    """Decode Roost serial frames (one, or a captured stream) and print their messages and readings; 1 if bad."""
    import dataclasses
    import time

    from drivers.roostserial import frame as rsf
    from drivers.roostserial import messages as rsm

    try:
        raw = _serial_bytes(args.frame)
    except (OSError, ValueError) as exc:
        print(f"roost decode serial: {exc}", file=sys.stderr)
        return 1
    if not raw.strip(b"\x00"):
        print("roost decode serial: no frame: the input holds no bytes but 0x00", file=sys.stderr)
        return 1
    if not raw.endswith(rsf.DELIMITER):
        raw += rsf.DELIMITER  # a frame copied without its delimiter
    now = time.time()
    sensor: str | None = None
    frames: list[dict[str, object]] = []
    readings: list[dict[str, object]] = []
    for n, item in enumerate(rsf.Deframer().feed(raw), 1):
        try:
            if isinstance(item, rsf.FrameError):
                raise item
            msg = rsm.decode_message(item)
            entry: dict[str, object] = {"type": rsm.message_type(msg).name, "seq": item.seq}
            if isinstance(msg, rsm.Readings):
                got = rsm.decode_readings(msg.pack, sensor=sensor or "unannounced", now=now)
                entry["readings"] = len(got)
                readings.extend(
                    {"sensor": sensor, "metric": r.metric, "value": r.value, "unit": r.unit, "ts": _iso(r.ts)}
                    for r in got
                )
            else:
                if isinstance(msg, rsm.Announce):
                    sensor = msg.node_id
                fields = {
                    k: (v.name if isinstance(v, rsm.AckStatus | rsm.ResultStatus) else v)
                    for k, v in dataclasses.asdict(msg).items()
                }
                entry["message"] = {"kind": type(msg).__name__, **fields}
        except rsf.FrameError as exc:
            print(f"roost decode serial: frame {n}: {exc} ({exc.reason})", file=sys.stderr)
            return 1
        frames.append(entry)
    doc = {"format": "roost-serial", "frames": frames, "readings": readings}
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def decode_line_command(args: argparse.Namespace) -> int:
    """Decode ``metric=value[,metric=value]`` text (a line protocol line, or several) and print it; 1 if bad."""
    from drivers import linetext

    text = sys.stdin.read() if args.text == "-" else args.text
    readings: list[dict[str, object]] = []
    try:
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise PayloadError("empty input: expected metric=value[,metric=value...]")
        for n, line in enumerate(lines, 1):
            try:
                pairs = linetext.parse(line)
            except PayloadError as exc:
                raise PayloadError(f"line {n}: {exc.reason}" if len(lines) > 1 else exc.reason) from exc
            readings.extend({"sensor": args.sensor, "metric": m, "value": v, "unit": None} for m, v in pairs)
    except PayloadError as exc:
        print(f"roost decode line: {exc.reason}", file=sys.stderr)
        return 1
    json.dump({"format": "line", "readings": readings}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _ble_hex(text: str, what: str) -> bytes:
    t = text.strip().replace(" ", "").replace(":", "").replace("-", "")
    if t[:2].lower() == "0x":  # nRF Connect shows raw data as 0x0201...
        t = t[2:]
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise ValueError(f"{what} is not hex bytes") from None


def decode_ble_command(args: argparse.Namespace) -> int:
    """Decode one BLE advertisement (raw AD structures as hex) and print its readings; 1 when it cannot be."""
    from drivers.ble.advertisement import parse_ad_structures
    from drivers.ble.decode import decode
    from drivers.ble.errors import AddressRequired, BadMic, BindKeyRequired, BleDecodeError

    try:
        raw = _ble_hex(args.raw, "the advertisement")
        key = None if args.key is None else _ble_hex(args.key, "--key")
        if key is not None and len(key) != 16:
            raise ValueError(f"--key: a bind key is 16 bytes (32 hex digits), this is {len(key)} bytes")
        adv = parse_ad_structures(raw, address=args.mac)
        result = decode(adv, key=key)
    except BleDecodeError as exc:
        hint = ""
        if isinstance(exc, BindKeyRequired):
            hint = ": --key (32 hex digits)" + ("" if args.mac else " and --mac (the sender's address)")
        elif isinstance(exc, AddressRequired):
            hint = ": --mac"
        elif isinstance(exc, BadMic):
            hint = " (check --key, and that --mac is the sender's address)"
        print(f"roost decode ble: {exc.problem}{hint}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"roost decode ble: {exc}", file=sys.stderr)
        return 1
    if result is None:
        seen = [f"service data {u[4:8] if u.endswith('-0000-1000-8000-00805f9b34fb') else u}" for u in adv.service_data]
        seen += [f"manufacturer 0x{c:04X}" for c in adv.manufacturer_data]
        print(
            "roost decode ble: no decoder recognises this advertisement "
            f"({', '.join(seen) or 'no service or manufacturer data'}); Roost reads BTHome (FCD2), "
            "pvvx/atc1441 (181A), Eddystone (FEAA), Ruuvi (0x0499) and iBeacon (0x004C)",
            file=sys.stderr,
        )
        return 1
    doc = {
        "format": result.format,
        "sensor": result.sensor or None,
        "readings": [{"metric": m.metric, "value": m.value, "unit": m.unit} for m in result.measurements],
        "encrypted": result.encrypted,
        "packet_id": result.packet_id,
        "counter": result.counter,
        "name": adv.local_name,
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _int_arg(text: str, what: str) -> int:
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number (hex like 0x0402, or decimal)") from None


def decode_zcl_command(args: argparse.Namespace) -> int:
    """Decode one ZCL frame of ``--cluster`` and print its readings and skipped records; 1 when it cannot be."""
    from drivers.zcl import ZclDecodeError, decode

    try:
        cluster = _int_arg(args.cluster, "--cluster")
        known: dict[int, int] = {}
        for item in args.known:
            attr, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--known {item!r} must be ATTR=VALUE, like 0x0302=1000")
            known[_int_arg(attr, "--known attribute")] = _int_arg(value, "--known value")
        frame = decode(cluster, _ble_hex(args.frame, "the frame"), known=known)
    except ZclDecodeError as exc:
        print(f"roost decode zcl: {exc.problem}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"roost decode zcl: {exc}", file=sys.stderr)
        return 1
    doc = {
        "format": "zcl",
        "cluster": f"0x{frame.cluster:04X}",
        "command": frame.command,
        "tsn": frame.tsn,
        "readings": [{"metric": m.metric, "value": m.value, "unit": m.unit} for m in frame.measurements],
        "skipped": [{"attribute": f"0x{s.attribute:04X}", "reason": s.reason} for s in frame.skipped],
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
