"""``roost bundle keygen|build|verify``: make and check signed software-update bundles (docs/ota.md).

Run on the operator's machine, never on a gateway: ``keygen`` writes the update key pair (the private key
mode 0600), ``build`` packs wheels with a signed manifest, ``verify`` checks a bundle the way a gateway
does and exits non-zero with the reason when anything does not match.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_REFUSED = 3
EXIT_ERROR = 1
ROOT = Path(__file__).resolve().parents[1]


def add_parser(sub: Any) -> None:
    """Add ``roost bundle ...``."""
    p = sub.add_parser("bundle", help="make and check signed software-update bundles")
    acts = p.add_subparsers(dest="bundle_action", required=True, metavar="ACTION")
    kg = acts.add_parser("keygen", help="write a new update key pair: PREFIX.key (private, 0600) and PREFIX.pub")
    kg.add_argument("--out", required=True, help="PREFIX of the two files")
    kg.add_argument("--force", action="store_true", help="overwrite existing files")
    kg.set_defaults(func=keygen_command)
    b = acts.add_parser("build", help="pack wheels and a signed manifest into a bundle")
    b.add_argument("--key", required=True, type=Path, help="the private update key (PREFIX.key)")
    b.add_argument("--out", required=True, type=Path, help="the bundle file to write")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--wheels", type=Path, help="a folder of wheels: roost's and the dependencies to ship")
    src.add_argument(
        "--from-checkout",
        nargs="?",
        const=str(ROOT),
        metavar="PATH",
        help="build roost's wheel from this source tree (default: the one this command runs from)",
    )
    b.add_argument(
        "--with-deps",
        action="store_true",
        help="with --from-checkout: add the dependencies' wheels too (pip, pinned by constraints.txt; needs an index)",
    )
    b.add_argument(
        "--hardware", action="append", default=None, help="amd64, arm64, armhf or any (default: from wheels)"
    )
    b.add_argument("--xz", action="store_true", help="compress the archive (wheels are compressed already)")
    b.set_defaults(func=build_command)
    v = acts.add_parser("verify", help="check a bundle's signature, hashes and contents like a gateway does")
    v.add_argument("file", type=Path)
    v.add_argument("--pubkey", required=True, type=Path, help="the public update key (PREFIX.pub)")
    v.add_argument("--hardware", default=None, help="also refuse a bundle that is not for this hardware")
    v.add_argument("--installed", default=None, help="also refuse a bundle not newer than this version")
    v.add_argument("--force", action="store_true", help="with --installed: allow a lower or the same version")
    v.set_defaults(func=verify_command)


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"roost bundle: {message}", file=sys.stderr)
    return code


def keygen_command(args: argparse.Namespace) -> int:
    """Write PREFIX.key (PKCS#8 PEM, 0600) and PREFIX.pub (SubjectPublicKeyInfo PEM)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    from wire.bundle import key_id

    key_path, pub_path = Path(args.out + ".key"), Path(args.out + ".pub")
    for path in (key_path, pub_path):
        if path.exists() and not args.force:
            return _fail(f"{path} exists; pass --force to overwrite it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    print(json.dumps({"private_key": str(key_path), "public_key": str(pub_path), "key_id": key_id(key.public_key())}))
    return 0


def _load_private(path: Path) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def _checkout_wheels(path: Path, out: Path, with_deps: bool) -> None:
    argv = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-w", str(out)]
    constraints = path / "constraints.txt"
    if with_deps and constraints.exists():
        # pip refuses a constraint on the project being built; the rest pins the dependencies.
        pins = [ln for ln in constraints.read_text().splitlines() if not ln.lstrip().startswith(("#", "-e", "roost"))]
        (out.parent / "constraints.txt").write_text("\n".join(pins) + "\n")
        argv += ["-c", str(out.parent / "constraints.txt")]
    argv += [] if with_deps else ["--no-deps"]
    subprocess.run([*argv, str(path)], check=True, timeout=1800)


def build_bundle(
    wheels: list[Path], key: Any, out: Path, *, hardware: list[str] | None = None, xz: bool = False
) -> dict[str, Any]:
    """Write a signed bundle of ``wheels`` to ``out``; returns its manifest as JSON."""
    from wire import bundle

    roost = [w for w in wheels if w.name.split("-")[0].lower() == "roost"]
    if len(roost) != 1:
        raise ValueError(f"a bundle holds exactly one roost wheel; found {len(roost)}")
    version = roost[0].name.split("-")[1]
    bundle.parse_version(version)
    entries = []
    for w in sorted(wheels, key=lambda p: p.name):
        data = w.read_bytes()
        entries.append(bundle.FileEntry(f"wheels/{w.name}", hashlib.sha256(data).hexdigest(), len(data)))
        bundle.check_path(f"wheels/{w.name}")
    hw = tuple(sorted(set(hardware))) if hardware else bundle.hardware_of_wheels(w.name for w in wheels)
    manifest = bundle.Manifest(
        version=version,
        hardware=hw,
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        files=tuple(entries),
        key_id=bundle.key_id(key.public_key()),
    )
    bundle.parse_manifest(manifest.encode())  # the same checks a gateway makes (hardware names, sizes)
    manifest_bytes = manifest.encode()
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tmp, "w:xz" if xz else "w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))

        add(bundle.MANIFEST, manifest_bytes)
        add(bundle.SIGNATURE, bundle.sign(manifest_bytes, key))
        by_path = {f"wheels/{w.name}": w for w in wheels}
        for entry in entries:
            add(entry.path, by_path[entry.path].read_bytes())
    os.replace(tmp, out)
    return manifest.to_json()


def build_command(args: argparse.Namespace) -> int:
    """``roost bundle build``."""
    try:
        key = _load_private(args.key)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot load the private key: {exc}")
    with tempfile.TemporaryDirectory(prefix="roost-bundle-") as tmp:
        if args.wheels is not None:
            folder = args.wheels
        else:
            folder = Path(tmp) / "wheels"
            folder.mkdir()
            try:
                _checkout_wheels(Path(args.from_checkout), folder, args.with_deps)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
                return _fail(f"pip wheel failed: {exc}")
        wheels = sorted(folder.glob("*.whl"))
        if not wheels:
            return _fail(f"no wheels in {folder}")
        try:
            manifest = build_bundle(wheels, key, args.out, hardware=args.hardware, xz=args.xz)
        except (OSError, ValueError) as exc:
            return _fail(str(exc))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(json.dumps({"bundle": str(args.out), "sha256": digest, "manifest": manifest}, indent=1))
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """``roost bundle verify``: 0 and the manifest when it matches, 3 and the reason when it does not."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from wire import bundle

    try:
        pub = load_pem_public_key(args.pubkey.read_bytes())
    except (OSError, ValueError) as exc:
        return _fail(f"cannot load the public key: {exc}")
    if not isinstance(pub, Ed25519PublicKey):
        return _fail(f"{args.pubkey} is not an Ed25519 public key")
    try:
        with args.file.open("rb") as fh:
            manifest = bundle.verify(fh, pub)
        if args.hardware is not None or args.installed is not None:
            bundle.check_applicable(manifest, installed=args.installed, hardware=args.hardware, force=args.force)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc}")
    except bundle.BundleError as exc:
        return _fail(f"{args.file}: refused: {exc}", EXIT_REFUSED)
    print(json.dumps({"ok": True, "manifest": manifest.to_json()}, indent=1))
    return 0
