"""Secrets at rest: argon2id for operator passwords, SHA-256 for the server's own random tokens.

Refresh tokens, device codes, claim tokens and client secrets are 256-bit random strings the server makes:
no dictionary holds them, so a fast hash is as safe as a slow one and keeps lookups by hash cheap. Passwords
that people choose get the memory-hard KDF.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()  # argon2id, RFC 9106's second recommended parameter set (64 MiB, t=3, p=4)
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    """The argon2id hash of an operator password (PHC string)."""
    return _HASHER.hash(password)


def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the stored argon2 hash."""
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored)


def new_token(nbytes: int = 32) -> str:
    """A random URL-safe token (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def digest(token: str) -> str:
    """The SHA-256 hex digest a random token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_digest(stored: str, token: str) -> bool:
    """Constant-time comparison of a stored digest with a presented token."""
    return secrets.compare_digest(stored, digest(token))


USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels, no look-alikes (0/O, 1/I)


def new_user_code() -> str:
    """An 8-character user code shown as ``XXXX-XXXX`` (20^8 ≈ 2^34.6 codes)."""
    chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def normalize_user_code(text: str) -> str:
    """A user code as typed (any case, with or without '-' or spaces) in its stored ``XXXX-XXXX`` form."""
    chars = "".join(c for c in text.upper() if c.isalnum())
    return f"{chars[:4]}-{chars[4:]}" if len(chars) == 8 else chars
