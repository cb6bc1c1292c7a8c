"""An application's OAuth2 client in the identity database: a new secret, or the client gone.

The identity package has no call for either yet, so this opens the identity database the way its admin
command line does (another connection to the same file, in a transaction). Writing through another
connection is also what makes the running identity service notice the revocations within a second (it
reloads its revocation list when the file's data version changes).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from cloud.errors import StoreError
from cloud.identity import hashing
from cloud.identity.db import IdentityDB


class ClientCredentials:
    """Replaces or deletes API clients' credentials and revokes the access tokens they were issued."""

    def __init__(self, identity_db: IdentityDB) -> None:
        self._identity = identity_db
        self._path: Path = identity_db.path

    def _write(self, sql: str, args: tuple[str, ...]) -> bool:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=10)
            try:
                conn.execute("BEGIN IMMEDIATE")
                changed = conn.execute(sql, args).rowcount == 1
                conn.execute("COMMIT")
                return changed
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"{self._path}: cannot change an API client: {exc}") from exc

    def rotate(self, client_id: str) -> str | None:
        """A new secret for the client (the old one stops working at once, its tokens within a second); None if
        there is no such client."""
        secret = hashing.new_token()
        self._identity.revoke_subject(client_id, time.time(), gateway=False)
        if not self._write(
            "UPDATE clients SET secret_hash = ? WHERE client_id = ?", (hashing.digest(secret), client_id)
        ):
            return None
        return secret

    def delete(self, client_id: str) -> bool:
        """Delete the client and revoke its tokens; False when there was no such client."""
        self._identity.revoke_subject(client_id, time.time(), gateway=False)
        return self._write("DELETE FROM clients WHERE client_id = ?", (client_id,))
