"""Windows and aggregates in virtual time (reactivex TestScheduler): tumbling, sliding, count, session; lateness."""

from __future__ import annotations

import pytest

from rules.aggregates import percentile, rate
from tests.rules.helpers import T0, Rig, r, rule, series

DERIVE = '[[rule.action]]\nkind = "derive"\nmetric = "out"\n'


def window_rule(window: str, fn: str = 'fn = "avg"', select: str = 'sensor = "s1"\nmetric = "t"') -> str:
    return rule(select, f"[rule.window]\n{window}\n[rule.aggregate]\n{fn}\n{DERIVE}")


def test_tumbling_closes_by_event_time_and_by_the_clock_alone() -> None:
    rig = Rig(window_rule('kind = "tumbling"\nsize = "10s"'))
    rig.feed(series("s1", "t", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], step=1.0))  # ts 0..11
    # the window [0, 10) closed when a reading at ts 10 came
    assert [(d.value, d.ts - T0, d.metric, d.sensor) for d in rig.derived()] == [(5.5, 10.0, "out", "s1")]
    rig.wait_until(T0 + 19.9)
    assert len(rig.derived()) == 1
    rig.wait_until(T0 + 20.0)  # no new reading: the scheduler's timer closes [10, 20)
    assert [(d.value, d.ts - T0) for d in rig.derived()][1] == (11.5, 20.0)


def test_late_readings_within_allowed_lateness_count_and_beyond_are_dropped() -> None:
    rig = Rig(window_rule('kind = "tumbling"\nsize = "10s"\nallowed_lateness = "5s"'))
    rig.feed([r("s1", "t", 1.0, 1), r("s1", "t", 3.0, 9), r("s1", "t", 100.0, 12)])
    assert rig.derived() == []  # [0, 10) waits until 15
    rig.feed([r("s1", "t", 5.0, 5)])  # late by 7 s, within the lateness: counts
    rig.wait_until(T0 + 15)
    assert [d.value for d in rig.derived()] == [3.0]
    rig.feed([r("s1", "t", 1000.0, 2)])  # its window has closed: dropped and counted
    rig.wait_until(T0 + 25)
    assert [d.value for d in rig.derived()] == [3.0, 100.0]
    assert rig.engine.stats()["r1"].late == 1


def test_sliding_windows_overlap() -> None:
    rig = Rig(window_rule('kind = "sliding"\nsize = "4s"\nevery = "2s"', 'fn = "sum"'))
    rig.feed(series("s1", "t", [1, 1, 1, 1, 1, 1], step=1.0))  # ts 0..5
    rig.wait_until(T0 + 10)
    got = [(d.ts - T0, d.value) for d in rig.derived()]
    # windows end every 2 s and span 4 s: [-2,2) [0,4) [2,6) [4,8)
    assert got == [(2.0, 2.0), (4.0, 4.0), (6.0, 4.0), (8.0, 2.0)]


def test_count_windows_tumble_and_slide() -> None:
    rig = Rig(window_rule('kind = "count"\ncount = 3', 'fn = "max"'))
    rig.feed(series("s1", "t", [1, 5, 2, 7, 3, 4, 9], step=1.0))
    assert [d.value for d in rig.derived()] == [5.0, 7.0]
    rig2 = Rig(window_rule('kind = "count"\ncount = 3\nstep = 1', 'fn = "sum"'))
    rig2.feed(series("s1", "t", [1, 2, 3, 4, 5], step=1.0))
    assert [d.value for d in rig2.derived()] == [6.0, 9.0, 12.0]
    assert [d.ts - T0 for d in rig2.derived()] == [2.0, 3.0, 4.0]


def test_session_windows_close_after_the_gap_and_merge() -> None:
    rig = Rig(window_rule('kind = "session"\ngap = "5s"', 'fn = "count"'))
    rig.feed([r("s1", "t", 1, 0), r("s1", "t", 1, 3), r("s1", "t", 1, 6)])  # one session 0..6
    rig.feed([r("s1", "t", 1, 20), r("s1", "t", 1, 22)])  # a new one: the first closed at 6 + 5
    assert [(d.value, d.ts - T0) for d in rig.derived()] == [(3.0, 6.0)]
    rig.wait_until(T0 + 27)
    assert [(d.value, d.ts - T0) for d in rig.derived()] == [(3.0, 6.0), (2.0, 22.0)]


def test_session_late_reading_within_lateness_joins_two_sessions() -> None:
    rig = Rig(window_rule('kind = "session"\ngap = "5s"\nallowed_lateness = "10s"', 'fn = "count"'))
    rig.feed([r("s1", "t", 1, 0), r("s1", "t", 1, 8), r("s1", "t", 1, 4)])  # 4 fills the gap between 0 and 8
    rig.wait_until(T0 + 8 + 5 + 10)
    assert [(d.value, d.ts - T0) for d in rig.derived()] == [(3.0, 8.0)]
    rig.feed([r("s1", "t", 1, 1)])  # its session closed at 23: too late
    rig.wait_until(T0 + 60)
    assert len(rig.derived()) == 1 and rig.engine.stats()["r1"].late == 1


def test_windows_are_per_subject() -> None:
    rig = Rig(window_rule('kind = "tumbling"\nsize = "10s"', select='sensor = "s*"\nmetric = "t"'))
    rig.feed([r("s1", "t", 1.0, 1), r("s2", "t", 10.0, 2), r("s1", "t", 3.0, 3)])
    rig.wait_until(T0 + 10)
    assert sorted((d.sensor, d.value) for d in rig.derived()) == [("s1", 2.0), ("s2", 10.0)]


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        ('fn = "avg"', 4.0),
        ('fn = "min"', 1.0),
        ('fn = "max"', 9.0),
        ('fn = "sum"', 16.0),
        ('fn = "count"', 4.0),
        ('fn = "last"', 2.0),  # the latest timestamp, not the latest arrival
        ('fn = "rate"', (2.0 - 1.0) / 6.0),
        ('fn = "rate"\nper = "1m"', (2.0 - 1.0) / 6.0 * 60),
        ('fn = "percentile"\nq = 50', 3.0),
        ('fn = "percentile"\nq = 100', 9.0),
        ('fn = "percentile"\nq = 0', 1.0),
        ('fn = "percentile"\nq = 90', 7.5),
    ],
)
def test_each_aggregate(fn: str, expected: float) -> None:
    rig = Rig(window_rule('kind = "tumbling"\nsize = "10s"\nallowed_lateness = "5s"', fn))
    rig.feed([r("s1", "t", 1.0, 1), r("s1", "t", 9.0, 3), r("s1", "t", 2.0, 7), r("s1", "t", 4.0, 5)])
    rig.wait_until(T0 + 15)
    (d,) = rig.derived()
    assert d.value == pytest.approx(expected)


def test_string_values_are_skipped_by_numeric_aggregates_and_counted() -> None:
    rig = Rig(window_rule('kind = "tumbling"\nsize = "10s"'))
    rig.feed([r("s1", "t", 1.0, 1), r("s1", "t", "oops", 2), r("s1", "t", 3.0, 3)])
    rig.wait_until(T0 + 10)
    assert [d.value for d in rig.derived()] == [2.0]
    assert rig.engine.stats()["r1"].skipped == 1


def test_aggregate_helpers() -> None:
    assert percentile([3, 1, 2], 50) == 2.0
    assert percentile([1, 2, 3, 4], 25) == pytest.approx(1.75)
    assert rate([5, 5], [1.0, 1.0]) == 0.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_window_memory_is_capped() -> None:
    from rules import Limits

    rig = Rig(window_rule('kind = "tumbling"\nsize = "1h"', 'fn = "count"', select='sensor = "*"\nmetric = "t"'),
              limits=Limits(max_window_items=5, max_subjects=3))  # fmt: skip
    rig.feed([r("s1", "t", 1.0, i) for i in range(10)] + [r(f"x{i}", "t", 1.0, 20) for i in range(5)])
    st = rig.engine.stats()["r1"]
    assert st.overflow == 5 + 3  # five readings over the per-window cap, three subjects evicted
    rig.wait_until(T0 + 3600)
    assert len(rig.derived()) == 3
