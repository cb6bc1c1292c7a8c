"""Problems found in roost.toml: which key, on which line, and what is allowed there.

tomllib gives no positions, so :func:`key_lines` reads the text once more, line by line, to find where
each table and key is written (``[[sensors]]`` tables numbered as the parser numbers them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypedDict

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


class ProblemJson(TypedDict):
    """A problem as the report (firstboot-report.json) holds it."""

    key: str
    message: str
    line: int | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: the key path (``wifi.country``, ``sensors[1].address``), its line and the message."""

    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.key}: {self.message}" if self.key else f"{where}{self.message}"

    def as_json(self) -> ProblemJson:
        """The report's form."""
        return {"key": self.key, "message": self.message, "line": self.line}


@dataclass(slots=True)
class Problems:
    """Every problem found so far, with line numbers looked up in the file's text."""

    text: str = ""
    items: list[Problem] = field(default_factory=list)
    _lines: dict[str, int] | None = None

    def add(self, key: str, message: str, line: int | None = None) -> None:
        """Note a problem at ``key``."""
        if line is None and self.text:
            if self._lines is None:
                self._lines = key_lines(self.text)
            line = line_of(self._lines, key)
        self.items.append(Problem(key, message, line))

    def under(self, section: str) -> bool:
        """Whether any problem is in the top-level table or key ``section``."""
        return any(_top(p.key) == section for p in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _top(key: str) -> str:
    return re.split(r"[.\[]", key, maxsplit=1)[0]


def _parts(dotted: str) -> list[str]:
    out = []
    for raw in re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", dotted):
        out.append(raw[1:-1] if raw[:1] in "\"'" else raw)
    return out


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def key_lines(text: str) -> dict[str, int]:
    """Key path -> line number (1-based) of every table header and ``key =`` line in a TOML text."""
    lines: dict[str, int] = {}
    arrays: dict[str, int] = {}
    prefix = ""
    quote: str | None = None  # inside a multi-line string: its delimiter
    depth = 0  # inside a multi-line array or inline table
    for number, line in enumerate(text.splitlines(), start=1):
        if quote is not None:
            if line.count(quote) % 2 == 1:
                quote = None
            continue
        if depth > 0:
            depth = max(0, depth + _nesting(line))
            continue
        header = _HEADER.match(line)
        if header:
            names = _parts(header.group(2))
            resolved = ""
            for part in names[:-1] if header.group(1) == "[[" else names:
                resolved = _join(resolved, part)
                if resolved in arrays:
                    resolved = f"{resolved}[{arrays[resolved]}]"
            if header.group(1) == "[[":
                base = _join(resolved, names[-1]) if names else resolved
                arrays[base] = arrays.get(base, -1) + 1
                resolved = f"{base}[{arrays[base]}]"
            prefix = resolved
            lines.setdefault(prefix, number)
            continue
        key = _KEY.match(line)
        if key:
            path = prefix
            for part in _parts(key.group(1)):
                path = _join(path, part)
            lines.setdefault(path, number)
            rest = line[key.end() :]
            for delimiter in ('"""', "'''"):
                if rest.count(delimiter) % 2 == 1:
                    quote = delimiter
                    break
            else:
                depth = max(0, _nesting(rest))
    return lines


def _nesting(text: str) -> int:
    """Brackets opened minus closed outside strings and comments (good enough for values on one line)."""
    count = 0
    in_str: str | None = None
    for ch in text:
        if in_str:
            if ch == in_str:
                in_str = None
        elif ch in "\"'":
            in_str = ch
        elif ch == "#":
            break
        elif ch in "[{":
            count += 1
        elif ch in "]}":
            count -= 1
    return count


def line_of(lines: dict[str, int], key: str) -> int | None:
    """The line of ``key``, else of the nearest table or key above it that is written in the file."""
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return None
