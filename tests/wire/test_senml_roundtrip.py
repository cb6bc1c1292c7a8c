"""SenML round trip (encode -> decode gives the same readings) and fuzzing (decode refuses only with PayloadError)."""

from __future__ import annotations

import json
import math
import random
import zlib
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wire import senml
from wire.errors import PayloadError
from wire.reading import Reading

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
sensor_ids = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_ALNUM),
    st.text(alphabet=_ALNUM + "-:./_", max_size=30),
)
metrics = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_ALNUM),
    st.text(alphabet=_ALNUM + "-./_", max_size=20),
)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=20),
)
units = st.one_of(st.none(), st.sampled_from(["Cel", "%RH", "V", "A", "W", "kWh", "lx", "/"]), st.text(min_size=1))
# Microsecond timestamps between 2**28 (the smallest absolute SenML time) and 4e9 (year 2096).
timestamps_us = st.integers(min_value=2**28 * 1_000_000, max_value=4_000_000_000 * 1_000_000)
readings = st.builds(
    lambda s, m, v, u, ts_us: Reading(sensor=s, metric=m, value=v, ts=ts_us / 1_000_000, unit=u),
    sensor_ids,
    metrics,
    values,
    units,
    timestamps_us,
)


def _key(r: Reading) -> tuple[Any, ...]:
    kind = "bool" if isinstance(r.value, bool) else "str" if isinstance(r.value, str) else "number"
    return (r.sensor, r.metric, kind, r.value, r.unit, r.ts_us)


@FUZZ
@given(
    batch=st.lists(readings, min_size=1, max_size=30),
    encoding=st.sampled_from(["cbor", "json"]),
    compress=st.booleans(),
)
@example(  # a sensor id with colons, a unit going back to None, times going backwards
    batch=[
        Reading("A4:C1:38:00:11:22", "temp", 21.5, 1700000000.25, "Cel"),
        Reading("A4:C1:38:00:11:22", "battery", 97.0, 1700000000.25, None),
        Reading("00:12:4b:00:1c:a1:b2:c3", "occupancy", True, 1699999999.000001, None),
        Reading("00:12:4b:00:1c:a1:b2:c3", "mode", "eco", 4_000_000_000.999999, "Cel"),
    ],
    encoding="cbor",
    compress=True,
)
@example(  # a relative time of 72 years: bt + t in doubles was a microsecond off before the encoder re-based
    batch=[
        Reading("A", "A", 0.0, 1397725427.250522, None),
        Reading("A", "A", 0.0, 3653849169.520742, None),
    ],
    encoding="cbor",
    compress=False,
)
def test_encode_decode_round_trip(batch: list[Reading], encoding: senml.Encoding, compress: bool) -> None:
    payload = senml.encode(batch, encoding=encoding, compress=compress)
    assert senml.sniff(payload) == ("zlib" if compress else encoding)
    decoded = senml.decode(payload, now=0.0)
    assert [_key(r) for r in decoded] == [_key(r) for r in batch]


@FUZZ
@given(st.binary(max_size=300))
@example(b"")
@example(b"\x78")
@example(b"[" * 3000)
@example(b"\x81" * 3000)
@example(b'[{"n":"a:b","v":' + b"9" * 400 + b"}]")
@example(zlib.compress(b'[{"n":"a:b","v":1}]') + b"\0")
@example(bytes.fromhex("9bffffffffffffffff"))
def test_decode_arbitrary_bytes_only_raises_payload_error(payload: bytes) -> None:
    _decode_or_payload_error(payload)


@FUZZ
@given(
    st.sampled_from([b"\x80", b"\x81", b"\x82", b"\x9f", b"[", b"[{", b'[{"n":', b"\x81\xa1", b"\x81\xa2\x00"]),
    st.binary(max_size=200),
)
def test_decode_bytes_that_look_like_a_pack_only_raises_payload_error(prefix: bytes, rest: bytes) -> None:
    _decode_or_payload_error(prefix + rest)
    _decode_or_payload_error(zlib.compress(prefix + rest))


# Any JSON/CBOR data shaped roughly like a pack: records with SenML (and other) labels and values of any type.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**64, 1e308, -1e308]),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["a:b", "s1:", "dev:temp", ":", "x", "A4:C1:38:00:11:22:t"]),
)
_anything = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_labels = st.sampled_from(
    ["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut", "foo_", "x"]
)
_records = st.dictionaries(_labels, _scalars | _anything, max_size=6)
_packs = st.lists(_records | _anything, max_size=5) | _anything


@FUZZ
@given(_packs, st.sampled_from(["cbor", "cbor-int-labels", "json"]), st.booleans())
@example([{"bn": "a:", "bv": 1e308}, {"n": "b", "v": 1e308}], "json", False)
@example([{"bn": "a:", "bt": 1e308}, {"n": "b", "v": 1, "t": 1e308}], "cbor-int-labels", False)
@example([{"n": "a:b", "v": 10**400}], "cbor", True)
def test_decode_structured_garbage_only_raises_payload_error(pack: Any, encoding: str, compress: bool) -> None:
    if encoding == "json":
        payload = json.dumps(pack).encode()  # NaN and Infinity too, as Python writes them
    elif encoding == "cbor-int-labels" and isinstance(pack, list):
        payload = cbor2.dumps(
            [{senml.LABEL_CODES.get(k, k): v for k, v in rec.items()} if isinstance(rec, dict) else rec for rec in pack]
        )
    else:
        payload = cbor2.dumps(pack)
    if compress:
        payload = zlib.compress(payload)
    readings = _decode_or_payload_error(payload)
    for r in readings or []:
        assert isinstance(r, Reading)
        assert isinstance(r.ts, float) and math.isfinite(r.ts)
        assert not isinstance(r.value, float) or math.isfinite(r.value)


def _decode_or_payload_error(payload: bytes) -> list[Reading] | None:
    try:
        readings = senml.decode(payload, now=1_700_000_000.0, max_bytes=4096, max_records=50)
    except PayloadError as exc:
        assert exc.reason
        return None
    assert readings
    assert all(isinstance(r, Reading) for r in readings)
    return readings


@pytest.mark.parametrize("encoding", ["cbor", "json"])
def test_empty_batch_encodes_to_an_empty_pack_that_decode_refuses(encoding: senml.Encoding) -> None:
    payload = senml.encode([], encoding=encoding)
    assert senml.load_records(payload) == []
    with pytest.raises(PayloadError, match="no records"):
        senml.decode(payload)


def test_compressed_cbor_of_realistic_data_is_under_12_bytes_per_reading() -> None:
    """The product target: 1000 readings of 10 sensors (2-decimal temperatures, one per second each)."""
    rng = random.Random(8428)
    t0 = 1_700_000_000
    sensors = [f"A4:C1:38:00:11:{i:02X}" for i in range(10)]
    temps = [20.0 + i for i in range(10)]
    batch = []
    for second in range(100):
        for i, sensor in enumerate(sensors):
            temps[i] = round(temps[i] + rng.choice([-0.01, 0.0, 0.01, 0.02, -0.02]), 2)
            batch.append(Reading(sensor, "temperature", temps[i], t0 + second + i * 0.01, "Cel"))
    assert len(batch) == 1000
    payload = senml.encode(batch, encoding="cbor", compress=True)
    assert len(payload) / len(batch) < 12
    assert [_key(r) for r in senml.decode(payload)] == [_key(r) for r in batch]


def test_encoder_starts_a_new_base_time_rather_than_write_a_long_relative_time() -> None:
    batch = [
        Reading("s1", "a", 1.0, 1_700_000_000.5),
        Reading("s1", "a", 2.0, 1_700_000_000.5 + 2**20),  # exactly the longest relative time
        Reading("s1", "a", 3.0, 1_700_000_000.5 + 2**20 + 0.000001),  # relative to the first bt: too long
        Reading("s1", "a", 4.0, 1_700_000_000.5 + 2**20 - 1),
    ]
    assert senml.to_records(batch) == [
        {"bn": "s1:", "bt": 1_700_000_000.5, "n": "a", "v": 1},
        {"t": 2**20, "n": "a", "v": 2},
        {"bt": 1_701_048_576.500001, "n": "a", "v": 3},
        {"t": -1.000001, "n": "a", "v": 4},
    ]
    assert [r.ts_us for r in senml.decode(senml.encode(batch))] == [r.ts_us for r in batch]
