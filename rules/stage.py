"""The shape every step of a compiled rule has: a batch in, a batch out, and a clock.

A rule's pipeline is a chain of stages (window → condition → actions). Each takes the list its
predecessor produced and the engine's clock (event time: the latest reading's timestamp, or the
scheduler's time when that is later) and returns a list. A stage that waits for time to pass (a
window to close, an absence to last, a condition to hold "for at least T") sets :attr:`Stage.due`
to the earliest clock at which it has something to do; the engine calls it with an empty batch
once the clock reaches that time, from a scheduler timer when no reading comes.
"""

from __future__ import annotations

import math
from typing import Any


class Stage:
    """Base of window, condition and action stages: counters and the next time it is due."""

    def __init__(self) -> None:
        self.due = math.inf
        self.late = 0  # readings that came after their window closed
        self.skipped = 0  # readings whose value this stage cannot use (a string for a numeric test)
        self.overflow = 0  # readings or subjects turned away by a limit

    def process(self, items: list[Any], clock: float) -> list[Any]:
        """Consume ``items`` (may be empty: a tick) at ``clock``; return what the next stage gets."""
        raise NotImplementedError
