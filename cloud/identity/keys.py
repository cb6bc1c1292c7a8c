"""ES256 signing keys (P-256) with key ids, the JWKS document, and rotation without downtime.

The newest key signs; the keys it replaced stay in the JWKS, and keep verifying, until every token they
signed has expired (the access-token lifetime plus the clock leeway after their retirement); then they go.
Keys are private JWKs in the identity database, which only its owner can read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from cloud.identity.db import IdentityDB, KeyRecord

_LOGGER = logging.getLogger(__name__)

ALG = "ES256"


class KeyRing:
    """The signing keys of one identity database: sign with the current one, verify with any published one."""

    def __init__(self, db: IdentityDB, *, rotation_s: float, keep_retired_s: float) -> None:
        self._db = db
        self._rotation_s = rotation_s
        self._keep_retired_s = keep_retired_s
        self._lock = threading.Lock()
        self._signing: ECKey | None = None
        self._signing_created = 0.0
        self._public = KeySet([])
        self._kids: frozenset[str] = frozenset()

    def load(self) -> None:
        """Read the keys from the database; make the first key, or a new one when the current one is due."""
        records = self._db.keys()
        current = next((k for k in records if k.retired is None), None)
        now = time.time()
        if current is None or (self._rotation_s > 0 and now - current.created >= self._rotation_s):
            self.rotate()
            return
        self._install(records)

    def rotate(self) -> str:
        """Make a new signing key (the old ones keep verifying); drop keys no valid token needs; the new kid."""
        now = time.time()
        key = ECKey.generate_key(
            "P-256",
            {"alg": ALG, "use": "sig", "kid": f"{time.strftime('%Y%m%d', time.gmtime(now))}-{uuid.uuid4().hex[:8]}"},
        )
        record = KeyRecord(kid=str(key.kid), jwk=_dumps(key.as_dict(private=True)), created=now)
        self._db.add_key(record)
        dropped = self._db.drop_keys_retired_before(now - self._keep_retired_s)
        _LOGGER.info("new signing key %s%s", record.kid, f" ({dropped} old key(s) dropped)" if dropped else "")
        self._install(self._db.keys())
        return record.kid

    def _install(self, records: list[KeyRecord]) -> None:
        signing: ECKey | None = None
        created = 0.0
        public: list[ECKey] = []
        for rec in records:
            key = ECKey.import_key(_loads(rec.jwk))
            public.append(ECKey.import_key(key.as_dict(private=False)))
            if rec.retired is None and signing is None:
                signing, created = key, rec.created
        if signing is None:
            raise RuntimeError("no current signing key")  # pragma: no cover - load() makes one
        with self._lock:
            self._signing, self._signing_created = signing, created
            self._public = KeySet(public)  # type: ignore[arg-type]
            self._kids = frozenset(str(k.kid) for k in public)

    def reload(self) -> None:
        """Pick up keys another process added or dropped."""
        self._install(self._db.keys())

    @property
    def current_kid(self) -> str:
        """The kid of the key that signs."""
        return str(self._need_signing().kid)

    @property
    def kids(self) -> frozenset[str]:
        """Kids of every published (verifying) key."""
        return self._kids

    def _need_signing(self) -> ECKey:
        if self._signing is None:
            raise RuntimeError("the key ring is not loaded")
        return self._signing

    def rotation_due(self, now: float) -> bool:
        """Whether the current key has signed for its whole rotation period."""
        return self._rotation_s > 0 and now - self._signing_created >= self._rotation_s

    def sign(self, claims: dict[str, Any], *, typ: str = "at+jwt") -> str:
        """A compact JWS of ``claims`` signed with the current key (header: alg, kid, typ)."""
        key = self._need_signing()
        return jwt.encode({"alg": ALG, "kid": str(key.kid), "typ": typ}, claims, key, algorithms=[ALG])

    def public_key_set(self) -> KeySet:
        """The verifying keys (current and previous) as a joserfc KeySet."""
        return self._public

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: the public halves of the current and the previous keys."""
        return dict(self._public.as_dict(private=False))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _loads(text: str) -> Any:
    return json.loads(text)
