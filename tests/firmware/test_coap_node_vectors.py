"""The CoAP node's SenML packs, both ends: tests/vectors/coap-node/packs.txt holds the exact bytes.

``make -C firmware/coap-node test`` checks that the node's C encoder writes exactly these bytes; here the
gateway's decoder (wire/senml.py) reads the same bytes back to the readings the vector names, and the
bytes' CBOR structure is checked label by label (RFC 8428 table 4), so neither end can drift.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import pytest

from wire import senml

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "coap-node" / "packs.txt"
FIRMWARE = ROOT / "firmware" / "coap-node"


@dataclass
class Vector:
    name: str
    node: str = ""
    time: float | None = None
    now: float = 0.0
    readings: list[tuple[str, str | None, float]] = field(default_factory=list)
    payload: bytes = b""


def load() -> list[Vector]:
    """The vectors of packs.txt (the format is described at its top)."""
    vectors: list[Vector] = []
    current: Vector | None = None
    for lineno, raw in enumerate(VECTORS.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "vector":
            current = Vector(rest)
            continue
        assert current is not None, f"line {lineno}: {word} before any 'vector'"
        if word == "node":
            current.node = rest
        elif word == "time":
            current.time = None if rest == "-" else float(rest)
        elif word == "now":
            current.now = float(rest)
        elif word == "reading":
            name, unit, value = rest.split(" ")
            current.readings.append((name, None if unit == "-" else unit, float(value)))
        elif word == "hex":
            current.payload = bytes.fromhex(rest)
            vectors.append(current)
            current = None
        else:
            raise AssertionError(f"line {lineno}: unknown word {word!r}")
    return vectors


VECTOR_LIST = load()


def _ts(v: Vector) -> float:
    if v.time is None:
        return v.now
    return v.now + v.time if v.time < 2**28 else v.time


def test_the_vector_file_is_there_and_complete() -> None:
    assert len(VECTOR_LIST) >= 5
    assert len({v.name for v in VECTOR_LIST}) == len(VECTOR_LIST)
    for v in VECTOR_LIST:
        assert v.node and v.readings and v.payload and v.now > 2**28, v.name
    # Every kind of time the node sends is covered: none, absolute, relative (a node without a clock).
    kinds = {None if v.time is None else v.time >= 2**28 for v in VECTOR_LIST}
    assert kinds == {None, True, False}


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=lambda v: v.name)
def test_the_gateway_decodes_the_nodes_bytes_to_its_readings(vector: Vector) -> None:
    assert senml.sniff(vector.payload) == "cbor"
    got = senml.decode(vector.payload, now=vector.now)
    assert [(r.sensor, r.metric, r.unit, r.value, r.ts_us) for r in got] == [
        (vector.node, name, unit, value, round(_ts(vector) * 1_000_000)) for name, unit, value in vector.readings
    ]
    assert all(not isinstance(r.value, bool) for r in got)


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=lambda v: v.name)
def test_the_pack_is_senml_cbor_with_integer_labels(vector: Vector) -> None:
    """bn (-2) and bt (-3) in the first record only, then n (0), u (1) when there is one, v (2)."""
    records: list[dict[Any, Any]] = cbor2.loads(vector.payload)
    expected: list[dict[int, Any]] = []
    for i, (name, unit, value) in enumerate(vector.readings):
        rec: dict[int, Any] = {}
        if i == 0:
            rec[-2] = vector.node + ":"
            if vector.time is not None:
                rec[-3] = vector.time
        rec[0] = name
        if unit is not None:
            rec[1] = unit
        rec[2] = value
        expected.append(rec)
    assert records == expected
    assert [list(r) for r in records] == [list(r) for r in expected]  # key order too
    # Whole numbers travel as CBOR integers, not floats (the smallest form a decoder can read).
    for rec in records:
        value = rec[2]
        assert isinstance(value, int) == (float(value).is_integer()), rec


def test_the_c_encoder_writes_these_bytes() -> None:
    """`make test` in firmware/coap-node: its unit test reads packs.txt and compares byte for byte."""
    if shutil.which("cc") is None or shutil.which("make") is None:
        pytest.skip("no C compiler or make on this machine: the node's encoder test cannot be built")
    out = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), "test", f"VECTORS={VECTORS}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(VECTOR_LIST)} vectors from" in out.stdout and "all passed" in out.stdout
