"""The OpenID Connect tables, in the identity database (their own connection; WAL lets it share the file).

oidc_clients    registered clients: redirect URIs (absolute, or a path on the cloud's own origin), the
                secret's hash (None: a public client using PKCE)
oidc_codes      authorization codes by hash: client, redirect URI, scope, nonce, PKCE challenge, operator,
                the session that approved them, when used, and the token family they gave
oidc_links      which token families and access tokens a dashboard session started (sign-out revokes them)
oidc_logins     sign-ins waiting at an external provider: state (by hash), nonce, PKCE verifier, and the
                authorization request to resume

Blocking (SQLite): callers run it on a worker thread. Codes and pending sign-ins are one-time: using one is
an atomic update, so of two racing uses one loses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oidc_clients (
    client_id      TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    secret_hash    TEXT,
    redirect_uris  TEXT NOT NULL,
    logout_uris    TEXT NOT NULL,
    created        REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS oidc_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    challenge      TEXT NOT NULL,
    method         TEXT NOT NULL,
    username       TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    auth_time      REAL NOT NULL,
    session_hash   TEXT,
    created        REAL NOT NULL,
    expires        REAL NOT NULL,
    used           REAL,
    family         TEXT
);
CREATE INDEX IF NOT EXISTS oidc_codes_by_nonce ON oidc_codes (client_id, nonce);
CREATE TABLE IF NOT EXISTS oidc_links (
    session_hash   TEXT NOT NULL,
    sid            TEXT NOT NULL,
    family         TEXT,
    jti            TEXT,
    expires        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS oidc_links_by_session ON oidc_links (session_hash);
CREATE INDEX IF NOT EXISTS oidc_links_by_sid ON oidc_links (sid);
CREATE INDEX IF NOT EXISTS oidc_links_by_family ON oidc_links (family);
CREATE TABLE IF NOT EXISTS oidc_logins (
    state_hash     TEXT PRIMARY KEY,
    nonce          TEXT NOT NULL,
    verifier       TEXT NOT NULL,
    resume         TEXT NOT NULL,
    created        REAL NOT NULL,
    expires        REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class ClientRow:
    """A registered OpenID client."""

    client_id: str
    name: str
    secret_hash: str | None
    redirect_uris: tuple[str, ...]
    logout_uris: tuple[str, ...]
    created: float


@dataclass(frozen=True, slots=True)
class CodeRow:
    """An authorization code (by hash) and what it was issued for."""

    code_hash: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    challenge: str
    method: str
    username: str
    tenant: str
    auth_time: float
    session_hash: str | None
    created: float
    expires: float
    used: float | None = None
    family: str | None = None


@dataclass(frozen=True, slots=True)
class LoginRow:
    """A sign-in waiting at the external provider."""

    state_hash: str
    nonce: str
    verifier: str
    resume: dict[str, str]
    created: float
    expires: float


class OidcStore:
    """The OpenID tables of one identity database; thread-safe (a short-lived connection per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    @contextlib.contextmanager
    def _connected(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the OpenID tables: {exc}") from exc
        try:
            conn.execute("PRAGMA synchronous=FULL")
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                self._ready = True
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: the OpenID tables failed: {exc}") from exc
        finally:
            conn.close()

    def close(self) -> None:
        """Nothing to close (each call opens and closes its own connection); kept for symmetry."""

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._connected() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._connected() as conn:
            row: tuple[Any, ...] | None = conn.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connected() as conn:
            return conn.execute(sql, args).fetchall()

    # -- clients -----------------------------------------------------------------------------------------------

    def put_client(self, row: ClientRow) -> None:
        """Register a client, or replace its redirect URIs, name and secret; ValueError when the id is an
        operator's name (a token whose ``sub`` equals its ``client_id`` would pass for the client's own) or
        an API client's id (which one would the token endpoint mean?)."""
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM operators WHERE username = ?", (row.client_id,)).fetchone():
                raise ValueError(f"{row.client_id!r} is an operator's name: choose another client id")
            if conn.execute("SELECT 1 FROM clients WHERE client_id = ?", (row.client_id,)).fetchone():
                raise ValueError(f"{row.client_id!r} is an API client's id: choose another client id")
            conn.execute(
                "INSERT INTO oidc_clients VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET"
                " name = excluded.name, secret_hash = excluded.secret_hash, redirect_uris = excluded.redirect_uris,"
                " logout_uris = excluded.logout_uris",
                (
                    row.client_id,
                    row.name,
                    row.secret_hash,
                    json.dumps(list(row.redirect_uris)),
                    json.dumps(list(row.logout_uris)),
                    row.created,
                ),
            )

    def client(self, client_id: str) -> ClientRow | None:
        """A registered client, or None."""
        row = self._one("SELECT * FROM oidc_clients WHERE client_id = ?", (client_id,))
        if row is None:
            return None
        cid, name, secret_hash, redirects, logouts, created = row
        return ClientRow(cid, name, secret_hash, tuple(json.loads(redirects)), tuple(json.loads(logouts)), created)

    def clients(self) -> list[ClientRow]:
        """Every registered client, by id."""
        ids = [r[0] for r in self._all("SELECT client_id FROM oidc_clients ORDER BY client_id")]
        return [c for c in (self.client(i) for i in ids) if c is not None]

    def delete_client(self, client_id: str) -> bool:
        """Remove a client; False when unknown."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM oidc_clients WHERE client_id = ?", (client_id,)).rowcount == 1

    # -- authorization codes -----------------------------------------------------------------------------------

    def add_code(self, row: CodeRow) -> None:
        """Record a new authorization code (and forget codes long expired)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM oidc_codes WHERE expires < ?", (row.created - 86400,))
            conn.execute(
                "INSERT INTO oidc_codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    row.code_hash,
                    row.client_id,
                    row.redirect_uri,
                    row.scope,
                    row.nonce,
                    row.challenge,
                    row.method,
                    row.username,
                    row.tenant,
                    row.auth_time,
                    row.session_hash,
                    row.created,
                    row.expires,
                ),
            )

    def code(self, code_hash: str) -> CodeRow | None:
        """A code by hash, used or not."""
        row = self._one("SELECT * FROM oidc_codes WHERE code_hash = ?", (code_hash,))
        return CodeRow(*row) if row else None

    def use_code(self, code_hash: str, now: float) -> bool:
        """Mark a live code used; False when it was used already or has expired."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE oidc_codes SET used = ? WHERE code_hash = ? AND used IS NULL AND expires > ?",
                (now, code_hash, now),
            )
            return cur.rowcount == 1

    def set_code_family(self, code_hash: str, family: str) -> None:
        """Note the token family a code gave (a replay of the code revokes it)."""
        with self._tx() as conn:
            conn.execute("UPDATE oidc_codes SET family = ? WHERE code_hash = ?", (family, code_hash))

    def nonce_seen(self, client_id: str, nonce: str, now: float) -> bool:
        """Whether a code not long expired was issued to this client with this nonce."""
        row = self._one(
            "SELECT 1 FROM oidc_codes WHERE client_id = ? AND nonce = ? AND expires > ?", (client_id, nonce, now - 3600)
        )
        return row is not None

    # -- sessions and their tokens -----------------------------------------------------------------------------

    def link(self, session_hash: str, *, family: str | None = None, jti: str | None = None, expires: float) -> None:
        """Note that a session started a token family or an access token."""
        with self._tx() as conn:
            conn.execute("DELETE FROM oidc_links WHERE expires < ?", (time.time() - 86400,))
            conn.execute(
                "INSERT INTO oidc_links VALUES (?, ?, ?, ?, ?)",
                (session_hash, public_sid(session_hash), family, jti, expires),
            )

    def linked(self, session_hash: str) -> tuple[list[str], list[str]]:
        """(families, access-token ids) a session started."""
        rows = self._all("SELECT family, jti FROM oidc_links WHERE session_hash = ?", (session_hash,))
        return [r[0] for r in rows if r[0]], [r[1] for r in rows if r[1]]

    def session_of_family(self, family: str) -> str | None:
        """The session hash that started a token family, or None (not started by a session)."""
        row = self._one("SELECT session_hash FROM oidc_links WHERE family = ? LIMIT 1", (family,))
        return str(row[0]) if row else None

    def session_of_sid(self, sid: str) -> str | None:
        """The session hash whose public ``sid`` (see :func:`public_sid`) this is, when it started tokens."""
        row = self._one("SELECT session_hash FROM oidc_links WHERE sid = ? LIMIT 1", (sid,))
        return str(row[0]) if row else None

    def purge(self, now: float) -> None:
        """Forget links, codes and pending sign-ins that can matter no more."""
        with self._tx() as conn:
            conn.execute("DELETE FROM oidc_links WHERE expires < ?", (now - 86400,))
            conn.execute("DELETE FROM oidc_codes WHERE expires < ?", (now - 86400,))
            conn.execute("DELETE FROM oidc_logins WHERE expires < ?", (now,))

    # -- sign-ins waiting at an external provider --------------------------------------------------------------

    def add_login(self, row: LoginRow) -> None:
        """Record a sign-in sent to the external provider."""
        with self._tx() as conn:
            conn.execute("DELETE FROM oidc_logins WHERE expires < ?", (row.created,))
            conn.execute(
                "INSERT INTO oidc_logins VALUES (?, ?, ?, ?, ?, ?)",
                (row.state_hash, row.nonce, row.verifier, json.dumps(row.resume), row.created, row.expires),
            )

    def take_login(self, state_hash: str, now: float) -> LoginRow | None:
        """The pending sign-in with this state, removed (one use); None when unknown or expired."""
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM oidc_logins WHERE state_hash = ?", (state_hash,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM oidc_logins WHERE state_hash = ?", (state_hash,))
        state, nonce, verifier, resume, created, expires = row
        if expires <= now:
            return None
        return LoginRow(state, nonce, verifier, dict(json.loads(resume)), created, expires)


def public_sid(session_hash: str) -> str:
    """The ``sid`` claim of a session: derived from its stored hash, useless for signing in."""
    return hashlib.sha256(f"sid:{session_hash}".encode()).hexdigest()[:32]
