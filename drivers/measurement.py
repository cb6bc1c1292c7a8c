"""What a driver or decoder hands back: a metric's value and unit, before the adapter names the sensor and time."""

from __future__ import annotations

from typing import NamedTuple

from wire.reading import Value


class Measurement(NamedTuple):
    """One measured value of one metric, e.g. ``Measurement("temperature", 21.5, "Cel")``.

    Units are SenML units (RFC 8428 section 12.1 and the registry): ``Cel``, ``Pa``, ``%RH``,
    ``V``, ``m``, ``lat``/``lon``, ``s``; ``None`` when a value has no unit.
    """

    metric: str
    value: Value
    unit: str | None = None
