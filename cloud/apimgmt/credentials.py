"""An application's OAuth2 client in the identity database: a new secret, or the client gone (tokens revoked)."""

from __future__ import annotations

import time

from cloud.identity import hashing
from cloud.identity.db import IdentityDB


class ClientCredentials:
    """Replaces or deletes API clients' credentials and revokes the access tokens they were issued."""

    def __init__(self, identity_db: IdentityDB) -> None:
        self._identity = identity_db

    def rotate(self, client_id: str) -> str | None:
        """A new secret for the client (the old one stops working at once, its tokens within a second); None if
        there is no such client."""
        secret = hashing.new_token()
        self._identity.revoke_subject(client_id, time.time(), gateway=False)
        if not self._identity.set_client_secret(client_id, hashing.digest(secret)):
            return None
        return secret

    def delete(self, client_id: str) -> bool:
        """Delete the client and revoke its tokens; False when there was no such client."""
        self._identity.revoke_subject(client_id, time.time(), gateway=False)
        return self._identity.delete_client(client_id)
