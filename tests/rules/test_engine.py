"""The engine: dispatch, reload keeping state, isolation of failing rules, outputs, random input."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import AnnotationOut, Engine, Limits, Output, load_text
from rules.conditions import ThresholdStage
from tests.rules.helpers import T0, Rig, r, rule, series
from wire.reading import Reading

AVG = rule(
    'sensor = "s*"\nmetric = "t"',
    '[rule.window]\nkind = "tumbling"\nsize = "1m"\n[rule.aggregate]\nfn = "avg"\n'
    '[[rule.action]]\nkind = "derive"\nmetric = "t_avg"\n',
    name="avg",
)
HOT = rule(
    'sensor = "s*"\nmetric = "t"',
    '[rule.condition]\nkind = "threshold"\nabove = 50\n[[rule.action]]\nkind = "alert"\n',
    name="hot",
)


def test_dispatch_by_exact_glob_and_tags() -> None:
    text = (
        '[tags]\n"s1" = { room = "kitchen" }\n"s[2-3]" = { room = "hall" }\n'
        + rule('tags = { room = "hall" }', '[[rule.action]]\nkind = "derive"\nmetric = "seen"\n', name="hall")
        + rule('sensor = "s1"\nmetric = "t"', '[[rule.action]]\nkind = "derive"\nmetric = "seen"\n', name="exact")
    )
    rig = Rig(text, tags={"s9": {"room": "hall"}})
    rig.feed(
        [r("s1", "t", 1.0, 0), r("s2", "t", 1.0, 1), r("s3", "x", 1.0, 2), r("s9", "t", 1.0, 3), r("s4", "t", 1.0, 4)]
    )
    assert [(d.sensor, o) for d, o in zip(rig.derived(), [x.rule for x in rig.outputs], strict=True)] == [
        ("s1", "exact"), ("s2", "hall"), ("s3", "hall"), ("s9", "hall")
    ]  # fmt: skip
    assert rig.engine.unrouted == 1
    rig.engine.set_tags({})
    rig.feed([r("s9", "t", 1.0, 5)])
    assert rig.engine.unrouted == 2


def test_reload_keeps_unchanged_rules_state_and_replaces_changed_ones() -> None:
    rig = Rig(AVG + HOT)
    rig.feed([r("s1", "t", 10.0, 0), r("s1", "t", 60.0, 10)])  # half a window for avg; hot raised
    assert rig.alerts() and rig.engine.active_alerts() == ["hot/s1"]
    changed_hot = HOT.replace("above = 50", "above = 70")
    report = rig.engine.reload(load_text("\n# a comment moves the lines\n" + AVG + changed_hot, name="v2.toml"))
    assert (report.kept, report.changed, report.added, report.removed) == (("avg",), ("hot",), (), ())
    # the changed rule's open alert is cleared (it would raise again if its new condition held)
    assert rig.alerts()[-1][0] == "cleared" and rig.engine.active_alerts() == []
    rig.feed([r("s1", "t", 30.0, 20)])
    rig.wait_until(T0 + 60)
    # the kept rule's window still holds the readings from before the reload: (10 + 60 + 30) / 3
    assert [d.value for d in rig.derived()] == [pytest.approx(100 / 3)]
    report = rig.engine.reload(load_text(AVG.replace('name = "avg"', 'name = "mean"')))
    assert (report.added, report.removed) == (("mean",), ("avg", "hot"))
    assert rig.engine.rule_names() == ["mean"]


def test_a_rule_that_raises_at_run_time_is_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ThresholdStage.process

    def broken(self: ThresholdStage, items: list[Reading], clock: float) -> list[object]:
        if any(x.value == 666 for x in items):
            raise ZeroDivisionError("the rule's own bug")
        return original(self, items, clock)  # type: ignore[return-value]

    monkeypatch.setattr(ThresholdStage, "process", broken)  # before compiling: pipelines bind their stages
    rig = Rig(AVG + HOT, limits=Limits(disable_after=3))
    rig.feed([r("s1", "t", 666.0, 1), r("s1", "t", 55.0, 2)])
    stats = rig.engine.stats()
    assert stats["hot"].errors == 1 and "ZeroDivisionError" in (stats["hot"].last_error or "")
    assert stats["avg"].errors == 0 and stats["avg"].events_in == 2
    notes = [o.event for o in rig.outputs if isinstance(o, AnnotationOut)]
    assert len(notes) == 1 and notes[0].key == "hot/error" and "the rule's own bug" in notes[0].message
    assert rig.alerts() == [("raised", "hot/s1", T0 + 2)]  # the next batch went through
    rig.feed([r("s1", "t", 666.0, t) for t in (3, 4)])  # third error: disabled, its alert cleared
    stats = rig.engine.stats()
    assert stats["hot"].disabled and rig.engine.rule_names() == ["avg"]
    assert rig.alerts()[-1][:2] == ("cleared", "hot/s1")
    rig.wait_until(T0 + 60)
    assert len(rig.derived()) == 1  # the other rule went on all along


def test_outputs_observable_and_sink_see_the_same_batches() -> None:
    seen: list[list[Output]] = []
    sunk: list[Output] = []
    engine = Engine(load_text(HOT), sink=sunk.extend)
    engine.outputs.subscribe(seen.append)
    engine.push(series("s1", "t", [60, 10, 70], step=1))
    engine.push([])
    assert [o for batch in seen for o in batch] == sunk and len(sunk) == 3


def test_without_a_scheduler_time_passes_with_readings_and_advance() -> None:
    engine = Engine(load_text(AVG))
    outs: list[Output] = []
    engine.outputs.subscribe(outs.extend)
    engine.push([r("s1", "t", 1.0, 0)])
    assert outs == [] and engine.clock == T0
    engine.advance(T0 + 60)
    assert len(outs) == 1


def test_max_future_keeps_a_wrong_clock_from_closing_windows() -> None:
    now = [T0]
    engine = Engine(load_text(AVG), now=lambda: now[0], max_future=5)
    outs: list[Output] = []
    engine.outputs.subscribe(outs.extend)
    engine.push([r("s1", "t", 1.0, 0), r("s2", "t", 1.0, 10 * 365 * 86400)])
    assert engine.clock == T0 + 5 and outs == []


_names = st.sampled_from(["s1", "s2", "f1", "room-1", "meter-1"])
_metrics = st.sampled_from(["t", "power", "door", "humidity"])
_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12), st.booleans(),
    st.sampled_from(["open", "closed", ""]), st.integers(-5, 5).map(float),
)  # fmt: skip
_readings = st.lists(
    st.tuples(_names, _metrics, _values, st.floats(min_value=-100, max_value=5000, allow_nan=False)), max_size=60
)

MIXED = "\n".join(
    [
        AVG,
        HOT,
        rule('metric = "t"', '[rule.window]\nkind = "sliding"\nsize = "1m"\nevery = "10s"\nallowed_lateness = "5s"\n'
             '[rule.aggregate]\nfn = "percentile"\nq = 90\n[rule.condition]\nkind = "change"\nby = 3\nwithin = "1m"\n'
             '[[rule.action]]\nkind = "alert"\n[[rule.action]]\nkind = "derive"\nmetric = "p90"\nwhen = "sample"\n',
             name="p90"),
        rule('sensor = "*"', '[rule.window]\nkind = "session"\ngap = "30s"\n[rule.aggregate]\nfn = "rate"\n'
             '[[rule.action]]\nkind = "derive"\nmetric = "rate"\n', name="sess"),
        rule('metric = "power"', '[rule.window]\nkind = "count"\ncount = 3\nstep = 2\n[rule.aggregate]\nfn = "last"\n'
             '[rule.condition]\nkind = "threshold"\nbelow = 0\nclear_above = 1\nfor = "10s"\n'
             '[[rule.action]]\nkind = "command"\ntarget = "plug-{sensor}"\naction = "off"\n', name="cnt"),
        rule('sensor = ["s1", "s2"]\nvalue = true', '[rule.condition]\nkind = "absence"\nfor = "20s"\n'
             '[[rule.action]]\nkind = "annotate"\nmessage = "{sensor} {value:.2f}"\n', name="gone"),
        rule('sensor = "*"', '[rule.condition]\nkind = "sequence"\nwithin = "30s"\n'
             'first = { metric = "door", equals = true }\nthen = { metric = "t", above = 0 }\n'
             '[[rule.action]]\nkind = "alert"\n', name="seq", extra='group_by = "all"'),
        rule('metric = "humidity"', '[rule.shape]\nkind = "deadband"\npercent = 5\nmax_interval = "1m"\n', name="db"),
        rule('metric = "power"', '[rule.shape]\nkind = "downsample"\nevery = "30s"\nstats = ["max", "count"]\n',
             name="ds"),
    ]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(_readings, max_size=6), gaps=st.lists(st.floats(0, 200), min_size=6, max_size=6))
def test_random_readings_never_raise_out_of_the_engine(
    batches: list[list[tuple[str, str, object, float]]], gaps: list[float]
) -> None:
    rig = Rig(MIXED, limits=Limits(max_subjects=3, max_window_items=4, max_sessions=2, max_change_points=3))
    for batch, gap in zip(batches, gaps, strict=False):
        readings = [Reading(s, m, v, T0 + t, "u") for s, m, v, t in batch]  # type: ignore[arg-type]
        rig.engine.push(readings)
        rig.engine.shape(readings)
        rig.scheduler.advance_to(max(rig.scheduler.clock, rig.engine.clock) + gap)
    rig.engine.close()
    for name, s in rig.engine.stats().items():
        assert s.errors == 0, (name, s.last_error)
    for o in rig.outputs:
        if isinstance(o, AnnotationOut):
            assert math.isfinite(o.event.ts)
