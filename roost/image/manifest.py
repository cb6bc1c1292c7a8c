"""The build manifest: every Debian package and Python distribution in the image, with versions and hashes.

Written as ``roost-<version>-<arch>.manifest.json`` (for tools) and ``.manifest.txt`` (for people); both are
sorted, so two manifests of the same inputs are byte-identical and a ``diff`` of two releases is readable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

DPKG_FORMAT = "${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n"


@dataclass(frozen=True, slots=True, order=True)
class DebianPackage:
    name: str
    version: str
    arch: str


@dataclass(frozen=True, slots=True, order=True)
class PythonDistribution:
    name: str
    version: str


def parse_dpkg_query(text: str) -> list[DebianPackage]:
    """The installed packages from ``dpkg-query -W -f DPKG_FORMAT`` output (others, e.g. removed ones, left out)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise ValueError(f"unexpected dpkg-query line: {line!r}")
        name, version, arch, status = parts
        if status.strip() != "ii":
            continue
        out.append(DebianPackage(name, version, arch))
    return sorted(out)


def parse_dpkg_status(text: str) -> list[DebianPackage]:
    """The installed packages from a dpkg status file (/var/lib/dpkg/status), without running dpkg."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            out.append(DebianPackage(fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")))
    return sorted(out)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_distributions(site_packages: Path) -> list[PythonDistribution]:
    """The distributions installed in a virtual environment's site-packages (read from their metadata)."""
    seen: dict[str, PythonDistribution] = {}
    for dist in metadata.distributions(path=[str(site_packages)]):
        name = dist.metadata["Name"]
        if not name:
            continue
        seen[_normalize(name)] = PythonDistribution(_normalize(name), dist.version)
    return sorted(seen.values())


@dataclass(slots=True)
class Manifest:
    """What one build produced and what it is made of."""

    product: str
    version: str
    arch: str
    suite: str
    source_date_epoch: int
    git_commit: str
    rootfs_sha256: str
    debian: list[DebianPackage]
    python: list[PythonDistribution]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    layout: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {
            "product": self.product,
            "version": self.version,
            "arch": self.arch,
            "suite": self.suite,
            "source_date_epoch": self.source_date_epoch,
            "git_commit": self.git_commit,
            "rootfs_sha256": self.rootfs_sha256,
            "files": {k: self.files[k] for k in sorted(self.files)},
            "layout": self.layout,
            "debian_packages": [{"name": p.name, "version": p.version, "arch": p.arch} for p in sorted(self.debian)],
            "python_distributions": [{"name": p.name, "version": p.version} for p in sorted(self.python)],
        }
        return json.dumps(data, indent=1, sort_keys=False) + "\n"

    def to_text(self) -> str:
        lines = [
            f"# {self.product} {self.version} image for {self.arch} (Debian {self.suite})",
            f"git commit: {self.git_commit}",
            f"SOURCE_DATE_EPOCH: {self.source_date_epoch}",
            f"root file system sha256: {self.rootfs_sha256}",
        ]
        for name in sorted(self.files):
            info = self.files[name]
            lines.append(f"{name}: {info.get('size', '?')} bytes, sha256 {info.get('sha256', '?')}")
        lines.append("")
        lines.append(f"## Debian packages ({len(self.debian)})")
        lines.extend(f"{p.name} {p.version} {p.arch}" for p in sorted(self.debian))
        lines.append("")
        lines.append(f"## Python distributions in /opt/roost/slots/a ({len(self.python)})")
        lines.extend(f"{p.name}=={p.version}" for p in sorted(self.python))
        return "\n".join(lines) + "\n"

    def write(self, json_path: Path, text_path: Path) -> None:
        json_path.write_text(self.to_json())
        text_path.write_text(self.to_text())
