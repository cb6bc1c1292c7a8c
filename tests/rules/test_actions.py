"""Actions: alerts (events the cloud accepts), commands, derived readings, annotations; templates."""

from __future__ import annotations

import pytest

from rules import AlertOut, AnnotationOut
from tests.rules.helpers import T0, Rig, r, rule, series
from wire import events

SEL = 'sensor = "f*"\nmetric = "t"'
THRESH = '[rule.condition]\nkind = "threshold"\nabove = 0\n'


def test_alert_event_fields_and_templates() -> None:
    body = THRESH + (
        '[[rule.action]]\nkind = "alert"\nseverity = "critical"\n'
        'message = "{sensor} {metric} {value:.1f} {unit} ({state}, {severity}, {key}, {time})"\n'
    )
    rig = Rig(rule(SEL, body, name="hot"))
    rig.feed([r("f1", "t", 2.25, 0, "Cel"), r("f1", "t", -1.0, 1, "Cel")])
    raised, cleared = (o.event for o in rig.outputs if isinstance(o, AlertOut))
    assert raised.kind == "alert" and raised.state == "raised" and cleared.state == "cleared"
    assert raised.severity == "critical" and raised.rule == "hot" and raised.key == "hot/f1"
    assert raised.sensor == "f1" and raised.metric == "t" and raised.value == 2.25 and raised.ts == T0
    assert raised.message == "f1 t 2.2 Cel (raised, critical, hot/f1, 2025-01-15T08:00:00Z)"
    assert raised.id != cleared.id and len(raised.id) == 32
    for e in (raised, cleared):
        events.check(e)  # the cloud would accept it
        assert events.decode(events.encode([e])) == [e]


def test_a_numeric_format_on_a_string_value_does_not_break_the_rule() -> None:
    body = (
        '[rule.condition]\nkind = "threshold"\nequals = "open"\n'
        '[[rule.action]]\nkind = "alert"\nmessage = "{value:.1f}"\n'
    )
    rig = Rig(rule(SEL, body))
    rig.feed([r("f1", "t", "open", 0)])
    (a,) = [o.event for o in rig.outputs if isinstance(o, AlertOut)]
    assert a.message == "open" and rig.engine.stats()["r1"].errors == 0


def test_command_on_raise_and_on_clear_with_templated_target() -> None:
    body = THRESH + (
        '[[rule.action]]\nkind = "command"\ntarget = "plug-{sensor}"\naction = "on"\nargs = { level = 80 }\n'
        '[[rule.action]]\nkind = "command"\ntarget = "plug-{sensor}"\naction = "off"\nwhen = "clear"\n'
    )
    rig = Rig(rule(SEL, body))
    rig.feed(series("f1", "t", [1, 2, -1], step=5))
    got = [(c.rule, c.target, c.action, c.args, c.ts - T0) for c in rig.commands()]
    assert got == [("r1", "plug-f1", "on", {"level": 80}, 0.0), ("r1", "plug-f1", "off", {}, 10.0)]


def test_derive_scales_each_sample() -> None:
    body = (
        '[[rule.action]]\nkind = "derive"\nsensor = "calc-{sensor}"\nmetric = "t_f"\n'
        'unit = "degF"\nscale = 1.8\noffset = 32\n'
    )
    rig = Rig(rule(SEL, body))
    rig.feed([r("f1", "t", 100.0, 0, "Cel"), r("f1", "t", "bad", 1)])
    (d,) = rig.derived()
    assert (d.sensor, d.metric, d.value, d.unit, d.ts) == ("calc-f1", "t_f", pytest.approx(212.0), "degF", T0)
    assert rig.engine.stats()["r1"].skipped == 1


def test_annotate_on_raise_and_per_sample() -> None:
    body = THRESH + '[[rule.action]]\nkind = "annotate"\nmessage = "{sensor} went up to {value}"\n'
    rig = Rig(rule(SEL, body))
    rig.feed(series("f1", "t", [1, 2, -1, 3], step=1))
    notes = [o.event for o in rig.outputs if isinstance(o, AnnotationOut)]
    assert [n.message for n in notes] == ["f1 went up to 1", "f1 went up to 3"]
    assert all(n.kind == "annotation" and n.state is None and n.key == "r1/f1" for n in notes)
    rig2 = Rig(rule(SEL, '[[rule.action]]\nkind = "annotate"\nmessage = "seen {value}"\n'))
    rig2.feed(series("f1", "t", [1, 2], step=1))
    assert len(rig2.annotations()) == 2


def test_a_templated_name_that_breaks_the_naming_rules_is_a_rule_error_not_a_crash() -> None:
    body = '[[rule.action]]\nkind = "derive"\nmetric = "{unit}"\n'  # a reading with no unit makes an empty metric
    rig = Rig(rule(SEL, body))
    rig.feed([r("f1", "t", 1.0, 0, "Cel"), r("f1", "t", 1.0, 1)])
    st = rig.engine.stats()["r1"]
    assert st.errors == 1 and "metric" in (st.last_error or "")
    assert [d.metric for d in rig.derived()] == ["Cel"]
