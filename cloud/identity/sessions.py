"""Operators' dashboard sessions: an opaque id in a cookie, stored hashed, with a lifetime, an idle timeout and
a CSRF token; ended by signing out or by an administrator.

    sessions = Sessions(db, ttl_s=12 * 3600, idle_s=1800)
    new = sessions.start(operator, source_ip="192.0.2.7")    # new.session_id and new.csrf_token go to the browser
    active = sessions.lookup(new.session_id)                 # None once expired, idle too long, ended or disabled
    sessions.check_csrf(active, header_value)                # for unsafe methods
    sessions.end(new.session_id)

Each lookup reads the operator again, so a changed role or a disabled account takes effect on the next
request. Blocking (SQLite): callers run it on a worker thread.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from cloud.identity import hashing
from cloud.identity.db import IdentityDB, OperatorRecord, SessionRecord

TOUCH_EVERY_S = 15.0
"""Write ``last_seen`` at most this often per session (not on every request)."""


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just started: its id and CSRF token (secrets, shown to the browser once) and its record."""

    session_id: str
    csrf_token: str
    record: SessionRecord


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """A live session and the operator it belongs to (as the database says now)."""

    record: SessionRecord
    operator: OperatorRecord

    def csrf_ok(self, presented: str | None) -> bool:
        """Whether ``presented`` is this session's CSRF token (constant time)."""
        return bool(presented) and hashing.same_digest(self.record.csrf_hash, presented or "")


class Sessions:
    """Starts, finds and ends operators' sessions in the identity database."""

    def __init__(self, db: IdentityDB, *, ttl_s: float, idle_s: float, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self._clock = clock
        self._on_end: list[Callable[[str], None]] = []
        self._on_token: list[Callable[[str, str, float], None]] = []

    def on_end(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(id_hash)`` when a session is ended by :meth:`end` (its tokens are revoked there)."""
        self._on_end.append(listener)

    def start(self, operator: OperatorRecord, *, source_ip: str | None = None) -> NewSession:
        """A new session for ``operator`` (whose password was just checked)."""
        now = self._clock()
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        rec = SessionRecord(
            id_hash=hashing.digest(session_id),
            username=operator.username,
            tenant=operator.tenant,
            csrf_hash=hashing.digest(csrf),
            created=now,
            last_seen=now,
            expires=now + self.ttl_s,
            source_ip=source_ip,
        )
        self._db.add_session(rec)
        return NewSession(session_id, csrf, rec)

    def lookup(self, session_id: str, *, touch: bool = True) -> ActiveSession | None:
        """The live session with this id, or None (unknown, ended, expired, idle too long, operator gone)."""
        if not session_id or len(session_id) > 256:
            return None
        rec = self._db.session(hashing.digest(session_id))
        now = self._clock()
        if rec is None or rec.revoked is not None or now >= rec.expires or now - rec.last_seen >= self.idle_s:
            return None
        op = self._db.operator(rec.username)
        if op is None or op.disabled is not None or op.tenant != rec.tenant:
            return None
        if touch and now - rec.last_seen >= TOUCH_EVERY_S:
            self._db.touch_session(rec.id_hash, now)
        return ActiveSession(rec, op)

    def idle_deadline(self, active: ActiveSession) -> float:
        """When ``active`` ends without further requests (the earlier of its idle timeout and its lifetime)."""
        return min(active.record.expires, max(active.record.last_seen, self._clock()) + self.idle_s)

    def on_token(self, listener: Callable[[str, str, float], None]) -> None:
        """Call ``listener(id_hash, jti, expires)`` when a session is given an access token (``/auth/token``)."""
        self._on_token.append(listener)

    def token_issued(self, id_hash: str, jti: str, expires: float) -> None:
        """Note that the session ``id_hash`` was given the access token ``jti`` (sign-out revokes it)."""
        for listener in self._on_token:
            listener(id_hash, jti, expires)

    def end(self, session_id: str) -> bool:
        """End a session (sign-out) and tell the listeners; False when it was unknown or ended already."""
        return self.end_by_hash(hashing.digest(session_id))

    def end_by_hash(self, id_hash: str) -> bool:
        """:meth:`end` for a session known by its stored hash (an OpenID sign-out naming the session)."""
        ended = self._db.revoke_session(id_hash, self._clock())
        for listener in self._on_end:
            listener(id_hash)  # also when ended already: its tokens may have outlived it
        return ended

    def end_all(self, username: str) -> int:
        """End every session of an operator (an administrator's action); how many."""
        return self._db.revoke_sessions_of(username, self._clock())
