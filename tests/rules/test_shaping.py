"""Uplink shaping: deadband and downsample cut a realistic stream tenfold while alerts on it still fire."""

from __future__ import annotations

import math
import random

from rules import DerivedOut
from tests.rules.helpers import T0, Rig, r, series

SHAPING = """
[[rule]]
name = "temp-deadband"
[rule.select]
metric = "temperature"
[rule.shape]
kind = "deadband"
delta = 0.5
max_interval = "1h"

[[rule]]
name = "power-5m"
[rule.select]
metric = "power"
[rule.shape]
kind = "downsample"
every = "5m"

[[rule]]
name = "freezer-warm"
[rule.select]
metric = "temperature"
[rule.condition]
kind = "threshold"
above = -15
clear_below = -17
for = "2m"
[[rule.action]]
kind = "alert"

[[rule]]
name = "power-spike"
[rule.select]
metric = "power"
[rule.condition]
kind = "threshold"
above = 3000
[[rule.action]]
kind = "alert"
"""


def test_deadband_keeps_only_moves_larger_than_delta_and_a_heartbeat() -> None:
    rig = Rig(SHAPING)
    kept = rig.engine.shape(series("f1", "temperature", [-18.0, -18.2, -18.4, -18.6, -18.5, -17.9], step=60))
    assert [k.value for k in kept] == [-18.0, -18.6, -17.9]
    kept = rig.engine.shape([r("f1", "temperature", -17.9, 3600 + 300)])  # unchanged, but an hour went by
    assert len(kept) == 1
    assert rig.engine.stats()["temp-deadband"].shaped_out == 3
    assert rig.engine.shape([r("x", "humidity", 1.0, 0)]) == [r("x", "humidity", 1.0, 0)]  # not selected: kept


def test_downsample_replaces_readings_by_period_statistics() -> None:
    rig = Rig(SHAPING)
    kept = rig.engine.shape(series("m1", "power", [100, 300, 200], step=60))  # inside [0, 300)
    assert kept == []
    rig.wait_until(T0 + 300)  # the period closes on the clock
    got = {(d.reading.metric, d.reading.value, d.reading.ts - T0) for d in rig.outputs if isinstance(d, DerivedOut)}
    assert got == {("power", 200.0, 300.0), ("power_min", 100.0, 300.0), ("power_max", 300.0, 300.0)}
    assert rig.engine.stats()["power-5m"].shaped_out == 3


def test_downsample_flushes_open_periods_on_close() -> None:
    rig = Rig(SHAPING)
    rig.engine.shape(series("m1", "power", [1, 2], step=1))
    rig.engine.close()
    assert len([o for o in rig.outputs if isinstance(o, DerivedOut)]) == 3


def test_a_realistic_stream_is_cut_tenfold_and_the_alerts_still_fire() -> None:
    rnd = random.Random(3)
    readings = []
    for s in range(4 * 3600):  # four hours, once a second: a freezer and a power meter
        temp = -18.0 + 0.15 * math.sin(s / 600) + rnd.gauss(0, 0.05)
        if 7200 <= s < 7800:  # a ten-minute warm spell
            temp = -13.0 + rnd.gauss(0, 0.05)
        power = 450.0 + rnd.gauss(0, 20) + (2800 if 10000 <= s < 10005 else 0)  # a five-second spike
        readings += [r("f1", "temperature", round(temp, 2), s), r("m1", "power", round(power, 1), s + 0.5)]
    rig = Rig(SHAPING)
    kept: list[object] = []
    for i in range(0, len(readings), 50):
        batch = readings[i : i + 50]
        rig.scheduler.advance_to(batch[-1].ts)
        rig.engine.push(batch)
        kept += rig.engine.shape(batch)
    rig.engine.close()
    derived = [o for o in rig.outputs if isinstance(o, DerivedOut)]
    uplink = len(kept) + len(derived)
    assert uplink * 10 <= len(readings), (len(kept), len(derived), len(readings))
    alerts = [(s, k) for s, k, _t in rig.alerts()]
    assert ("raised", "freezer-warm/f1") in alerts and ("cleared", "freezer-warm/f1") in alerts
    assert ("raised", "power-spike/m1") in alerts
    st = rig.engine.stats()
    assert st["temp-deadband"].shaped_out + st["power-5m"].shaped_out == len(readings) - len(kept)
