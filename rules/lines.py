"""Where each table and key of a TOML document was written: ``tomllib`` keeps no line numbers.

:func:`index` scans the text once, line by line, the way a TOML reader does at the top level:

- a table header ``[a.b]`` or an array-of-tables header ``[[a.b]]`` opens a table; each ``[[a]]``
  adds one element to the array ``a``, so ``[[rule]]`` headers are numbered 0, 1, 2, ... and a
  later ``[rule.select]`` belongs to the last rule opened (TOML's own rule);
- a line that starts with a key (bare, quoted or dotted) and ``=`` records that key under the
  current table;
- the value after ``=`` is skipped with its strings (basic, literal, multi-line), brackets and
  comments, so a key inside a multi-line array or string is never mistaken for one at the top.

The result maps key paths such as ``("rule", 2, "condition", "above")`` to 1-based line numbers.
Keys inside inline tables (``select = { sensor = "x" }``) are not indexed: :meth:`LineIndex.line`
falls back to the nearest indexed parent, which is then on the same line. The scanner only runs
on text that ``tomllib`` already accepted, so it need not diagnose bad TOML.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


class LineIndex:
    """Line numbers of the tables and keys of one TOML document."""

    def __init__(self, lines: dict[Path, int]) -> None:
        self._lines = lines

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest parent that has one; None when nothing matches."""
        p = tuple(path)
        while p:
            found = self._lines.get(p)
            if found is not None:
                return found
            p = p[:-1]
        return None

    def exact(self, path: Path) -> int | None:
        """The line of ``path`` itself, or None."""
        return self._lines.get(tuple(path))


def _parse_key(text: str, pos: int) -> tuple[list[str], int] | None:
    """A (dotted) key starting at ``pos``: its parts and the position after it, or None."""
    parts: list[str] = []
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos >= n:
            return None
        ch = text[pos]
        if ch == '"':
            end = pos + 1
            buf: list[str] = []
            while end < n and text[end] != '"':
                if text[end] == "\\" and end + 1 < n:
                    buf.append(_unescape(text[end : end + 2]))
                    end += 2
                    continue
                buf.append(text[end])
                end += 1
            if end >= n:
                return None
            parts.append("".join(buf))
            pos = end + 1
        elif ch == "'":
            end = text.find("'", pos + 1)
            if end < 0:
                return None
            parts.append(text[pos + 1 : end])
            pos = end + 1
        else:
            m = _BARE.match(text, pos)
            if m is None:
                return None
            parts.append(m.group())
            pos = m.end()
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos < n and text[pos] == ".":
            pos += 1
            continue
        return parts, pos


def _unescape(pair: str) -> str:
    return {'\\"': '"', "\\\\": "\\", "\\n": "\n", "\\t": "\t"}.get(pair, pair[1])


class _ValueSkipper:
    """Follows a value across lines: open brackets and multi-line strings."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_ml: str | None = None  # '"""' or "'''" while inside a multi-line string

    @property
    def busy(self) -> bool:
        return self.depth > 0 or self.in_ml is not None

    def feed(self, text: str, pos: int = 0) -> None:
        n = len(text)
        while pos < n:
            if self.in_ml is not None:
                end = text.find(self.in_ml, pos)
                while end > 0 and self.in_ml == '"""' and _escaped(text, end):
                    end = text.find(self.in_ml, end + 1)
                if end < 0:
                    return
                pos = end + 3
                while pos < n and text[pos] == self.in_ml[0]:  # up to two more quotes belong to the string
                    pos += 1
                self.in_ml = None
                continue
            ch = text[pos]
            if ch == "#":
                return
            if text.startswith('"""', pos) or text.startswith("'''", pos):
                self.in_ml = text[pos : pos + 3]
                pos += 3
                continue
            if ch == '"':
                pos += 1
                while pos < n and text[pos] != '"':
                    pos += 2 if text[pos] == "\\" else 1
                pos += 1
                continue
            if ch == "'":
                end = text.find("'", pos + 1)
                pos = n if end < 0 else end + 1
                continue
            if ch in "[{":
                self.depth += 1
            elif ch in "]}":
                self.depth -= 1
            pos += 1


def _escaped(text: str, pos: int) -> bool:
    back = 0
    while pos - back - 1 >= 0 and text[pos - back - 1] == "\\":
        back += 1
    return back % 2 == 1


def index(text: str) -> LineIndex:
    """Scan ``text`` (valid TOML) and return the line of every table header and top-level key."""
    lines: dict[Path, int] = {}
    arrays: dict[Path, int] = {}  # array-of-tables path -> number of elements so far
    current: Path = ()
    skipper = _ValueSkipper()

    def resolve(parts: list[str]) -> Path:
        # walk a header's key, stepping into the last element of each array of tables on the way
        out: list[str | int] = []
        for part in parts:
            out.append(part)
            count = arrays.get(tuple(out))
            if count:
                out.append(count - 1)
        return tuple(out)

    for number, raw in enumerate(text.splitlines(), start=1):
        if skipper.busy:
            skipper.feed(raw)
            continue
        stripped = raw.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        start = len(raw) - len(stripped)
        if stripped.startswith("[["):
            parsed = _parse_key(raw, start + 2)
            if parsed is None:
                continue
            parent = resolve(parsed[0][:-1])
            array = (*parent, parsed[0][-1])
            count = arrays.get(array, 0)
            arrays[array] = count + 1
            current = (*array, count)
            lines.setdefault(array, number)
            lines[current] = number
            continue
        if stripped.startswith("["):
            parsed = _parse_key(raw, start + 1)
            if parsed is None:
                continue
            current = resolve(parsed[0])
            lines.setdefault(current, number)
            continue
        parsed = _parse_key(raw, start)
        if parsed is None:
            continue
        parts, pos = parsed
        if pos >= len(raw) or raw[pos] != "=":
            continue
        path: Path = current
        for part in parts:
            path = (*path, part)
            lines.setdefault(path, number)
        skipper.feed(raw, pos + 1)
    return LineIndex(lines)
