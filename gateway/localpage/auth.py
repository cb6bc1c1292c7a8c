"""Signing in with the setup PIN: sessions, throttled attempts, CSRF tokens. No aiohttp in here.

* A session is a random token in a cookie (Secure, HttpOnly, SameSite=Strict) held in memory only: a
  restart signs everyone out. It ends after ``session_idle_s`` without a request.
* Wrong PINs are counted per client address: ``pin_attempts`` a minute, then the client waits
  ``lockout_s``. All clients together get ten times that, so many addresses cannot guess faster either
  (and scrypt's work stays bounded).
* Every state-changing request carries the session's CSRF token (a form field or the
  ``X-Roost-CSRF`` header); the sign-in form carries one bound to a pre-session cookie.
"""

from __future__ import annotations

import collections
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_SESSIONS = 64
"""Signed-in browsers at once; the one idle longest goes first."""
MAX_TRACKED_CLIENTS = 4096
WINDOW_S = 60.0


@dataclass(slots=True)
class Session:
    """One signed-in browser."""

    token: str
    csrf: str
    last_seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)
    """Messages for the next page shown (kind ``ok`` or ``error``, text)."""
    results: dict[str, Any] = field(default_factory=dict)
    """The last I2C scan or test read, shown on its page."""


class Sessions:
    """Sessions by token, expiring after ``idle_s`` without a request."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._by_token: dict[str, Session] = {}

    def create(self) -> Session:
        """A new session."""
        self._expire()
        while len(self._by_token) >= MAX_SESSIONS:
            oldest = min(self._by_token.values(), key=lambda s: s.last_seen)
            del self._by_token[oldest.token]
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._clock())
        self._by_token[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token`` (its idle clock restarts), or None."""
        if not token:
            return None
        s = self._by_token.get(token)
        if s is None:
            return None
        now = self._clock()
        if now - s.last_seen > self.idle_s:
            del self._by_token[token]
            return None
        s.last_seen = now
        return s

    def peek(self, token: str | None) -> Session | None:
        """The live session for ``token`` without restarting its idle clock (a live stream is not activity)."""
        s = self._by_token.get(token or "")
        return s if s is not None and self._clock() - s.last_seen <= self.idle_s else None

    def end(self, token: str | None) -> None:
        """Sign out."""
        if token:
            self._by_token.pop(token, None)

    def __len__(self) -> int:
        return len(self._by_token)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._by_token.items() if now - s.last_seen > self.idle_s]:
            del self._by_token[token]


class Throttle:
    """Wrong PINs per client address in the last minute; a client past ``attempts`` waits ``lockout_s``."""

    def __init__(self, attempts: int, lockout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.lockout_s = lockout_s
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._locked: dict[str, float] = {}
        self._all: collections.deque[float] = collections.deque()
        self.refused = 0
        """Sign-ins refused because the client (or everyone) had to wait."""

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must wait before trying again (0: it may try now)."""
        now = self._clock()
        until = self._locked.get(client)
        if until is not None:
            if now < until:
                return until - now
            del self._locked[client]
            self._failures.pop(client, None)
        while self._all and now - self._all[0] > WINDOW_S:
            self._all.popleft()
        if len(self._all) >= self.attempts * 10:
            return WINDOW_S - (now - self._all[0])
        return 0.0

    def failed(self, client: str) -> float:
        """Count a wrong PIN; how long ``client`` must now wait (0 if it still has attempts)."""
        now = self._clock()
        self._all.append(now)
        times = self._failures.get(client)
        if times is None:
            if len(self._failures) >= MAX_TRACKED_CLIENTS:
                self._failures.popitem(last=False)
            times = self._failures[client] = collections.deque()
        while times and now - times[0] > WINDOW_S:
            times.popleft()
        times.append(now)
        if len(times) >= self.attempts:
            self._locked[client] = now + self.lockout_s
            return self.lockout_s
        return 0.0

    def succeeded(self, client: str) -> None:
        """A right PIN clears the client's count."""
        self._failures.pop(client, None)

    def remaining(self, client: str) -> int:
        """Attempts ``client`` has left this minute."""
        times = self._failures.get(client)
        now = self._clock()
        recent = sum(1 for t in times if now - t <= WINDOW_S) if times else 0
        return max(0, self.attempts - recent)


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(given) and secrets.compare_digest(expected.encode(), (given or "").encode())
