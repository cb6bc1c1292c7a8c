"""BLE decoders against tests/vectors/ble/*.json: the specs' worked examples first, then Roost's own.

A vector holds ``raw`` (the advertising data as hex: AD structures), optionally ``mac``, ``key`` (a
bind key as hex), ``rssi`` and ``name`` (the local name the AD structures carry), and either
``result`` (the whole BleResult: format, sensor, every measurement in order, packet id, encrypted,
counter; ``null`` for a foreign advertisement no decoder recognises) or ``error`` (the
BleDecodeError subclass and a substring of its message). A file with ``cases`` holds many vectors
of one format that share ``mac``: each case's ``raw`` and its expected ``measurements``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from drivers.ble import errors
from drivers.ble.advertisement import parse_ad_structures
from drivers.ble.decode import decode
from drivers.ble.result import BleResult

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "ble"
FILES = sorted(VECTORS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _cases() -> list[Any]:
    out = []
    for path in FILES:
        doc = _load(path)
        if "cases" in doc:
            for case in doc["cases"]:
                vector = {
                    "raw": case["raw"],
                    "mac": doc["mac"],
                    "result": {
                        "format": doc["format"],
                        "sensor": doc["mac"],
                        "measurements": case["measurements"],
                        "packet_id": case.get("packet_id"),
                        "encrypted": False,
                        "counter": None,
                    },
                }
                out.append(pytest.param(vector, id=f"{path.stem}[{case['example']}]"))
        else:
            out.append(pytest.param(doc, id=path.stem))
    return out


def _as_json(result: BleResult) -> dict[str, Any]:
    return {
        "format": result.format,
        "sensor": result.sensor,
        "measurements": [{"metric": m.metric, "value": m.value, "unit": m.unit} for m in result.measurements],
        "packet_id": result.packet_id,
        "encrypted": result.encrypted,
        "counter": result.counter,
    }


def _same_value(got: object, want: object) -> bool:
    if isinstance(got, bool) or isinstance(want, bool):
        return got is want
    if isinstance(got, int | float) and isinstance(want, int | float):
        return math.isclose(got, want, rel_tol=0, abs_tol=1e-9)
    return got == want


def _run(vector: dict[str, Any]) -> BleResult | None:
    adv = parse_ad_structures(bytes.fromhex(vector["raw"]), address=vector.get("mac"), rssi=vector.get("rssi"))
    if "name" in vector:
        assert adv.local_name == vector["name"]
    key = vector.get("key")
    return decode(adv, key=None if key is None else bytes.fromhex(key))


def test_there_are_vectors_of_every_format() -> None:
    formats = set()
    for path in FILES:
        doc = _load(path)
        if doc.get("format"):
            formats.add(doc["format"])
        result = doc.get("result")
        if result:
            formats.add(result["format"])
    assert formats == {
        "bthome",
        "bthome-encrypted",
        "ruuvi-rawv2",
        "pvvx",
        "atc1441",
        "ibeacon",
        "eddystone-uid",
        "eddystone-url",
        "eddystone-tlm",
    }


@pytest.mark.parametrize("vector", _cases())
def test_vector(vector: dict[str, Any]) -> None:
    if "error" in vector:
        kind: type[errors.BleDecodeError] = getattr(errors, vector["error"]["type"])
        with pytest.raises(kind) as caught:
            _run(vector)
        assert vector["error"]["message"] in str(caught.value)
        return
    result = _run(vector)
    want = vector["result"]
    if want is None:
        assert result is None
        return
    assert result is not None
    got = _as_json(result)
    assert {k: v for k, v in got.items() if k != "measurements"} == {
        k: v for k, v in want.items() if k != "measurements"
    }
    assert [(m["metric"], m["unit"]) for m in got["measurements"]] == [
        (m["metric"], m["unit"]) for m in want["measurements"]
    ]
    for g, w in zip(got["measurements"], want["measurements"], strict=True):
        assert _same_value(g["value"], w["value"]), (g, w)
