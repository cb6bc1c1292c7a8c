"""drivers.zcl against literal frames (tests/vectors/zcl) and zigpy's own attribute definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivers import zcl

VECTORS = sorted((Path(__file__).parent.parent / "vectors" / "zcl").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_vectors_exist() -> None:
    assert len(VECTORS) >= 20


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path: Path) -> None:
    doc = _load(path)
    cluster = int(doc["cluster"], 16)
    known = {int(k, 16): v for k, v in doc.get("known", {}).items()}
    data = bytes.fromhex(doc["hex"])
    if "error" in doc:
        with pytest.raises(zcl.ZclDecodeError) as err:
            zcl.decode(cluster, data, known=known)
        assert doc["error"] in str(err.value)
        return
    frame = zcl.decode(cluster, data, known=known)
    got = [{"metric": m.metric, "value": m.value, "unit": m.unit} for m in frame.measurements]
    assert got == doc["readings"]
    assert [s.attribute for s in frame.skipped] == doc["skipped"]
    assert all(s.reason for s in frame.skipped)
    assert zcl.decode_frame(cluster, data, known=known) == frame.measurements
    for m in frame.measurements:  # booleans stay booleans, numbers are floats
        assert isinstance(m.value, bool | float)


def test_table_matches_zigpy_attribute_definitions() -> None:
    """Every (cluster, attribute) of the table is the attribute zigpy 2.4 knows by that name."""
    from zigpy.zcl import Cluster

    for (cluster_id, attr_id), spec in zcl.ATTRIBUTES.items():
        cls = Cluster._registry[cluster_id]
        attr = getattr(cls.AttributeDefs, spec.name)
        assert attr.id == attr_id, (cls.__name__, spec.name)
    for cluster_id, attrs in zcl.CONTEXT_ATTRIBUTES.items():
        cls = Cluster._registry[cluster_id]
        ids = {a.id for a in cls.attributes.values()}
        assert attrs <= ids


def test_invalid_reason_names_the_sentinel() -> None:
    frame = zcl.decode(zcl.HUMIDITY, bytes.fromhex("18010a000021ffff"))
    assert frame.measurements == []
    assert "invalid value" in frame.skipped[0].reason and "0xFFFF" in frame.skipped[0].reason


def test_metering_in_cubic_metres_is_not_energy() -> None:
    frame = zcl.decode(zcl.METERING, bytes.fromhex("18010a00002587d612000000"), known={zcl.METERING_UNIT_ATTR: 1})
    assert frame.measurements == [] and "not kWh" in frame.skipped[0].reason


def test_wrong_data_type_is_skipped() -> None:
    # temperature sent as a character string: skipped, not a crash
    frame = zcl.decode(zcl.TEMPERATURE, bytes.fromhex("18010a000042023231"))
    assert frame.measurements == [] and "unexpected data type" in frame.skipped[0].reason


def test_measure_shared_with_the_adapter() -> None:
    assert zcl.measure(zcl.TEMPERATURE, 0, 2153) == [zcl.Measurement("temperature", 21.53, "Cel")]
    with pytest.raises(zcl.SkipValue):
        zcl.measure(zcl.TEMPERATURE, 0x0001, 100)  # min_measured_value: not mapped


def test_roost_decode_zcl_prints_json_and_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    from roost.cli import main

    assert main(["decode", "zcl", "--cluster", "0x0402", "18 01 0a 00 00 29 69 08"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["readings"] == [{"metric": "temperature", "value": 21.53, "unit": "Cel"}]
    assert main(["decode", "zcl", "--cluster", "0x0702", "18010a00002587d612000000", "--known", "0x0302=1000"]) == 0
    assert json.loads(capsys.readouterr().out)["readings"][0]["value"] == 1234.567
    assert main(["decode", "zcl", "--cluster", "0x0402", "1801"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "truncated" in captured.err
    assert main(["decode", "zcl", "--cluster", "0x0402", "18010a0000296908", "--known", "oops"]) == 1
    assert "ATTR=VALUE" in capsys.readouterr().err
