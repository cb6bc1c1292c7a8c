"""``roost decode``: turn a payload a technician copied into JSON on stdout; errors on stderr, exit 1."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from wire import senml
from wire.errors import WireError


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
