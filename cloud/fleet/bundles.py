"""Update bundles in the cloud: an uploaded bundle is checked, re-signed with the cloud's update key, and kept.

The cloud is the signer (docs/ota.md, "Campaigns"): an operator allowed to ``run_campaigns`` uploads a
bundle (made with ``roost bundle build``; its own signature, if any, is dropped), the cloud rewrites the
manifest with its own ``key_id``, signs it with ``[updates] key_file``, and then verifies the result exactly
as a gateway will (:func:`wire.bundle.verify` with the cloud's public key: safe paths, sizes, SHA-256s,
nothing unlisted, nothing missing). Gateways trust the cloud's public key (``update.pub``).

Kept as ``{folder}/{tenant}/{name}`` (the bundle) with ``{name}.json`` beside it (what the list shows);
``name`` is ``roost-{version}-{hardware}.bundle``. Uploading the same bundle again is a no-op; another
bundle under the same name is refused (a gateway resuming a download must find the same bytes).

A campaign hands each gateway a download link with a *grant*: an HMAC of the tenant, bundle name and expiry
under a key derived from the update key, so a gateway (whose updater sends no bearer token) may fetch
that one bundle until the grant expires, and resume with ``Range``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from wire import bundle
from wire.names import check_tenant

MAX_UPLOAD_BYTES = bundle.MAX_TOTAL_BYTES + bundle.MAX_MANIFEST_BYTES + (1 << 20)
NAME = re.compile(r"roost-[A-Za-z0-9.+!_-]{1,64}-[a-z0-9+]{2,40}\.bundle")


class BundleRefused(ValueError):
    """An upload refused; ``reason`` is wire.bundle's short code (or ``conflict``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """One stored bundle, as the list shows it."""

    name: str
    version: str
    hardware: list[str]
    sha256: str
    size: int
    created: str
    uploaded_at: float
    uploaded_by: str
    key_id: str

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON form."""
        return asdict(self)


def load_key(path: Path) -> Ed25519PrivateKey:
    """The cloud's private update key from its PEM file (``roost bundle keygen``)."""
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


class BundleStore:
    """Uploaded bundles per tenant, signed by the cloud; download grants. Blocking: call from a thread."""

    def __init__(self, folder: Path, key: Ed25519PrivateKey) -> None:
        self.folder = folder
        self._key = key
        self.key_id = bundle.key_id(key.public_key())
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        self._grant_key = hashlib.sha256(b"roost-bundle-grant\0" + raw).digest()

    def _dir(self, tenant: str) -> Path:
        return self.folder / check_tenant(tenant)

    # -- upload ----------------------------------------------------------------------------------------------------

    def add(self, tenant: str, upload: IO[bytes], *, by: str) -> tuple[BundleInfo, bool]:
        """Check, re-sign and keep an uploaded bundle; (its info, whether it is new). BundleRefused when refused."""
        folder = self._dir(tenant)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                manifest = self._resign(upload, out)
            with tmp.open("rb") as fh:
                try:
                    checked = bundle.verify(fh, self._key.public_key())  # what a gateway will check
                except bundle.BundleError as exc:
                    raise BundleRefused(exc.reason, exc.detail) from None
            name = f"roost-{manifest.version}-{'+'.join(manifest.hardware)}.bundle"
            if not NAME.fullmatch(name):
                raise BundleRefused("malformed", f"version {manifest.version!r} makes no usable bundle name")
            digest, size = _digest(tmp)
            dest = folder / name
            existing = self.get(tenant, name)
            if existing is not None:
                if _manifest_files(dest) == _manifest_files_of(checked):
                    return existing, False
                raise BundleRefused("conflict", f"{name} exists with other contents: upload another version")
            info = BundleInfo(
                name=name, version=checked.version, hardware=list(checked.hardware), sha256=digest, size=size,
                created=checked.created, uploaded_at=time.time(), uploaded_by=by, key_id=self.key_id,
            )  # fmt: skip
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            meta = dest.with_name(name + ".json")
            meta.with_name(meta.name + ".tmp").write_text(json.dumps(info.as_dict(), indent=1))
            os.replace(meta.with_name(meta.name + ".tmp"), meta)
            return info, True
        finally:
            tmp.unlink(missing_ok=True)

    def _resign(self, upload: IO[bytes], out: IO[bytes]) -> bundle.Manifest:
        """Copy the upload to ``out`` with the manifest's key_id and signature replaced by the cloud's."""
        try:
            src = tarfile.open(fileobj=upload, mode="r|*")  # noqa: SIM115 - closed below; one pass, in order
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise BundleRefused("malformed", f"not a tar archive (plain or xz): {exc}") from None
        try:
            with src, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
                first = src.next()
                if first is None or first.name != bundle.MANIFEST or not first.isreg():
                    raise BundleRefused("malformed", f"the first member must be {bundle.MANIFEST}")
                fh = src.extractfile(first)
                assert fh is not None
                data = fh.read(bundle.MAX_MANIFEST_BYTES + 1)
                try:
                    uploaded = bundle.parse_manifest(data)
                except bundle.BundleError as exc:
                    raise BundleRefused(exc.reason, exc.detail) from None
                manifest = bundle.Manifest(
                    version=uploaded.version, hardware=uploaded.hardware, created=uploaded.created,
                    files=uploaded.files, key_id=self.key_id, product=uploaded.product,
                )  # fmt: skip
                encoded = manifest.encode()
                _add(dst, bundle.MANIFEST, io.BytesIO(encoded), len(encoded))
                signature = bundle.sign(encoded, self._key)
                _add(dst, bundle.SIGNATURE, io.BytesIO(signature), len(signature))
                for _ in range(bundle.MAX_FILES + 2):
                    member = src.next()
                    if member is None:
                        break
                    if member.name == bundle.SIGNATURE:
                        continue  # the uploader's signature: replaced by the cloud's
                    bundle.check_path(member.name)
                    if not member.isreg():
                        raise BundleRefused("not-regular-file", f"{member.name!r} is not a regular file")
                    content = src.extractfile(member)
                    assert content is not None
                    _add(dst, member.name, content, member.size)
                else:
                    raise BundleRefused("too-large", f"the archive holds more than {bundle.MAX_FILES} files")
        except bundle.BundleError as exc:
            raise BundleRefused(exc.reason, exc.detail) from None
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BundleRefused("malformed", f"the archive is damaged or cut short: {exc}") from None
        return manifest

    # -- reading ---------------------------------------------------------------------------------------------------

    def list(self, tenant: str) -> list[BundleInfo]:
        """The tenant's bundles, newest upload first."""
        folder = self._dir(tenant)
        items = [self.get(tenant, p.name.removesuffix(".json")) for p in folder.glob("*.bundle.json")]
        return sorted((i for i in items if i is not None), key=lambda i: i.uploaded_at, reverse=True)

    def get(self, tenant: str, name: str) -> BundleInfo | None:
        """One bundle's info, or None (also for a name that is not a bundle name)."""
        if not NAME.fullmatch(name):
            return None
        meta = self._dir(tenant) / (name + ".json")
        try:
            return BundleInfo(**json.loads(meta.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def path(self, tenant: str, name: str) -> Path | None:
        """The bundle file, or None."""
        if self.get(tenant, name) is None:
            return None
        path = self._dir(tenant) / name
        return path if path.is_file() else None

    # -- download grants -------------------------------------------------------------------------------------------

    def grant(self, tenant: str, name: str, expires: int) -> str:
        """A grant to download ``name`` of ``tenant`` until ``expires`` (epoch seconds)."""
        msg = f"{tenant}\0{name}\0{expires}".encode()
        return hmac.new(self._grant_key, msg, hashlib.sha256).hexdigest()[:40]

    def check_grant(self, tenant: str, name: str, expires: int, grant: str, now: float | None = None) -> bool:
        """Whether ``grant`` is one this cloud made for this bundle and has not expired."""
        if expires < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self.grant(tenant, name, expires), grant)


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    tar.addfile(info, data)


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for _ in range(MAX_UPLOAD_BYTES // bundle.CHUNK + 2):
            chunk = fh.read(bundle.CHUNK)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _manifest_files_of(manifest: bundle.Manifest) -> list[tuple[str, str, int]]:
    return [(f.path, f.sha256, f.size) for f in manifest.files]


def _manifest_files(path: Path) -> list[tuple[str, str, int]] | None:
    try:
        with tarfile.open(path, "r|*") as tar:
            first = tar.next()
            fh = tar.extractfile(first) if first is not None else None
            if fh is None:
                return None
            return _manifest_files_of(bundle.parse_manifest(fh.read(bundle.MAX_MANIFEST_BYTES + 1)))
    except (tarfile.TarError, OSError, bundle.BundleError):
        return None
