"""Sensor and metric patterns: exact ids or shell-style globs (``*``, ``?``, ``[...]``), matched case-sensitively."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` has glob characters (otherwise it is an exact id)."""
    return bool(GLOB_CHARS & set(pattern))


def matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A predicate true for names that equal one exact pattern or match one glob."""
    pats = tuple(patterns)
    if "*" in pats:
        return lambda _name: True
    exact = frozenset(p for p in pats if not is_glob(p))
    globs = [p for p in pats if is_glob(p)]
    if not globs:
        return exact.__contains__
    rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in globs))
    match = rx.match
    return lambda name: name in exact or match(name) is not None


def exact_only(patterns: Iterable[str]) -> tuple[str, ...] | None:
    """The patterns when all are exact ids (no glob), else None."""
    pats = tuple(patterns)
    return None if any(is_glob(p) for p in pats) else pats
