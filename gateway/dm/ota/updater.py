"""One software update, start to switch: download, verify, install into the inactive slot, switch.

Blocking, and meant to run in a process of its own (``python -m gateway.dm.ota update ...``, started by
the DM agent's ``update`` command or by ``roost gateway update``), so a power cut, a kill or a crash at
any point is what :func:`gateway.dm.ota.slots.boot_check` repairs. Each phase is written to state.json
before its work starts; the running slot is never written to; the switch is one atomic rename.

Nothing is installed before the bundle's signature and every file's hash have been checked, and the
bundle is for this hardware and newer than what runs (unless forced).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.dm.ota import slots
from gateway.dm.ota.download import DownloadError, download, sha256_file
from wire import bundle

_LOGGER = logging.getLogger(__name__)

CRASH_ENV = "ROOST_OTA_CRASH_AT"
"""Test seam: a comma-separated list of checkpoints at which the updater SIGKILLs itself (a power cut)."""
CHECKPOINTS = ("downloading", "downloaded", "verified", "installing", "installed", "switching", "flipped", "switched")


class UpdateError(Exception):
    """An update that did not happen; ``reason`` is a short code, the message says why. Nothing was switched."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateRequest:
    """What to install and how to judge it."""

    source: str
    """An http(s) URL, or a local file's path."""
    public_key_file: Path
    hardware: str
    sha256: str | None = None
    """The whole bundle file's SHA-256, when the sender knows it (checked before the archive is opened)."""
    force: bool = False
    """Install a lower or the same version too."""
    ca_file: Path | None = None
    confirm_deadline_s: float = 300.0
    install_timeout_s: float = 900.0
    bearer_token: str | None = None


def _checkpoint(point: str) -> None:
    if point in os.environ.get(CRASH_ENV, "").split(","):
        _LOGGER.warning("update: %s=%s: killing myself here (a power cut, for a test)", CRASH_ENV, point)
        os.kill(os.getpid(), signal.SIGKILL)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The update public key (PEM) the gateway trusts; UpdateError(config) when it is missing or not Ed25519."""
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UpdateError("config", f"cannot read the update public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UpdateError("config", f"{path} is not an Ed25519 public key")
    return key


def installed_version(root: Path) -> str | None:
    """The version in the current slot, or None when there is none yet."""
    slot = slots.active_slot(root)
    info = slots.slot_info(root, slot) if slot is not None else None
    version = None if info is None else info.get("version")
    return version if isinstance(version, str) else None


def run_update(root: Path, req: UpdateRequest, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Update the slots under ``root``; returns what was done, or raises UpdateError (and records it)."""
    say = progress or (lambda _msg: None)
    public_key = load_public_key(req.public_key_file)
    with slots.update_lock(root):
        state = slots.load_state(root)
        if state["phase"] == "switched":
            raise UpdateError(
                "busy", f"version {(state.get('update') or {}).get('version')} is still on probation; try after it"
            )
        try:
            return _update(root, req, public_key, state, say)
        except UpdateError as exc:
            slots.finish(root, slots.load_state(root), "failed", str(exc))
            raise
        finally:
            shutil.rmtree(root / "staging", ignore_errors=True)


def _update(
    root: Path, req: UpdateRequest, key: Ed25519PublicKey, state: dict[str, Any], say: Callable[[str], None]
) -> dict[str, Any]:
    from_slot = slots.active_slot(root)
    to_slot = "a" if from_slot is None else slots.other(from_slot)
    from_version = installed_version(root)
    state = slots.save_state(
        root, state, "downloading",
        id=uuid.uuid4().hex[:12], source=req.source, started=time.time(), from_slot=from_slot,
        from_version=from_version, to_slot=to_slot, version=None, boots=0, deadline=None, force=req.force,
    )  # fmt: skip
    _checkpoint("downloading")
    path = _fetch(root, req, say)
    _checkpoint("downloaded")
    if req.sha256 is not None:
        actual = sha256_file(path)
        if actual != req.sha256.lower():
            path.unlink(missing_ok=True)
            raise UpdateError("hash-mismatch", f"the bundle file's SHA-256 is {actual}, the command says {req.sha256}")
    staging = root / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "wheels").mkdir(parents=True)

    def open_out(entry: bundle.FileEntry) -> IO[bytes]:
        return (staging / entry.path).open("wb")

    try:
        with path.open("rb") as fh:
            manifest = bundle.verify(fh, key, open_out=open_out)
        bundle.check_applicable(manifest, installed=from_version, hardware=req.hardware, force=req.force)
    except bundle.BundleError as exc:
        raise UpdateError(exc.reason, exc.detail) from None
    finally:
        if req.source.startswith(("http://", "https://")):
            path.unlink(missing_ok=True)  # verified wheels are in staging; a refused bundle is not kept
    say(f"verified: version {manifest.version} for {', '.join(manifest.hardware)}, {len(manifest.files)} files")
    state = slots.save_state(root, state, "verified", version=manifest.version)
    _checkpoint("verified")
    state = slots.save_state(root, state, "installing")
    _checkpoint("installing")
    say(f"installing {manifest.version} into slot {to_slot}")
    install_slot(root, to_slot, staging / "wheels", manifest.version, timeout_s=req.install_timeout_s)
    state = slots.save_state(root, state, "installed")
    _checkpoint("installed")
    deadline = time.time() + req.confirm_deadline_s
    state = slots.save_state(root, state, "switching", deadline=deadline)
    _checkpoint("switching")
    slots.switch(root, to_slot)
    _checkpoint("flipped")
    state = slots.save_state(root, state, "switched")
    _checkpoint("switched")
    say(f"switched to slot {to_slot}; it must confirm within {req.confirm_deadline_s:.0f} s")
    return {
        "phase": "switched",
        "version": manifest.version,
        "from_version": from_version,
        "slot": to_slot,
        "confirm_by": deadline,
    }


def _fetch(root: Path, req: UpdateRequest, say: Callable[[str], None]) -> Path:
    if not req.source.startswith(("http://", "https://")):
        path = Path(req.source)
        if not path.is_file():
            raise UpdateError("download", f"{path} is not a file")
        return path
    say(f"downloading {req.source}")
    headers = {"Authorization": f"Bearer {req.bearer_token}"} if req.bearer_token else None
    try:
        return download(
            req.source,
            root / "downloads" / "bundle.tar",
            ca_file=req.ca_file,
            max_bytes=bundle.MAX_TOTAL_BYTES + bundle.MAX_MANIFEST_BYTES + (1 << 20),
            headers=headers,
        )
    except DownloadError as exc:
        raise UpdateError("download", str(exc)) from None


def _run(argv: list[str], what: str, timeout_s: float) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise UpdateError("install", f"{what} did not finish within {timeout_s:.0f} s") from None
    except OSError as exc:
        raise UpdateError("install", f"{what} could not start: {exc}") from None
    if out.returncode != 0:
        tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
        raise UpdateError("install", f"{what} failed (exit {out.returncode}): {tail}")
    return out.stdout


def install_slot(root: Path, slot: str, wheels: Path, version: str, *, timeout_s: float = 900.0) -> None:
    """Make ``slot`` a fresh virtual environment holding roost==``version`` from ``wheels`` only (no index)."""
    slots.remove_slot(root, slot)
    path = slots.slot_dir(root, slot)
    path.parent.mkdir(parents=True, exist_ok=True)
    own_pip = importlib.util.find_spec("pip") is not None
    python = str(path / "bin" / "python")
    # With pip here, it installs into the new environment from outside (--python): faster, and the slot
    # carries no pip of its own. Without, the new environment gets one (ensurepip) and installs itself.
    _run(
        [sys.executable, "-m", "venv", *(["--without-pip"] if own_pip else []), str(path)], "python -m venv", timeout_s
    )
    pip = [sys.executable, "-m", "pip", "--python", python] if own_pip else [python, "-m", "pip"]
    _run(
        [*pip, "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--no-input",
         "--find-links", str(wheels), f"roost=={version}"],
        "pip install", timeout_s,
    )  # fmt: skip
    got = _run(
        [python, "-I", "-c", "import importlib.metadata as m; print(m.version('roost'))"], "the version check", 60
    ).strip()
    if got != version:
        raise UpdateError("install", f"slot {slot} holds roost {got} after installing, not {version}")
    slots.mark_complete(root, slot, {"version": version, "installed": time.time()})
