"""Software-update bundles: the format, its signature, and every check a gateway makes before installing one.

A bundle is a tar archive (plain, or xz-compressed) whose members come in this order::

    manifest.json   what the bundle holds (below), exact bytes as signed
    manifest.sig    the Ed25519 signature over manifest.json's bytes, base64, one line
    wheels/*.whl    the new Roost wheel and its dependencies, each listed in the manifest

The manifest (JSON object)::

    {"format": 1, "product": "roost", "version": "0.2.0", "hardware": ["any"],
     "created": "2025-01-01T00:00:00Z", "key_id": "<16 hex>",
     "files": [{"path": "wheels/roost-0.2.0-py3-none-any.whl", "sha256": "<64 hex>", "size": 12345}]}

Verification reads the archive once, in order: the signature over the manifest first (nothing else is
trusted before it), then each member against the manifest (a listed, safe path; a regular file; the
size and SHA-256 it declares), then that every listed file was there. Path traversal (absolute paths,
``..``), links, devices, duplicates, unlisted members and sizes over the limits are refused. Whether a
verified bundle may be installed here (a newer version, this hardware) is :func:`check_applicable`.

Every refusal is a :class:`BundleError` whose ``reason`` is a short code (``bad-signature``,
``hash-mismatch``, ``lower-version``, ``wrong-hardware``, ...) and whose message says what did not match.
No I/O here beyond the file objects the caller passes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wire.errors import WireError

FORMAT = 1
PRODUCT = "roost"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ANY_HARDWARE = "any"
HARDWARE = ("amd64", "arm64", "armhf", ANY_HARDWARE)
"""Hardware names: Debian's architecture names, and ``any`` for a bundle of pure-Python wheels."""

MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 1024
MAX_FILES = 1000
MAX_FILE_BYTES = 256 << 20
MAX_TOTAL_BYTES = 1 << 30
CHUNK = 1 << 16

_WHEEL_PATH = re.compile(r"wheels/[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.whl")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?(?:\.dev(\d+))?")
_MACHINES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "armhf",
    "armv6l": "armhf",
    "armhf": "armhf",
}


class BundleError(WireError, ValueError):
    """A bundle refused; ``reason`` is a short code, the message says what did not match."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file the manifest lists."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a bundle holds, as signed."""

    version: str
    hardware: tuple[str, ...]
    created: str
    files: tuple[FileEntry, ...]
    key_id: str = ""
    product: str = PRODUCT
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        """The JSON object (the order of keys is fixed so builds are reproducible)."""
        return {
            "format": self.format,
            "product": self.product,
            "version": self.version,
            "hardware": list(self.hardware),
            "created": self.created,
            "key_id": self.key_id,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }

    def encode(self) -> bytes:
        """The manifest's bytes (what is signed)."""
        return (json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n").encode()

    @property
    def total_size(self) -> int:
        """Bytes of all listed files."""
        return sum(f.size for f in self.files)


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short id of a public key (16 hex digits of the SHA-256 of its raw bytes), named in refusals."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The content of manifest.sig for these manifest bytes."""
    return base64.b64encode(private_key.sign(manifest_bytes)) + b"\n"


def check_path(path: str) -> None:
    """Refuse a member path that could land outside the bundle's folder, or is not a wheel under wheels/."""
    if not path or path.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", path):
        raise BundleError("unsafe-path", f"{path!r} is an absolute path")
    parts = path.replace("\\", "/").split("/")
    if ".." in parts or "." in parts or "" in parts:
        raise BundleError("unsafe-path", f"{path!r} leaves (or is not plainly under) the bundle's folder")
    if not _WHEEL_PATH.fullmatch(path):
        raise BundleError("unsafe-path", f"{path!r} is not a wheel under wheels/ (the only files a bundle holds)")


def parse_manifest(data: bytes) -> Manifest:
    """The manifest from its bytes; BundleError(malformed) naming the field that is wrong."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError("too-large", f"manifest.json is {len(data)} bytes, over {MAX_MANIFEST_BYTES}")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError("malformed", f"manifest.json is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BundleError("malformed", "manifest.json is not a JSON object")
    if obj.get("format") != FORMAT:
        raise BundleError("malformed", f"manifest format {obj.get('format')!r}; this gateway reads format {FORMAT}")

    def text(name: str) -> str:
        value = obj.get(name)
        if not isinstance(value, str) or not value:
            raise BundleError("malformed", f"manifest.{name} must be a non-empty string")
        return value

    version = text("version")
    parse_version(version)
    hardware = obj.get("hardware")
    if not isinstance(hardware, list) or not hardware or not all(h in HARDWARE for h in hardware):
        raise BundleError("malformed", f"manifest.hardware must be a list of {', '.join(HARDWARE)}")
    files = obj.get("files")
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise BundleError("malformed", f"manifest.files must list 1 to {MAX_FILES} files")
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for i, f in enumerate(files):
        if not isinstance(f, dict) or set(f) != {"path", "sha256", "size"}:
            raise BundleError("malformed", f"manifest.files[{i}] must have exactly path, sha256 and size")
        path, digest, size = f["path"], f["sha256"], f["size"]
        if not isinstance(path, str):
            raise BundleError("malformed", f"manifest.files[{i}].path must be a string")
        check_path(path)
        if path in seen:
            raise BundleError("malformed", f"manifest lists {path!r} twice")
        seen.add(path)
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise BundleError("malformed", f"manifest.files[{i}].sha256 must be 64 lowercase hex digits")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE_BYTES:
            raise BundleError("malformed", f"manifest.files[{i}].size must be 0 to {MAX_FILE_BYTES} bytes")
        entries.append(FileEntry(path, digest, size))
    manifest = Manifest(
        version=version,
        hardware=tuple(hardware),
        created=text("created"),
        files=tuple(entries),
        key_id=str(obj.get("key_id", "")),
        product=text("product"),
    )
    if manifest.total_size > MAX_TOTAL_BYTES:
        raise BundleError(
            "too-large", f"the bundle's files add up to {manifest.total_size} bytes, over {MAX_TOTAL_BYTES}"
        )
    return manifest


def verify_signature(manifest_bytes: bytes, signature: bytes, public_key: Ed25519PublicKey) -> Manifest:
    """Check manifest.sig over manifest.json's bytes, then parse the manifest; BundleError(bad-signature)."""
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BundleError("bad-signature", "manifest.sig is not base64") from None
    try:
        public_key.verify(raw, manifest_bytes)
    except InvalidSignature:
        trusted = key_id(public_key)
        claimed = _claimed_key_id(manifest_bytes)
        if claimed and claimed != trusted:
            raise BundleError(
                "bad-signature", f"the bundle says it is signed by key {claimed}; this gateway trusts key {trusted}"
            ) from None
        raise BundleError("bad-signature", f"the manifest's signature does not verify with key {trusted}") from None
    return parse_manifest(manifest_bytes)


def _claimed_key_id(manifest_bytes: bytes) -> str:
    try:
        obj = json.loads(manifest_bytes)
    except (ValueError, UnicodeDecodeError):
        return ""
    value = obj.get("key_id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if not member.isreg():
        raise BundleError("not-regular-file", f"{member.name!r} is not a regular file")
    if member.size > limit:
        raise BundleError("too-large", f"{member.name} is {member.size} bytes, over {limit}")
    fh = tar.extractfile(member)
    if fh is None:  # pragma: no cover - a regular file always has content
        raise BundleError("malformed", f"{member.name!r} has no content")
    return fh.read(limit + 1)


def verify(
    fileobj: BinaryIO,
    public_key: Ed25519PublicKey,
    *,
    open_out: Callable[[FileEntry], IO[bytes]] | None = None,
) -> Manifest:
    """Verify a whole bundle read from ``fileobj``; each listed file is also written to ``open_out(entry)``.

    What ``open_out`` received is trustworthy only when this returns: on a BundleError the caller throws
    it away. The manifest's signature is checked before any file is read.
    """
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|*")  # noqa: SIM115 - closed below; stream mode reads once, in order
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BundleError("malformed", f"not a tar archive (plain or xz): {exc}") from None
    try:
        return _verify_stream(tar, public_key, open_out)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError("malformed", f"the archive is damaged or cut short: {exc}") from None
    finally:
        tar.close()


def _verify_stream(
    tar: tarfile.TarFile,
    public_key: Ed25519PublicKey,
    open_out: Callable[[FileEntry], IO[bytes]] | None,
) -> Manifest:
    first = tar.next()
    if first is None or first.name != MANIFEST:
        raise BundleError(
            "malformed", f"the first member must be {MANIFEST}, not {None if first is None else first.name!r}"
        )
    manifest_bytes = _read_member(tar, first, MAX_MANIFEST_BYTES)
    second = tar.next()
    if second is None or second.name != SIGNATURE:
        raise BundleError("bad-signature", f"the second member must be {SIGNATURE}: the bundle is not signed")
    signature = _read_member(tar, second, MAX_SIGNATURE_BYTES)
    manifest = verify_signature(manifest_bytes, signature, public_key)
    if manifest.product != PRODUCT:
        raise BundleError("wrong-product", f"the bundle is for {manifest.product!r}, not {PRODUCT!r}")
    listed = {f.path: f for f in manifest.files}
    seen: set[str] = set()
    for _ in range(MAX_FILES + 2):
        member = tar.next()
        if member is None:
            break
        name = member.name
        if name in (MANIFEST, SIGNATURE) or name in seen:
            raise BundleError("extra-file", f"{name!r} appears twice in the archive")
        check_path(name)
        entry = listed.get(name)
        if entry is None:
            raise BundleError("extra-file", f"{name!r} is in the archive but not in the signed manifest")
        if not member.isreg():
            raise BundleError("not-regular-file", f"{name!r} is not a regular file (link, device or folder)")
        if member.size != entry.size:
            raise BundleError("size-mismatch", f"{name}: {member.size} bytes, the manifest says {entry.size}")
        seen.add(name)
        _check_content(tar, member, entry, open_out)
    else:
        raise BundleError("too-large", f"the archive holds more than {MAX_FILES} files")
    missing = sorted(set(listed) - seen)
    if missing:
        raise BundleError("missing-file", f"{missing[0]} is in the manifest but not in the archive")
    return manifest


def _check_content(
    tar: tarfile.TarFile, member: tarfile.TarInfo, entry: FileEntry, open_out: Callable[[FileEntry], IO[bytes]] | None
) -> None:
    fh = tar.extractfile(member)
    if fh is None:  # pragma: no cover - a regular file always has content
        raise BundleError("malformed", f"{member.name!r} has no content")
    digest = hashlib.sha256()
    size = 0
    out = open_out(entry) if open_out is not None else None
    try:
        for _ in range(entry.size // CHUNK + 2):
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    if size != entry.size:
        raise BundleError("size-mismatch", f"{entry.path}: {size} bytes read, the manifest says {entry.size}")
    if digest.hexdigest() != entry.sha256:
        raise BundleError(
            "hash-mismatch", f"{entry.path}: SHA-256 {digest.hexdigest()[:16]}…, the manifest says {entry.sha256[:16]}…"
        )


# -- may this verified bundle be installed here? ---------------------------------------------------------------------


def hardware_name(machine: str) -> str:
    """Debian's architecture name for ``platform.machine()`` (aarch64 → arm64); the input when unknown."""
    return _MACHINES.get(machine.lower(), machine.lower())


def parse_version(text: str) -> Any:
    """A comparable version (PEP 440, through ``packaging`` when installed, else its common subset)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging is nearly always there (pip vendors its own copy)
        return _subset_version(text)
    try:
        return Version(text)
    except InvalidVersion:
        raise BundleError("malformed", f"version {text!r} is not a PEP 440 version") from None


def _subset_version(text: str) -> tuple[Any, ...]:
    m = _VERSION.fullmatch(text)
    if m is None:
        raise BundleError("malformed", f"version {text!r} is not a version this gateway understands (e.g. 1.2.3rc1)")
    release = tuple(int(p) for p in m.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    pre = ({"a": 0, "b": 1, "rc": 2}[m.group(2)], int(m.group(3))) if m.group(2) else (3, 0)
    post = int(m.group(4)) if m.group(4) else -1
    dev = int(m.group(5)) if m.group(5) else 1 << 62
    if m.group(5) and not m.group(2) and not m.group(4):
        pre = (-1, 0)  # 1.0.dev1 comes before 1.0a1
    return (release, pre, post, dev)


def check_applicable(manifest: Manifest, *, installed: str | None, hardware: str | None, force: bool = False) -> None:
    """Refuse a verified bundle that is for other hardware, or not newer than ``installed`` (unless ``force``).

    ``None`` for ``installed`` or ``hardware`` skips that check.
    """
    if hardware is not None and ANY_HARDWARE not in manifest.hardware and hardware not in manifest.hardware:
        raise BundleError(
            "wrong-hardware", f"the bundle is for {', '.join(manifest.hardware)}; this gateway is {hardware}"
        )
    if installed is None or force:
        return
    try:
        current = parse_version(installed)
    except BundleError:
        return  # an installed version we cannot read ("unknown" from a source tree): any signed version will do
    new = parse_version(manifest.version)
    if new < current:
        raise BundleError(
            "lower-version", f"the bundle holds {manifest.version}, older than {installed} (send force to downgrade)"
        )
    if new == current:
        raise BundleError("same-version", f"{manifest.version} is already installed (send force to reinstall)")


def hardware_of_wheels(names: Iterable[str]) -> tuple[str, ...]:
    """The hardware a set of wheels runs on, from their platform tags: ``("any",)`` when all are pure."""
    found: set[str] = set()
    for name in names:
        platform = name.removesuffix(".whl").split("-")[-1]
        for tag in platform.split("."):
            if tag == "any":
                continue
            for machine, arch in _MACHINES.items():
                if tag.endswith("_" + machine):
                    found.add(arch)
                    break
            else:
                raise BundleError("wrong-hardware", f"{name}: platform tag {tag!r} names no hardware Roost knows")
    return tuple(sorted(found)) or (ANY_HARDWARE,)
