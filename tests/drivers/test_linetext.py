"""The plain ``metric=value`` form of the smallest devices."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import linetext
from drivers.climate_emulator import ClimateSensor
from wire.errors import PayloadError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("temp=21.5", [("temp", 21.5)]),
        ("temp=21.5,hum=40\n", [("temp", 21.5), ("hum", 40.0)]),
        (" t = -3.5e2 , door=true,open=false", [("t", -350.0), ("door", True), ("open", False)]),
        ("a.b_c-d/e=.5", [("a.b_c-d/e", 0.5)]),
    ],
)
def test_parses(text: str, expected: list[tuple[str, float | bool]]) -> None:
    assert linetext.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("temp", "item 1 'temp' is not metric=value"),
        ("temp=", "is not metric=value"),
        ("=3", "is not metric=value"),
        ("temp=abc", "not a number"),
        ("temp=1,hum=nan", "item 2"),
        ("temp=inf", "not a number"),
        ("a:b=1", "metric"),
        ("temp=1e999", "finite"),
    ],
)
def test_refuses_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        linetext.parse(text)


def test_climate_emulator_is_realistic_and_reproducible() -> None:
    a, b = ClimateSensor("room-1", seed=7), ClimateSensor("room-1", seed=7)
    samples = [a.sample(1.8e9 + i) for i in range(200)]
    assert samples[0] == b.sample(1.8e9)
    temps = [s[0].value for s in samples]
    assert all(isinstance(t, float) and 15 < t < 27 for t in temps)
    assert len(set(temps)) > 20, "values should vary"
    assert {r.metric: r.unit for r in samples[0]} == {"temperature": "Cel", "humidity": "%RH", "pressure": "hPa"}
    text = a.as_text(1.8e9 + 500)
    assert [m for m, _ in linetext.parse(text)] == ["temperature", "humidity", "pressure"]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_gives_pairs_or_a_payload_error_never_another_exception(text: str) -> None:
    try:
        pairs = linetext.parse(text)
    except PayloadError as exc:
        assert str(exc)
    else:
        assert pairs
        for metric, value in pairs:
            assert metric and ":" not in metric
            assert isinstance(value, bool) or math.isfinite(value)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), st.floats(-1e9, 1e9)), min_size=1, max_size=8
    )
)
def test_well_formed_lines_round_trip(items: list[tuple[str, float]]) -> None:
    text = ",".join(f"{m}={v!r}" for m, v in items) + "\n"
    assert linetext.parse(text) == [(m, float(repr(v))) for m, v in items]
