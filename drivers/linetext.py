"""The plain-text reading form for the smallest devices: ``metric=value[,metric=value...]``.

Used by CoAP posts to ``/telemetry/{sensor}`` (and the serial line protocol later). Values are
numbers, or ``true``/``false``; whitespace around items is ignored; a trailing newline is fine.
"""

from __future__ import annotations

import math
import re

from wire.errors import PayloadError
from wire.names import check_metric

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse(text: str) -> list[tuple[str, float | bool]]:
    """Parse ``metric=value,...`` into (metric, value) pairs, or raise PayloadError naming the bad item."""
    items = [item.strip() for item in text.strip().split(",")]
    if not items or items == [""]:
        raise PayloadError("empty payload: expected metric=value[,metric=value...]")
    out: list[tuple[str, float | bool]] = []
    for pos, item in enumerate(items, 1):
        metric, sep, raw = item.partition("=")
        metric, raw = metric.strip(), raw.strip()
        if not sep or not metric or not raw:
            raise PayloadError(f"item {pos} {item[:40]!r} is not metric=value")
        try:
            check_metric(metric)
        except ValueError as exc:
            raise PayloadError(f"item {pos}: {exc}") from exc
        value: float | bool
        if raw in ("true", "false"):
            value = raw == "true"
        elif _NUMBER.fullmatch(raw):
            value = float(raw)
            if not math.isfinite(value):
                raise PayloadError(f"item {pos}: {metric} = {raw[:20]!r} is not a finite number")
        else:
            raise PayloadError(f"item {pos}: {metric} = {raw[:20]!r} is not a number, true or false")
        out.append((metric, value))
    return out
