"""SenML vectors: literal payloads in tests/vectors/senml/*.json with the whole expected result.

Each vector holds a payload (``payload_text`` for UTF-8 text, ``payload_hex`` for bytes), the ``now``
that relative times resolve against, optional ``max_bytes``/``max_records``, and either
``readings`` (exactly what ``wire.senml.decode`` returns) or ``error`` (a substring of the
PayloadError's message, with ``error_type`` when it is a subclass). Optional fields:
``sniff`` (what ``sniff`` says), ``resolved`` (the spec's resolved records, RFC 8428 section 4.6),
``encode`` (``wire.senml.encode`` of the readings gives these very bytes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wire import errors, senml
from wire.errors import PayloadError
from wire.reading import Reading

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "senml"
FILES = sorted(VECTORS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


def _payload(vector: dict[str, Any]) -> bytes:
    if "payload_text" in vector:
        return str(vector["payload_text"]).encode("utf-8")
    return bytes.fromhex(vector["payload_hex"])


def _decode(vector: dict[str, Any]) -> list[Reading]:
    limits = {k: vector[k] for k in ("max_bytes", "max_records") if k in vector}
    return senml.decode(_payload(vector), now=vector["now"], **limits)


def _comparable(value: object) -> tuple[str, object]:
    # bool is an int to Python (True == 1.0): compare the kind too; numbers as floats.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    return (type(value).__name__, value)


def _as_rows(readings: list[Reading]) -> list[dict[str, object]]:
    return [
        {"sensor": r.sensor, "metric": r.metric, "value": _comparable(r.value), "unit": r.unit, "ts_us": r.ts_us}
        for r in readings
    ]


def _expected_rows(expected: list[dict[str, Any]]) -> list[dict[str, object]]:
    return [
        {
            "sensor": e["sensor"],
            "metric": e["metric"],
            "value": _comparable(e["value"]),
            "unit": e["unit"],
            "ts_us": round(e["ts"] * 1_000_000),
        }
        for e in expected
    ]


def _expected_readings(expected: list[dict[str, Any]]) -> list[Reading]:
    return [Reading(e["sensor"], e["metric"], e["value"], e["ts"], e["unit"]) for e in expected]


def test_vector_files_are_there_and_well_formed() -> None:
    names = {p.stem for p in FILES}
    assert {
        "rfc8428-5.1.1-single-datapoint",
        "rfc8428-5.1.2-multiple-datapoints",
        "rfc8428-5.1.3-multiple-measurements",
        "rfc8428-6-cbor-multiple-datapoints",
    } <= names
    for path in FILES:
        vector = _load(path)
        assert vector["description"], path.name
        assert ("payload_text" in vector) != ("payload_hex" in vector), path.name
        assert ("readings" in vector) != ("error" in vector), path.name
        assert isinstance(vector["now"], float), path.name
        if "readings" in vector:
            assert vector["readings"], path.name
            for row in vector["readings"]:
                assert set(row) == {"sensor", "metric", "value", "unit", "ts"}, path.name


@pytest.mark.parametrize("path", [p for p in FILES if "readings" in _load(p)], ids=lambda p: p.stem)
def test_decodes_to_expected_readings(path: Path) -> None:
    vector = _load(path)
    got = _decode(vector)
    assert _as_rows(got) == _expected_rows(vector["readings"])
    for r in got:
        assert isinstance(r, Reading)
        assert r.unit is None or r.unit  # an empty unit is reported as None


@pytest.mark.parametrize("path", [p for p in FILES if "error" in _load(p)], ids=lambda p: p.stem)
def test_malformed_or_foreign_input_is_refused(path: Path) -> None:
    vector = _load(path)
    error_type = getattr(errors, vector.get("error_type", "PayloadError"))
    with pytest.raises(PayloadError) as caught:
        _decode(vector)
    assert type(caught.value) is error_type
    assert vector["error"] in str(caught.value)
    assert caught.value.reason == str(caught.value)


@pytest.mark.parametrize("path", [p for p in FILES if "sniff" in _load(p)], ids=lambda p: p.stem)
def test_sniff_tells_the_encoding_by_the_first_byte(path: Path) -> None:
    vector = _load(path)
    assert senml.sniff(_payload(vector)) == vector["sniff"]


@pytest.mark.parametrize("path", [p for p in FILES if "resolved" in _load(p)], ids=lambda p: p.stem)
def test_readings_match_the_specs_resolved_records(path: Path) -> None:
    vector = _load(path)
    got = _decode(vector)
    resolved = vector["resolved"]
    assert [(r.name, r.unit, r.value, r.ts_us) for r in got] == [
        (rec["n"], rec["u"], rec["v"], round(rec["t"] * 1_000_000)) for rec in resolved
    ]
    # The resolved form is itself a valid pack (absolute times) and decodes to the same readings.
    again = senml.decode(json.dumps(resolved).encode(), now=0.0)
    assert _as_rows(again) == _as_rows(got)


@pytest.mark.parametrize("path", [p for p in FILES if "encode" in _load(p)], ids=lambda p: p.stem)
def test_encoder_writes_exactly_these_bytes(path: Path) -> None:
    vector = _load(path)
    options = vector["encode"]
    encoded = senml.encode(_expected_readings(vector["readings"]), **options)
    assert encoded == _payload(vector)


def test_rfc_cbor_example_equals_the_json_example() -> None:
    """Section 6's CBOR bytes carry the same records as section 5.1.2's JSON, label for label."""
    by_name = {p.stem: _load(p) for p in FILES}
    cbor_vector = by_name["rfc8428-6-cbor-multiple-datapoints"]
    json_vector = by_name["rfc8428-5.1.2-multiple-datapoints"]
    assert senml.load_records(_payload(cbor_vector)) == senml.load_records(_payload(json_vector))
    assert len(_payload(cbor_vector)) == 78


def test_rfc_cbor_labels_are_table_4() -> None:
    assert senml.CBOR_LABELS == {
        -1: "bver",
        -2: "bn",
        -3: "bt",
        -4: "bu",
        -5: "bv",
        -6: "bs",
        0: "n",
        1: "u",
        2: "v",
        3: "vs",
        4: "vb",
        5: "s",
        6: "t",
        7: "ut",
        8: "vd",
    }
    assert all(senml.LABEL_CODES[label] == code for code, label in senml.CBOR_LABELS.items())
    assert (senml.content_format("json"), senml.content_format("cbor")) == (110, 112)


def test_relative_times_default_to_the_clock() -> None:
    payload = b'[{"n":"s1:a","v":1,"t":-2}]'
    import time

    before = time.time()
    (reading,) = senml.decode(payload)
    after = time.time()
    assert before - 2 - 1e-6 <= reading.ts <= after - 2 + 1e-6
