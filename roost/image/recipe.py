"""The image recipe (``image/recipe.toml``): package lists per architecture and the fixed identifiers."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from roost.image.tools import BuildError

ARCHES = ("amd64", "arm64")
SUITES = ("bookworm", "trixie")


@dataclass(frozen=True, slots=True)
class Identifiers:
    """What makes two builds give the same bytes: the disk's and file systems' ids and labels."""

    disk_id: int
    root_uuid: str
    root_hash_seed: str
    boot_volume_id: str
    boot_label: str
    root_label: str

    def partuuid(self, number: int) -> str:
        """The MBR PARTUUID of partition ``number`` (``5e6f0c2a-02``): the disk signature and the index."""
        return f"{self.disk_id:08x}-{number:02x}"


@dataclass(frozen=True, slots=True)
class Recipe:
    """Everything the build reads from the recipe for one architecture and suite."""

    arch: str
    suite: str
    hostname: str
    ids: Identifiers
    boot_size_mib: int
    alignment_mib: int
    root_free_mib: int
    mirror: str
    security_mirror: str
    variant: str
    components: tuple[str, ...]
    packages: tuple[str, ...]
    builder_packages: tuple[str, ...]
    path_exclude: tuple[str, ...]
    path_include: tuple[str, ...]
    network: str
    console: str
    extras: tuple[str, ...]
    enable_units: tuple[str, ...]

    def sources(self) -> list[str]:
        """The apt source lines (one-line style) mmdebstrap uses and the image keeps."""
        comps = " ".join(self.components)
        lines = [
            f"deb {self.mirror} {self.suite} {comps}",
            f"deb {self.mirror} {self.suite}-updates {comps}",
            f"deb {self.security_mirror} {self.suite}-security {comps}",
        ]
        return lines

    def base_key(self) -> str:
        """A short hash of what the base root file system depends on (the cache key of its tarball)."""
        data = {k: v for k, v in asdict(self).items() if k in _BASE_FIELDS}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def builder_key(self) -> str:
        """A short hash of what the wheel-building chroot depends on."""
        data = {k: v for k, v in asdict(self).items() if k in ("arch", "suite", "mirror", "builder_packages")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_BASE_FIELDS = (
    "arch",
    "suite",
    "mirror",
    "security_mirror",
    "variant",
    "components",
    "packages",
    "path_exclude",
    "path_include",
)


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BuildError(f"{where}: {key} must be a list of names")
    return tuple(value)


def _need(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BuildError(f"{where}: {key} is missing or not a {kind.__name__}")
    return value


def _uuid(text: str, where: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise BuildError(f"{where}: {text!r} is not a UUID") from None


def load(path: Path, arch: str, suite: str) -> Recipe:
    """Read the recipe for ``arch`` and ``suite``; BuildError names a wrong or missing key."""
    if arch not in ARCHES:
        raise BuildError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHES)}")
    if suite not in SUITES:
        raise BuildError(f"unsupported Debian suite {suite!r}: choose one of {', '.join(SUITES)}")
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BuildError(f"{path}: the image recipe is missing (run the build from a Roost checkout)") from None
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"{path}: not valid TOML: {exc}") from None
    where = str(path)
    image = _need(data, "image", dict, where)
    debian = _need(data, "debian", dict, where)
    roost_table = _need(data, "roost", dict, where)
    per_arch = _need(_need(data, "arch", dict, where), arch, dict, f"{where} [arch.{arch}]")
    disk_id_text = _need(image, "disk_id", str, f"{where} [image]")
    if not re.fullmatch(r"0x[0-9a-fA-F]{1,8}", disk_id_text):
        raise BuildError(f"{where} [image]: disk_id must be 0x and up to 8 hex digits, not {disk_id_text!r}")
    volume_id = _need(image, "boot_volume_id", str, f"{where} [image]")
    if not re.fullmatch(r"[0-9a-fA-F]{8}", volume_id):
        raise BuildError(f"{where} [image]: boot_volume_id must be 8 hex digits, not {volume_id!r}")
    ids = Identifiers(
        disk_id=int(disk_id_text, 16),
        root_uuid=_uuid(_need(image, "root_uuid", str, where), where),
        root_hash_seed=_uuid(_need(image, "root_hash_seed", str, where), where),
        boot_volume_id=volume_id.upper(),
        boot_label=_need(image, "boot_label", str, where)[:11],
        root_label=_need(image, "root_label", str, where)[:16],
    )
    return Recipe(
        arch=arch,
        suite=suite,
        hostname=_need(image, "hostname", str, where),
        ids=ids,
        boot_size_mib=_need(image, "boot_size_mib", int, where),
        alignment_mib=_need(image, "alignment_mib", int, where),
        root_free_mib=_need(image, "root_free_mib", int, where),
        mirror=_need(debian, "mirror", str, where),
        security_mirror=_need(debian, "security_mirror", str, where),
        variant=_need(debian, "variant", str, where),
        components=_strings(per_arch, "components", where),
        packages=tuple(sorted(set(_strings(debian, "packages", where) + _strings(per_arch, "packages", where)))),
        builder_packages=tuple(sorted(_strings(debian, "builder_packages", where))),
        path_exclude=_strings(debian, "path_exclude", where),
        path_include=_strings(debian, "path_include", where),
        network=_need(per_arch, "network", str, where),
        console=_need(per_arch, "console", str, where),
        extras=_strings(roost_table, "extras", f"{where} [roost]"),
        enable_units=_strings(roost_table, "enable_units", f"{where} [roost]"),
    )
