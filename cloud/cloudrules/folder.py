"""The cloud's rule files: ``{folder}/{tenant}/*.toml``, checked exactly as ``roost rules check`` checks them.

A tenant's files make one rule set (rule names unique across them). A file written through the API is
checked first, with the other files of the tenant, and written only when the whole set loads; it is
written to a temporary file and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import rules
from wire.errors import InvalidName
from wire.names import check_tenant

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_FILE_BYTES = 1024 * 1024
EMPTY = "(no rules)"


class RuleFileError(ValueError):
    """A rule file that cannot be used; ``problems`` lists each problem as ``roost rules check`` prints it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if problems else "the rule file cannot be used")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Loaded:
    """A tenant's rule set as the folder holds it now, and the files' modification times it was read at."""

    ruleset: rules.RuleSet
    mtimes: dict[str, float]


def file_name(name: str) -> str:
    """``name`` or ``name.toml`` as a file name of the folder; ValueError when it is not a plain name."""
    base = name.removesuffix(".toml")
    if not FILE_NAME.fullmatch(base) or base.startswith("."):
        raise ValueError(f"{name!r} is not a rule file name: a letter or digit, then only A-Z a-z 0-9 . _ -")
    return base + ".toml"


class RulesFolder:
    """One subfolder per tenant of ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def tenants(self) -> list[str]:
        """The tenants with a folder (whose name is a valid tenant id)."""
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            try:
                if d.is_dir():
                    out.append(check_tenant(d.name))
            except InvalidName:
                continue
        return out

    def files(self, tenant: str) -> list[Path]:
        """The tenant's rule files, by name."""
        d = self.root / check_tenant(tenant)
        return sorted(p for p in d.glob("*.toml") if p.is_file()) if d.is_dir() else []

    def mtimes(self, tenant: str) -> dict[str, float]:
        """Each file's name and modification time (what a reload compares)."""
        out: dict[str, float] = {}
        for p in self.files(tenant):
            try:
                out[p.name] = p.stat().st_mtime_ns / 1e9
            except OSError:
                continue
        return out

    def load(self, tenant: str) -> Loaded:
        """The tenant's rule set; RuleFileError naming every problem (file, line, rule, field)."""
        mtimes = self.mtimes(tenant)
        texts: list[tuple[str, str]] = []
        for p in self.files(tenant):
            try:
                texts.append((p.name, p.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise RuleFileError([f"{p.name}: cannot be read: {exc}"]) from exc
        return Loaded(_checked(texts), mtimes)

    def read(self, tenant: str, name: str) -> str:
        """One file's text; FileNotFoundError when there is none."""
        return (self.root / check_tenant(tenant) / file_name(name)).read_text(encoding="utf-8")

    def write(self, tenant: str, name: str, text: str) -> rules.RuleSet:
        """Check ``text`` with the tenant's other files, then store it as ``name``; the new rule set."""
        fname = file_name(name)
        if len(text.encode()) > MAX_FILE_BYTES:
            raise RuleFileError([f"{fname}: is larger than {MAX_FILE_BYTES // 1024} KiB"])
        d = self.root / check_tenant(tenant)
        others = [(p.name, p.read_text(encoding="utf-8")) for p in self.files(tenant) if p.name != fname]
        ruleset = _checked([*others, (fname, text)])
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, d / fname)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ruleset

    def delete(self, tenant: str, name: str) -> bool:
        """Remove a file; whether there was one."""
        p = self.root / check_tenant(tenant) / file_name(name)
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        return True


def _checked(texts: list[tuple[str, str]]) -> rules.RuleSet:
    """One rule set from (file name, text) pairs; RuleFileError with every problem found."""
    sets: list[rules.RuleSet] = []
    problems: list[str] = []
    for name, text in texts:
        try:
            sets.append(rules.load_text(text, name=name))
        except rules.RuleError as exc:
            problems.extend(str(e) for e in exc.all())
    if problems:
        raise RuleFileError(problems)
    if not sets:
        return rules.load_text("", name=EMPTY)
    try:
        return rules.merge(sets)
    except rules.RuleError as exc:
        raise RuleFileError([str(exc)]) from exc
