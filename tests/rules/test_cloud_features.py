"""The rule language's features for rules that span gateways: group_by = "tag:NAME", count_distinct, {subject}.

The engine runs on a TestScheduler (virtual time); sensors are named as cloud rules see them
(``{gateway}/{sensor}``, the presence sensor ``{gateway}``) and tagged through ``tag_source``, the
way the cloud runner tags them from the fleet registry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from rules import AlertOut, RuleError, load_file, load_text
from tests.rules.helpers import T0, Rig, r, rule
from wire.reading import Reading

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules" / "cloud"

SITES = {"gw1": "A", "gw2": "A", "gw3": "B", "gw4": "A", "gw5": "A", "gw6": "B"}
COLD_CHAIN = {"gw1", "gw3"}


def tags_of(sensor: str) -> Mapping[str, str]:
    """Tags as the cloud gives them: gateway, site, operator tags; kind=gateway on presence sensors."""
    gw, sep, _ = sensor.partition("/")
    tags = {"gateway": gw}
    if gw in SITES:
        tags["site"] = SITES[gw]
    if gw in COLD_CHAIN:
        tags["cold-chain"] = "true"
    if not sep:
        tags["kind"] = "gateway"
    return tags


def rig(text: str) -> Rig:
    return Rig(text, tag_source=tags_of)


def example(name: str) -> str:
    return (EXAMPLES / name).read_text(encoding="utf-8")


def alert_events(rg: Rig) -> list[AlertOut]:
    return [o for o in rg.outputs if isinstance(o, AlertOut)]


def test_the_examples_load() -> None:
    names = sorted(p.name for p in EXAMPLES.glob("*.toml"))
    assert names == ["cold-chain-silent.toml", "site-freezers.toml", "site-offline.toml"]
    for p in EXAMPLES.glob("*.toml"):
        assert load_file(p).rules


def fz(sensor: str, celsius: float, dt: float) -> Reading:
    return r(sensor, "temperature", celsius, dt, "Cel")


def test_average_of_every_freezer_of_a_site_alerts_per_site() -> None:
    rg = rig(example("site-freezers.toml"))
    # Site A: two freezers on two gateways, -20 and -8: average -14 > -15. Site B: one at -20.
    for minute in range(5):
        t = minute * 60.0 + 1
        rg.feed([fz("gw1/freezer-1", -20.0, t), fz("gw2/freezer-2", -8.0, t + 1), fz("gw3/freezer-3", -20.0, t + 2)])
        rg.feed([fz("gw1/door-1", 30.0, t + 3)])
    rg.wait_until(T0 + 5 * 60 + 31)  # the 5-minute window closes after its lateness
    (raised,) = alert_events(rg)
    e = raised.event
    assert (e.state, e.key, e.value) == ("raised", "site-freezers-warm/A", -14.0)
    assert e.data == {"group": {"site": "A"}}
    assert e.message == "The freezers of site A average -14.0 Cel"
    # Site A's second freezer cools down: the next window averages -19 < -17, the alert clears.
    for minute in range(5, 10):
        t = minute * 60.0 + 1
        rg.feed([fz("gw1/freezer-1", -20.0, t), fz("gw2/freezer-2", -18.0, t + 1)])
    rg.wait_until(T0 + 10 * 60 + 31)
    assert [(a.event.state, a.event.key) for a in alert_events(rg)] == [
        ("raised", "site-freezers-warm/A"),
        ("cleared", "site-freezers-warm/A"),
    ]


def test_a_sensor_without_the_grouping_tag_is_not_selected() -> None:
    text = rule(
        'metric = "temperature"',
        '[rule.condition]\nkind = "threshold"\nabove = 0.0\n[[rule.action]]\nkind = "alert"',
        extra='group_by = "tag:site"',
    )
    rg = rig(text)
    rg.feed([r("gw9/t", "temperature", 5.0, 1), r("gw3/t", "temperature", 5.0, 2)])  # gw9 has no site
    assert [a.event.key for a in alert_events(rg)] == ["r1/B"]
    assert rg.engine.stats()["r1"].events_in == 1


def offline(gw: str, dt: float) -> Reading:
    return r(gw, "online", False, dt)


def test_more_than_three_gateways_of_a_site_offline_within_ten_minutes() -> None:
    rg = rig(example("site-offline.toml"))
    # Three of site A go offline (and one of B): not more than three.
    rg.feed([offline("gw1", 10), offline("gw2", 70), offline("gw4", 130), offline("gw3", 140)])
    rg.feed([r("gw1/freezer-1", "online", False, 150)])  # a device's "online" is not a gateway's presence
    rg.wait_until(T0 + 300)
    assert alert_events(rg) == []
    # The fourth of site A, nine minutes after the first: raised once (a repeated offline counts once).
    rg.feed([offline("gw5", 550), offline("gw5", 560)])
    rg.wait_until(T0 + 661)
    (raised,) = alert_events(rg)
    assert (raised.event.state, raised.event.key, raised.event.value) == ("raised", "site-gateways-offline/A", 4.0)
    assert raised.event.message == "4 gateways of site A went offline within ten minutes"
    # Going online again does not count. A threshold clears below its level (3): the window ending at +11 min
    # still has 3 (gw2, gw4, gw5), the one ending at +12 min has 2.
    rg.feed([r("gw1", "online", True, 600)])
    rg.wait_until(T0 + 661)
    assert len(alert_events(rg)) == 1
    rg.wait_until(T0 + 721)
    states = [(a.event.state, a.event.key, a.event.value, a.event.ts - T0) for a in alert_events(rg)]
    key = "site-gateways-offline/A"
    assert states == [("raised", key, 4.0, 600.0), ("cleared", key, 2.0, 720.0)]


def test_count_distinct_says_zero_once_a_group_is_quiet() -> None:
    text = rule(
        'metric = "online"\nvalue = false',
        '[rule.window]\nkind = "tumbling"\nsize = "1m"\n[rule.aggregate]\nfn = "count_distinct"\n'
        '[[rule.action]]\nkind = "derive"\nmetric = "offline_count"',
        extra='group_by = "tag:site"',
    )
    rg = rig(text)
    rg.feed([offline("gw1", 1), offline("gw2", 2), offline("gw1", 3)])
    rg.wait_until(T0 + 300)
    assert [(d.value, d.ts - T0) for d in rg.derived()] == [(2.0, 60.0), (0.0, 120.0)]
    # A reading in the window that would have said 0 makes it count instead.
    rg.feed([offline("gw3", 301), offline("gw3", 361)])
    rg.wait_until(T0 + 600)
    assert [(d.value, d.ts - T0) for d in rg.derived()][2:] == [(1.0, 360.0), (1.0, 420.0), (0.0, 480.0)]


def test_a_reading_missing_from_any_gateway_of_a_tag() -> None:
    rg = rig(example("cold-chain-silent.toml"))
    for minute in range(0, 30, 5):
        rg.feed(
            [
                r("gw1/t1", "temperature", 4.0, minute * 60.0),
                r("gw3/t9", "temperature", 5.0, minute * 60.0 + 1),
                r("gw2/t2", "temperature", 5.0, minute * 60.0 + 2),
            ]
        )  # gw2: not cold-chain
    # gw3 stops; gw1 and gw2 go on.
    for minute in range(30, 60, 5):
        rg.feed([r("gw1/t1", "temperature", 4.0, minute * 60.0), r("gw2/t2", "temperature", 5.0, minute * 60.0 + 2)])
    assert [(a.event.state, a.event.key) for a in alert_events(rg)] == [("raised", "cold-chain-silent/gw3")]
    assert alert_events(rg)[0].event.ts == T0 + 25 * 60 + 1 + 15 * 60
    assert alert_events(rg)[0].event.message == "Gateway gw3 has sent no temperature for fifteen minutes"
    rg.feed([r("gw3/t9", "temperature", 5.0, 3600)])
    assert [(a.event.state, a.event.key) for a in alert_events(rg)][-1] == ("cleared", "cold-chain-silent/gw3")


def test_tags_that_change_move_a_sensor_to_another_group() -> None:
    site = {"gw1": "A"}
    text = rule(
        'metric = "t"',
        '[rule.condition]\nkind = "threshold"\nabove = 0.0\n[[rule.action]]\nkind = "alert"',
        extra='group_by = "tag:site"',
    )
    rg = Rig(text, tag_source=lambda s: {"site": site[s.split("/")[0]]})
    rg.feed([r("gw1/x", "t", 1.0, 1)])
    site["gw1"] = "B"
    rg.feed([r("gw1/x", "t", 1.0, 2)])
    assert [a.event.key for a in alert_events(rg)] == ["r1/A"], "cached until told"
    rg.engine.refresh_tags()
    rg.feed([r("gw1/x", "t", 1.0, 3)])
    assert [a.event.key for a in alert_events(rg)] == ["r1/A", "r1/B"]


def test_group_by_a_tag_of_the_files_tags_on_the_gateway_too() -> None:
    # The same language on a gateway: tags from the file's [tags] table.
    text = '[tags]\n"fz-*" = { room = "cold" }\n' + rule(
        'metric = "t"',
        '[rule.condition]\nkind = "threshold"\nabove = 0.0\n[[rule.action]]\nkind = "alert"\n'
        'message = "{subject}: {value}"',
        extra='group_by = "tag:room"',
    )
    rg = Rig(text)
    rg.feed([r("fz-1", "t", 1.0, 1), r("other", "t", 1.0, 2)])
    ((key, message),) = [(a.event.key, a.event.message) for a in alert_events(rg)]
    assert (key, message) == ("r1/cold", "cold: 1.0")


CD_WINDOW = '[rule.window]\nkind = "tumbling"\nsize = "1m"\n[rule.aggregate]\nfn = "count_distinct"\n'
ACTION = '[[rule.action]]\nkind = "derive"\nmetric = "n"'


@pytest.mark.parametrize(
    ("extra", "body", "field", "words"),
    [
        ('group_by = "tag:"', ACTION, "group_by", "names no tag"),
        ('group_by = "tag:my site"', ACTION, "group_by", "is not a tag name"),
        ('group_by = "tag:name"', ACTION, "group_by", "reserved for rules"),
        ('group_by = "site"', ACTION, "group_by", "tag:NAME"),
        ("group_by = 3", ACTION, "group_by", "must be a string"),
        ('group_by = "sensor"', CD_WINDOW + ACTION, "group_by", "always 1"),
        ("", CD_WINDOW + ACTION, "group_by", "always 1"),
        ('group_by = "series"', CD_WINDOW + ACTION, "group_by", "always 1"),
        (
            'group_by = "tag:site"',
            '[rule.window]\nkind = "count"\ncount = 5\n[rule.aggregate]\nfn = "count_distinct"\n' + ACTION,
            "window",
            "tumbling or sliding",
        ),
        (
            'group_by = "tag:site"',
            '[rule.window]\nkind = "session"\ngap = "1m"\n[rule.aggregate]\nfn = "count_distinct"\n' + ACTION,
            "window",
            "tumbling or sliding",
        ),
        ('group_by = "tag:site"', '[rule.aggregate]\nfn = "count_distinct"\n' + ACTION, "window", "needs a window"),
        (
            'group_by = "tag:site"',
            '[rule.condition]\nkind = "threshold"\nabove = 1.0\n[[rule.action]]\nkind = "alert"\n'
            'message = "{subjects}"',
            "action[0].message",
            "unknown placeholder {subjects}",
        ),
    ],
)
def test_misuse_of_the_new_fields_is_named(extra: str, body: str, field: str, words: str) -> None:
    with pytest.raises(RuleError) as info:
        load_text(rule('metric = "online"', body, extra=extra), name="cloud.toml")
    assert info.value.field == field, str(info.value)
    assert words in info.value.problem, str(info.value)
    assert str(info.value).startswith("cloud.toml:"), "the error names the file and line"


def test_group_by_a_tag_is_part_of_the_definition() -> None:
    a = load_text(rule('metric = "t"', ACTION, extra='group_by = "tag:site"')).rules[0]
    b = load_text(rule('metric = "t"', ACTION, extra='group_by = "tag:region"')).rules[0]
    assert a.group_by == "tag:site" and a.digest() != b.digest()


# -- the command line: roost rules check/run --cloud, as an operator runs them ------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def roost(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT, input=stdin
    )


def test_run_cloud_replays_gateways_readings_and_presence() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.toml"))
    out = roost("rules", "run", "--cloud", "--gateways", str(EXAMPLES / "gateways.json"), *files,
                "--input", str(EXAMPLES / "readings.jsonl"), "--until", "+30m")  # fmt: skip
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    seen = [(d["state"], d["key"]) for d in docs if d["type"] == "alert"]
    assert seen[:4] == [
        ("raised", "site-freezers-warm/north-mall"),
        ("raised", "site-gateways-offline/north-mall"),
        ("raised", "cold-chain-silent/shop-5"),
        ("cleared", "site-gateways-offline/north-mall"),
    ]
    assert "site-freezers-warm/harbour" not in {k for _s, k in seen}
    assert "34 readings (0 bad lines)" in out.stderr


def test_run_cloud_reports_lines_without_a_gateway() -> None:
    lines = (
        '{"ts": 1, "sensor": "s", "metric": "online", "value": false}\n{"ts": 2, "gateway": "g", "status": "gone"}\n'
    )
    out = roost("rules", "run", "--cloud", str(EXAMPLES / "site-offline.toml"), "--input", "-", stdin=lines)
    assert out.returncode == 1
    assert "-:1: 'gateway' is missing" in out.stderr and "-:2: status must be 'online' or 'offline'" in out.stderr
    out = roost("rules", "run", "--gateways", "x.json", str(EXAMPLES / "site-offline.toml"), "--input", "-", stdin="")
    assert out.returncode == 2 and "--gateways goes with --cloud" in out.stderr


def test_check_cloud_wants_commands_to_name_their_gateway(tmp_path: Path) -> None:
    f = tmp_path / "cmd.toml"
    f.write_text(rule('metric = "t"', '[rule.condition]\nkind = "threshold"\nabove = 1.0\n'
                      '[[rule.action]]\nkind = "command"\ntarget = "plug-1"\naction = "on"'))  # fmt: skip
    assert roost("rules", "check", str(f)).returncode == 0, "fine on a gateway"
    out = roost("rules", "check", "--cloud", str(f))
    assert out.returncode == 1
    assert "rule 'r1': action[0].target: command target 'plug-1' names no gateway" in out.stderr
    f.write_text(f.read_text().replace('"plug-1"', '"shop-1/plug-1"'))
    assert roost("rules", "check", "--cloud", str(f)).returncode == 0
