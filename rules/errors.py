"""Errors of the rules package.

RuleError            a rule file that cannot be used: names the file, the rule, the field and the line
                     (``.file``, ``.rule``, ``.field``, ``.line``, ``.problem``; ``.others`` holds the
                     further problems found in the same file, one per rule at most)

Errors *inside* a running rule are not raised out of the engine: the engine catches them, counts
them in the rule's stats and goes on with the other rules (see :mod:`rules.engine`).
"""

from __future__ import annotations


class RuleError(ValueError):
    """A rule file that cannot be used: ``freezer.toml:12: rule 'freezer-warm': condition.above: must be a number``."""

    def __init__(
        self, problem: str, *, file: str = "<rules>", rule: str | None = None, field: str = "", line: int | None = None
    ) -> None:
        self.file = file
        self.rule = rule
        self.field = field
        self.line = line
        self.problem = problem
        self.others: tuple[RuleError, ...] = ()
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        parts = [where]
        if self.rule is not None:
            parts.append(f"rule {self.rule!r}")
        if self.field:
            parts.append(self.field)
        parts.append(self.problem)
        return ": ".join(parts)

    def all(self) -> tuple[RuleError, ...]:
        """This error and the others found in the same file, in file order."""
        return (self, *self.others)
