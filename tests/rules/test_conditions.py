"""Conditions in virtual time: threshold with hysteresis, for at least T, change, absence, sequence."""

from __future__ import annotations

from tests.rules.helpers import T0, Rig, r, rule, series

ALERT = '[[rule.action]]\nkind = "alert"\nseverity = "critical"\n'
SEL = 'sensor = "f*"\nmetric = "t"'


def cond(body: str, select: str = SEL, extra: str = "") -> str:
    return rule(select, f"[rule.condition]\n{body}\n{ALERT}", extra=extra)


def states(rig: Rig) -> list[tuple[str, str, float]]:
    return [(s, k, ts - T0) for s, k, ts in rig.alerts()]


def test_threshold_with_hysteresis_raises_once_and_clears_once() -> None:
    rig = Rig(cond('kind = "threshold"\nabove = -15\nclear_below = -17'))
    rig.feed(series("f1", "t", [-18, -14, -13, -15.5, -16, -14, -16.9, -17.5, -14], step=10))
    assert states(rig) == [("raised", "r1/f1", 10.0), ("cleared", "r1/f1", 70.0), ("raised", "r1/f1", 80.0)]


def test_threshold_below_and_equals() -> None:
    rig = Rig(cond('kind = "threshold"\nbelow = 10\nclear_above = 12'))
    rig.feed(series("f1", "t", [15, 9, 11, 13, 8], step=1))
    assert [s for s, _k, _t in states(rig)] == ["raised", "cleared", "raised"]
    rig2 = Rig(cond('kind = "threshold"\nequals = "open"', select='sensor = "d1"\nmetric = "state"'))
    rig2.feed(series("d1", "state", ["closed", "open", "open", "closed"], step=1))  # type: ignore[list-item]
    assert states(rig2) == [("raised", "r1/d1", 1.0), ("cleared", "r1/d1", 3.0)]


def test_for_at_least_needs_the_condition_to_hold_and_fires_without_new_data() -> None:
    rig = Rig(cond('kind = "threshold"\nabove = -15\nfor = "5m"'))
    rig.feed(series("f1", "t", [-14, -14, -20], step=60))  # true for 2 minutes only: nothing
    rig.feed([r("f1", "t", -12.0, 300)])  # true again from 300
    rig.wait_until(T0 + 599)
    assert states(rig) == []
    rig.wait_until(T0 + 600)  # no new reading, yet five minutes have passed: the timer raises
    assert states(rig) == [("raised", "r1/f1", 600.0)]
    rig.feed([r("f1", "t", -20.0, 700)])
    assert states(rig)[-1] == ("cleared", "r1/f1", 700.0)


def test_for_at_least_with_steady_readings() -> None:
    rig = Rig(cond('kind = "threshold"\nabove = 0\nfor = "30s"'))
    rig.feed(series("f1", "t", [1] * 10, step=10))
    assert states(rig) == [("raised", "r1/f1", 30.0)]


def test_alerts_are_per_subject_with_their_own_keys() -> None:
    rig = Rig(cond('kind = "threshold"\nabove = 0'))
    rig.feed([r("f1", "t", 1.0, 0), r("f2", "t", 1.0, 1), r("f1", "t", 2.0, 2), r("f2", "t", -1.0, 3)])
    assert states(rig) == [("raised", "r1/f1", 0.0), ("raised", "r1/f2", 1.0), ("cleared", "r1/f2", 3.0)]
    assert rig.engine.active_alerts() == ["r1/f1"]
    rig2 = Rig(cond('kind = "threshold"\nabove = 0', extra='group_by = "all"'))
    rig2.feed([r("f1", "t", 1.0, 0), r("f2", "t", 1.0, 1)])
    assert states(rig2) == [("raised", "r1", 0.0)]
    rig3 = Rig(cond('kind = "threshold"\nabove = 0', select='sensor = "f1"', extra='group_by = "series"'))
    rig3.feed([r("f1", "t", 1.0, 0), r("f1", "u", 1.0, 1)])
    assert [k for _s, k, _t in states(rig3)] == ["r1/f1:t", "r1/f1:u"]


def test_change_by_more_than_x() -> None:
    rig = Rig(cond('kind = "change"\nby = 5'))
    rig.feed(series("f1", "t", [10, 12, 18, 19, 10, 11], step=1))
    assert [(s, t) for s, _k, t in states(rig)] == [
        ("raised", 2.0),
        ("cleared", 3.0),
        ("raised", 4.0),
        ("cleared", 5.0),
    ]
    up = Rig(cond('kind = "change"\nby = 5\ndirection = "up"'))
    up.feed(series("f1", "t", [10, 2, 9], step=1))
    assert [(s, t) for s, _k, t in states(up)] == [("raised", 2.0)]


def test_change_within_a_time_span() -> None:
    rig = Rig(cond('kind = "change"\nby = 3\nwithin = "10s"'))
    # a slow drift: +1 every 4 s. Within 10 s the rise is 2 (never > 3) ...
    rig.feed(series("f1", "t", [0, 1, 2, 3, 4], step=4))
    assert states(rig) == []
    # ... until a fast one: +4 within 10 s
    rig.feed([r("f1", "t", 8.0, 20)])
    assert states(rig) == [("raised", "r1/f1", 20.0)]


def test_absence_fires_from_the_clock_and_clears_on_data() -> None:
    rig = Rig(cond('kind = "absence"\nfor = "10m"'))
    rig.feed(series("f1", "t", [1, 1, 1], step=60))  # last at 120
    rig.wait_until(T0 + 719)
    assert states(rig) == []
    rig.wait_until(T0 + 720)
    assert states(rig) == [("raised", "r1/f1", 720.0)]
    rig.wait_until(T0 + 5000)
    assert len(states(rig)) == 1  # raised once
    rig.feed([r("f1", "t", 1.0, 5001)])
    assert states(rig)[-1] == ("cleared", "r1/f1", 5001.0)
    rig.wait_until(T0 + 5001 + 600)
    assert states(rig)[-1] == ("raised", "r1/f1", 5601.0)


def test_absence_of_a_named_sensor_that_never_reports() -> None:
    rig = Rig(cond('kind = "absence"\nfor = "5m"', select='sensor = ["f1", "f2"]\nmetric = "t"'))
    rig.feed(series("f1", "t", [1] * 10, step=60))  # f1 reports every minute until 540; f2 never does
    assert states(rig) == [("raised", "r1/f2", 300.0)]  # counted from when the engine started (T0)


def test_absence_inside_one_batch_is_seen() -> None:
    rig = Rig(cond('kind = "absence"\nfor = "1m"'))
    rig.engine.push([r("f1", "t", 1.0, 0), r("f1", "t", 1.0, 200)])  # a replayed batch with a silence in it
    assert states(rig) == [("raised", "r1/f1", 60.0), ("cleared", "r1/f1", 200.0)]


def test_sequence_a_then_b_within_t() -> None:
    body = (
        'kind = "sequence"\nwithin = "10m"\nfirst = { metric = "door", equals = true }\n'
        'then = { metric = "t", above = -10 }'
    )
    rig = Rig(cond(body, select='sensor = "f1"\nmetric = ["door", "t"]'))
    rig.feed([r("f1", "t", -5.0, 0)])  # B without A: nothing
    rig.feed([r("f1", "door", True, 10), r("f1", "t", -12.0, 100), r("f1", "t", -9.0, 400)])  # A, then B in 390 s
    assert states(rig) == [("raised", "r1/f1", 400.0)]
    rig.feed([r("f1", "door", True, 1000)])  # a new A clears
    rig.feed([r("f1", "t", -8.0, 1000 + 601)])  # B too late
    assert states(rig) == [("raised", "r1/f1", 400.0), ("cleared", "r1/f1", 1000.0)]


def test_conditions_on_window_aggregates() -> None:
    text = rule(
        SEL,
        '[rule.window]\nkind = "tumbling"\nsize = "1m"\n[rule.aggregate]\nfn = "avg"\n'
        f'[rule.condition]\nkind = "threshold"\nabove = 5\n{ALERT}',
    )
    rig = Rig(text)
    rig.feed(series("f1", "t", [0, 10, 0, 10, 9, 9, 9, 9], step=15))  # avg 5 in [0, 60), 9 in [60, 120)
    rig.wait_until(T0 + 120)
    assert states(rig) == [("raised", "r1/f1", 120.0)]
