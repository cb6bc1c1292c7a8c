"""Any bytes for any cluster give readings (or skips) or a ZclDecodeError, never another exception."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import zcl

CLUSTERS = st.sampled_from([*zcl.supported_clusters(), 0x0019, 0xFC00])
HEADERS = st.sampled_from([b"\x18\x01\x0a", b"\x18\x01\x01", b"\x19\x01\x00", b"\x08\x01\x0a", b"\x1c\x5f\x11\x01\x0a"])


def _check(cluster: int, data: bytes) -> None:
    try:
        frame = zcl.decode(cluster, data)
    except zcl.ZclDecodeError as exc:
        assert exc.problem
        return
    for m in frame.measurements:
        assert isinstance(m.value, bool) or (isinstance(m.value, float) and math.isfinite(m.value))
    assert all(s.reason for s in frame.skipped)


@settings(max_examples=1500, deadline=None)
@given(CLUSTERS, st.binary(max_size=64))
def test_any_bytes(cluster: int, data: bytes) -> None:
    _check(cluster, data)


@settings(max_examples=1500, deadline=None)
@given(CLUSTERS, HEADERS, st.binary(max_size=48))
def test_plausible_headers(cluster: int, header: bytes, body: bytes) -> None:
    _check(cluster, header + body)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(zcl.ATTRIBUTES)),
    st.one_of(st.integers(-(2**47), 2**48), st.text(max_size=4), st.none(), st.booleans()),
    st.dictionaries(st.integers(0, 0xFFFF), st.integers(0, 2**24), max_size=4),
)
def test_measure_any_value(key: tuple[int, int], raw: object, known: dict[int, int]) -> None:
    try:
        out = zcl.measure(key[0], key[1], raw, known)
    except zcl.SkipValue as exc:
        assert str(exc)
        return
    for m in out:
        assert isinstance(m.value, bool) or math.isfinite(float(m.value))
