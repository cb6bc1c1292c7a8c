"""Aggregate functions: what a window of values becomes.

Windows keep the values of each pane in a plain list (one ``append`` per reading, the cheapest
thing Python does per event) and aggregate the list when the window closes, with builtins that run
at C speed (``sum``, ``min``, ``max``, ``sorted``). ``last`` and ``rate`` also need the timestamps;
the window keeps them only for those two (:func:`needs_ts`). ``count_distinct`` is fed the readings'
sensor ids instead of their values (:func:`counts_sensors`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rules.model import Aggregate

Values = Sequence[float]
Stamps = Sequence[float]
AggFn = Callable[[Values, Stamps], float]


def needs_ts(agg: Aggregate) -> bool:
    """Whether ``agg`` needs the readings' timestamps (``last`` and ``rate`` do)."""
    return agg.fn in ("last", "rate")


def counts_sensors(agg: Aggregate) -> bool:
    """Whether ``agg`` counts distinct sensors (its window keeps sensor ids, not values)."""
    return agg.fn == "count_distinct"


def percentile(values: Values, q: float) -> float:
    """The ``q``-th percentile (0..100), interpolating linearly between closest ranks (NumPy's default)."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("percentile of no values")
    rank = (n - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * frac)


def _last(values: Values, ts: Stamps) -> float:
    # readings may arrive out of order: the last is the one with the latest timestamp (the later one on a tie)
    best = 0
    for i in range(1, len(ts)):
        if ts[i] >= ts[best]:
            best = i
    return float(values[best])


def rate(values: Values, ts: Stamps, per: float = 1.0) -> float:
    """Change per ``per`` seconds between the earliest and the latest reading (0 with fewer than two instants)."""
    lo = hi = 0
    for i in range(1, len(ts)):
        if ts[i] < ts[lo]:
            lo = i
        if ts[i] >= ts[hi]:
            hi = i
    span = ts[hi] - ts[lo]
    if span <= 0:
        return 0.0
    return float((values[hi] - values[lo]) / span * per)


def function(agg: Aggregate) -> AggFn:
    """The function computing ``agg`` over (values, timestamps); values hold at least one element."""
    fn = agg.fn
    if fn == "avg":
        return lambda v, _t: float(math.fsum(v) / len(v))
    if fn == "min":
        return lambda v, _t: float(min(v))
    if fn == "max":
        return lambda v, _t: float(max(v))
    if fn == "sum":
        return lambda v, _t: float(math.fsum(v))
    if fn == "count":
        return lambda v, _t: float(len(v))
    if fn == "count_distinct":  # the window holds sensor ids (see rules.windows): how many sensors
        return lambda v, _t: float(len(set(v)))
    if fn == "last":
        return _last
    if fn == "rate":
        per = agg.per
        return lambda v, t: rate(v, t, per)
    q = agg.q
    return lambda v, _t: percentile(v, q)
