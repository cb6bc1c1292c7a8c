#!/usr/bin/env python3
"""Flatten tests/vectors/roostserial/*.json into the line format host/test_protocol.c reads.

The JSON files stay the single source of the vectors (the Python suite reads them too); this runs at
build time and uses the standard library only. One block per vector:

    vector NAME
    wire HEX                      the bytes on the line, delimiter included
    expect good | frame REASON | message REASON | readings REASON
    frame TYPE SEQ HEX|-          the checked frame (when the vector gives it)
    announce ID FIRMWARE CAPS OUTPUTS INTERVAL
    ack STATUS | result STATUS
    command set-interval S | command actuate OUTPUT VALUE | command reboot | command identify
    pack TOKEN...                 a READINGS pack as CBOR items: A<n> M<n> I<int> S<hex> F<hex8> T F0 (true/false)
    sample MV0 MV1 MV2 MV3 D2 TEMP AGE   the firmware's sample behind a READINGS vector ("node_sample")
    end
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def _cbor_tokens(data: bytes) -> list[str] | None:
    """The items of a CBOR byte string the node's writer can produce, or None for anything else."""
    out: list[str] = []
    pos = 0
    while pos < len(data):
        ib = data[pos]
        pos += 1
        major, info = ib >> 5, ib & 0x1F
        if major == 7:
            if ib == 0xF5:
                out.append("T")
            elif ib == 0xF4:
                out.append("F0")
            elif ib == 0xFA:
                out.append("F" + data[pos : pos + 4].hex())
                pos += 4
            else:
                return None  # half or double floats, null, undefined: not written by the node
            continue
        if info < 24:
            arg = info
        elif info in (24, 25, 26, 27):
            n = 1 << (info - 24)
            arg = int.from_bytes(data[pos : pos + n], "big")
            pos += n
        else:
            return None
        if major == 0:
            out.append(f"I{arg}")
        elif major == 1:
            out.append(f"I{-1 - arg}")
        elif major == 3:
            out.append("S" + data[pos : pos + arg].hex())
            pos += arg
        elif major == 4:
            out.append(f"A{arg}")
        elif major == 5:
            out.append(f"M{arg}")
        else:
            return None
    return out


def _block(name: str, v: dict[str, Any]) -> list[str]:
    lines = [f"vector {name}", "wire " + v["wire"].replace(" ", "")]
    error = v.get("error")
    lines.append("expect good" if error is None else f"expect {error['stage']} {error['reason']}")
    frame = v.get("frame")
    if frame is not None:
        payload = frame["payload"].replace(" ", "") or "-"
        lines.append(f"frame {frame['type']} {frame['seq']} {payload}")
    msg = v.get("message")
    if msg is not None:
        kind = msg["kind"]
        if kind == "Announce":
            lines.append(
                f"announce {msg['node_id']} {msg['firmware'] or '-'} {msg['capabilities']} {msg['outputs']} "
                f"{msg['interval_s']}"
            )
        elif kind == "Ack":
            lines.append(f"ack {msg['status']}")
        elif kind == "Result":
            lines.append(f"result {msg['status']}")
        elif kind == "SetInterval":
            lines.append(f"command set-interval {msg['seconds']}")
        elif kind == "Actuate":
            lines.append(f"command actuate {msg['output']} {msg['value']}")
        elif kind in ("Reboot", "Identify"):
            lines.append(f"command {kind.lower()}")
        elif kind == "Readings":
            tokens = _cbor_tokens(_hex(msg["pack"]))
            if tokens is not None:
                lines.append("pack " + " ".join(tokens))
    sample = v.get("node_sample")
    if sample is not None:  # the firmware's own READINGS builder must give this vector's bytes from this sample
        mv = " ".join(str(x) for x in sample["a_mv"])
        lines.append(f"sample {mv} {sample['d2']} {sample['temp_c']} {sample['age_s']}")
    lines.append("end")
    return lines


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else Path("tests/vectors/roostserial")
    paths = sorted(folder.glob("*.json"))
    if not paths:
        print(f"no test vectors in {folder}", file=sys.stderr)
        return 1
    for path in paths:
        print("\n".join(_block(path.stem, json.loads(path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
