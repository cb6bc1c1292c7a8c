"""The setup PIN, stored hashed with scrypt (hashlib, stdlib) in ``state_dir/local/pin.json``.

The file (layout.md): ``{"scheme": "scrypt", "n": ..., "r": ..., "p": ..., "salt": hex, "hash": hex}``.
First boot writes it from roost.toml's ``[local] pin``; :func:`write` does the same for tests and tools.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
"""About 16 MB and 50 ms per check on a Pi-class core: slow enough for guessing, fine for a sign-in."""
MAX_N = 2**17
"""A file asking for more work than this is refused (it would let a bad file stall the gateway)."""
DKLEN = 32
MIN_PIN, MAX_PIN = 4, 64


class PinFileError(ValueError):
    """The PIN file cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class PinHash:
    """A PIN's scrypt hash and its parameters."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def matches(self, pin: str) -> bool:
        """Whether ``pin`` is the PIN (constant-time comparison)."""
        if not MIN_PIN <= len(pin) <= MAX_PIN:
            return False
        return hmac.compare_digest(_derive(pin, self.salt, self.n, self.r, self.p, len(self.digest)), self.digest)

    def as_json(self) -> dict[str, Any]:
        """The file's content."""
        return {"scheme": SCHEME, "n": self.n, "r": self.r, "p": self.p, "salt": self.salt.hex(),
                "hash": self.digest.hex()}  # fmt: skip


def check_pin(pin: str) -> str:
    """A PIN a technician can type: 4 to 64 characters, no spaces at the ends; ValueError otherwise."""
    if pin != pin.strip() or not MIN_PIN <= len(pin) <= MAX_PIN:
        raise ValueError(f"a setup PIN has {MIN_PIN} to {MAX_PIN} characters and no spaces at its ends")
    return pin


def _derive(pin: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:  # noqa: PLR0917 - scrypt's own
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * 1024 * 1024)


def hash_pin(pin: str) -> PinHash:
    """A new salted hash of ``pin``."""
    salt = secrets.token_bytes(16)
    return PinHash(N, R, P, salt, _derive(check_pin(pin), salt, N, R, P, DKLEN))


def parse(doc: object) -> PinHash:
    """A PIN file's JSON as a PinHash; PinFileError naming the field that is wrong."""
    if not isinstance(doc, dict):
        raise PinFileError("not a JSON object")
    if doc.get("scheme") != SCHEME:
        raise PinFileError(f"scheme must be {SCHEME!r}, not {doc.get('scheme')!r}")
    values: dict[str, int] = {}
    for key in ("n", "r", "p"):
        v = doc.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PinFileError(f"{key} must be a positive whole number")
        values[key] = v
    n = values["n"]
    if n < 2 or n & (n - 1) or n > MAX_N:
        raise PinFileError(f"n must be a power of 2 up to {MAX_N}")
    if values["r"] > 32 or values["p"] > 16:
        raise PinFileError("r must be at most 32 and p at most 16")
    try:
        salt, digest = bytes.fromhex(str(doc.get("salt"))), bytes.fromhex(str(doc.get("hash")))
    except ValueError:
        raise PinFileError("salt and hash must be hex") from None
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        raise PinFileError("salt must be at least 8 bytes and hash 16 to 64 bytes")
    return PinHash(n, values["r"], values["p"], salt, digest)


def load(path: Path) -> PinHash | None:
    """The PIN's hash at ``path``; None when no PIN is set (no file); PinFileError when the file is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PinFileError(f"cannot be read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PinFileError(f"not JSON: {exc}") from None
    return parse(doc)


def write(path: Path, pin: str) -> PinHash:
    """Hash ``pin`` and write it to ``path`` (mode 0600, atomically)."""
    hashed = hash_pin(pin)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(hashed.as_json(), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return hashed
