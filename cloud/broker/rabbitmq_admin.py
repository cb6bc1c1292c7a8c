"""RabbitMQ's management API, to close the connections of a revoked or expired token off the request path.

RabbitMQ asks the auth backend about a token only when a connection opens and (through its cache) on later
publishes: a connection that only receives would keep receiving after its token was revoked. So the cloud
closes such connections itself:

    management = RabbitMQManagement("http://127.0.0.1:15672", "roost-admin", password)
    closer = ConnectionCloser(management, stats)        # a bounded queue and one worker, each close retried once
    watcher = RevocationWatcher(closer, revoked=..., subject_of=..., auth=rabbitmq_auth)
    (run closer.run() and watcher.run() as tasks; cancel them to stop)

Errors: :class:`ManagementError` (a :class:`cloud.errors.BrokerError`) for a call that failed or timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

from cloud.authz import Principal
from cloud.broker.rabbitmq_auth import RabbitMQAuth
from cloud.config import RabbitMQSection
from cloud.errors import BrokerError
from cloud.stats import Stats

_LOGGER = logging.getLogger(__name__)

DEFAULT_RETRY_DELAY_S = 2.0
DEFAULT_QUEUE_MAX = 1000
DEFAULT_UNRESOLVED_ATTEMPTS = 15
"""Attempts (``retry_delay_s`` apart) at a connection whose client id RabbitMQ's statistics do not show yet."""

# RabbitMQ's management API has two views of the connections. ``/api/connections/username/{user}`` reads the
# connection tracking table, which lists a connection the moment it opens. ``/api/connections`` and
# ``/api/connections/{name}`` (GET and DELETE) read the statistics database, which learns of an MQTT connection
# only when the connection first emits statistics (``collect_statistics_interval`` after it opened, 5 s by
# default, plus the collector's own delay): until then a DELETE by the name the tracking table gave answers
# 404 and closes nothing. ``disable_stats=true`` makes ``/api/connections/{name}`` look the name up in the
# tracking table instead (rabbit_mgmt_wm_connection:conn/1, RabbitMQ 3.8.10 and later; older ones ignore it),
# so a close finds the connection as soon as it is listed. The client id (``client_properties``) is only in
# the statistics.
_TRACKED = {"disable_stats": "true"}


class _Lookup(enum.Enum):
    NOT_LISTED_YET = "not listed yet"


NOT_LISTED_YET: Literal[_Lookup.NOT_LISTED_YET] = _Lookup.NOT_LISTED_YET
"""What :meth:`RabbitMQManagement.client_id_of` answers for a connection RabbitMQ's statistics do not list yet."""


class ManagementError(BrokerError):
    """A management API call failed (``.status``: the HTTP status, None when there was no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One connection as the management API lists it."""

    name: str
    user: str
    client_id: str | None = None


@dataclass(slots=True)
class CloseResult:
    """What :meth:`RabbitMQManagement.close_user` did."""

    closed: list[str] = field(default_factory=list)
    """The names of the connections it closed."""
    unresolved: list[str] = field(default_factory=list)
    """Connections of the user whose client id RabbitMQ's statistics do not show yet (neither closed nor spared)."""


def _client_id(item: dict[str, Any]) -> str | None:
    props = item.get("client_properties")
    value = props.get("client_id") if isinstance(props, dict) else None
    return value if isinstance(value, str) else None


class RabbitMQManagement:
    """A small client of RabbitMQ's management HTTP API: list and close a user's connections."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), auth=(user, password), timeout=timeout_s, transport=transport
        )
        self.url = url.rstrip("/")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ManagementError(f"RabbitMQ management API at {self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code in (401, 403):
            raise ManagementError(
                f"RabbitMQ management API at {self.url} refused the management user ({response.status_code}): "
                "check rabbitmq.management_user, its password file and its 'administrator' tag",
                response.status_code,
            )
        return response

    async def connections_of(self, username: str) -> list[ConnectionInfo]:
        """The connections RabbitMQ lists for ``username`` (a new one may take a few seconds to be listed)."""
        response = await self._call("GET", f"/api/connections/username/{quote(username, safe='')}")
        if response.status_code == 404:  # older RabbitMQ: list everything and filter
            response = await self._call("GET", "/api/connections", params={"columns": "name,user,client_properties"})
        if response.status_code != 200:
            raise ManagementError(
                f"RabbitMQ management API: listing connections answered {response.status_code}", response.status_code
            )
        try:
            items = response.json()
        except ValueError as exc:
            raise ManagementError("RabbitMQ management API: the connection list is not JSON") from exc
        if isinstance(items, dict):  # the paginated form
            items = items.get("items", [])
        if not isinstance(items, list):
            raise ManagementError("RabbitMQ management API: the connection list is not a list")
        return [
            ConnectionInfo(str(item["name"]), str(item.get("user", "")), _client_id(item))
            for item in items
            if isinstance(item, dict) and "name" in item and item.get("user") == username
        ]

    async def client_id_of(self, name: str) -> str | Literal[_Lookup.NOT_LISTED_YET] | None:
        """The MQTT client id of one connection (None: gone, or not MQTT; :data:`NOT_LISTED_YET`: open, but the
        statistics, which carry the client id, do not list it yet)."""
        path = f"/api/connections/{quote(name, safe='')}"
        response = await self._call("GET", path)
        if response.status_code == 404:
            tracked = await self._call("GET", path, params=_TRACKED)
            return NOT_LISTED_YET if tracked.status_code == 200 else None
        if response.status_code != 200:
            return None
        try:
            item = response.json()
        except ValueError:
            return None
        return _client_id(item) if isinstance(item, dict) else None

    async def close_connection(self, name: str, reason: str) -> bool:
        """Close one connection (by the name the tracking table lists); False when it was gone already."""
        response = await self._call(
            "DELETE", f"/api/connections/{quote(name, safe='')}", params=_TRACKED, headers={"X-Reason": reason}
        )
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 204):
            raise ManagementError(
                f"RabbitMQ management API: closing a connection answered {response.status_code}", response.status_code
            )
        return True

    async def close_user(self, username: str, reason: str, *, client_id: str | None = None) -> CloseResult:
        """Close ``username``'s connections (only the ones of ``client_id`` when given).

        With ``client_id``, a connection whose client id is not known yet (RabbitMQ's statistics do not list it
        yet) is left open and reported in ``unresolved``: ask again a moment later.
        """
        result = CloseResult()
        for conn in await self.connections_of(username):
            if client_id is not None:
                found = conn.client_id if conn.client_id is not None else await self.client_id_of(conn.name)
                if found is NOT_LISTED_YET:
                    result.unresolved.append(conn.name)
                    continue
                if found != client_id:
                    continue
            if await self.close_connection(conn.name, reason):
                result.closed.append(conn.name)
        return result


@dataclass(frozen=True, slots=True)
class _Job:
    username: str
    client_id: str | None
    reason: str
    attempt: int = 1
    requested_at: float = field(default_factory=time.monotonic)


class ConnectionCloser:
    """Closes connections through the management API off the request path: bounded, logged, retried.

    A close runs now and once more after ``retry_delay_s`` when the first attempt failed or found nothing
    to close (RabbitMQ lists a new connection a moment after it opened). A close of one client's connections
    that finds a connection of the user whose client id RabbitMQ cannot tell yet is tried every
    ``retry_delay_s``, at most ``unresolved_attempts`` times. A close of one client's connections is skipped
    when a close of all the user's connections ran after it was requested.
    """

    def __init__(
        self,
        management: RabbitMQManagement,
        stats: Stats,
        *,
        retry_delay_s: float = DEFAULT_RETRY_DELAY_S,
        queue_max: int = DEFAULT_QUEUE_MAX,
        call_timeout_s: float = 15.0,
        unresolved_attempts: int = DEFAULT_UNRESOLVED_ATTEMPTS,
    ) -> None:
        self._management = management
        self._stats = stats
        self._retry_delay_s = retry_delay_s
        self._unresolved_attempts = max(2, unresolved_attempts)
        self._user_closed_at: dict[str, float] = {}  # username -> when a close of all its connections last ran
        self._call_timeout_s = call_timeout_s
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_max)
        self._pending: set[tuple[str, str | None, int]] = set()
        self._later: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.closed = 0
        """Connections closed since start."""
        self.failed = 0
        """Close jobs that failed twice."""
        self.dropped = 0
        """Close requests dropped because the queue was full."""

    def request(self, username: str, reason: str, *, client_id: str | None = None) -> bool:
        """Ask for ``username``'s connections to be closed (not waiting); False when the request was dropped."""
        return self._put(_Job(username, client_id, reason))

    def _put(self, job: _Job) -> bool:
        key = (job.username, job.client_id, job.attempt)
        if key in self._pending:
            return True
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            _LOGGER.warning(
                "RabbitMQ: %d connection closes waiting already: not closing %r's connections (%s)",
                self._queue.qsize(),
                job.username[:40],
                job.reason,
            )
            return False
        self._pending.add(key)
        return True

    async def idle(self) -> None:
        """Wait until every requested close (retries included) was tried."""
        while self._pending or self._later:
            self._changed.clear()
            await self._changed.wait()

    def _done(self, key: tuple[str, str | None, int]) -> None:
        self._pending.discard(key)
        self._changed.set()

    async def run(self) -> None:
        """Work through the requests until cancelled."""
        try:
            while True:
                job = await self._queue.get()
                try:
                    await self._run(job)
                finally:
                    self._done((job.username, job.client_id, job.attempt))
        finally:
            for task in list(self._later):
                task.cancel()

    async def _run(self, job: _Job) -> None:
        who = f"{job.username[:40]!r}" + (f" (client {job.client_id[:40]!r})" if job.client_id else "")
        if job.client_id is not None and self._user_closed_at.get(job.username, -1.0) >= job.requested_at:
            _LOGGER.debug("RabbitMQ: %s was closed with all of the user's connections", who)
            return
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._call_timeout_s):
                result = await self._management.close_user(job.username, job.reason, client_id=job.client_id)
        except (ManagementError, TimeoutError) as exc:
            message = str(exc) or "no answer in time"
            if job.attempt == 1:
                _LOGGER.warning("RabbitMQ: closing %s's connections failed, trying again: %s", who, message)
                self._retry(job)
            else:
                self.failed += 1
                _LOGGER.error("RabbitMQ: closing %s's connections failed again, giving up: %s", who, message)
            return
        if job.client_id is None:
            self._remember_user_closed(job.username, started)
        closed = len(result.closed)
        if closed:
            self.closed += closed
            self._stats.closed_connections += closed
            _LOGGER.warning("RabbitMQ: closed %d connection(s) of %s: %s", closed, who, job.reason)
        if result.unresolved:
            if job.attempt < self._unresolved_attempts:
                _LOGGER.debug(
                    "RabbitMQ: %d connection(s) of %r not in the statistics yet (their client id is unknown): "
                    "looking again",
                    len(result.unresolved),
                    job.username[:40],
                )
                self._retry(job)
            else:
                self.failed += 1
                _LOGGER.error(
                    "RabbitMQ: closing %s's connections: after %d attempts RabbitMQ still does not tell the client "
                    "id of %d connection(s) of the user; giving up",
                    who,
                    job.attempt,
                    len(result.unresolved),
                )
        elif closed:
            return
        elif job.attempt == 1:
            self._retry(job)  # RabbitMQ may not list a connection that opened a moment ago yet
        else:
            _LOGGER.debug("RabbitMQ: %s has no connection to close", who)

    def _remember_user_closed(self, username: str, at: float) -> None:
        self._user_closed_at[username] = at
        if len(self._user_closed_at) > DEFAULT_QUEUE_MAX:  # keep the recent ones only
            horizon = at - 2 * self._retry_delay_s * self._unresolved_attempts - self._call_timeout_s
            self._user_closed_at = {u: t for u, t in self._user_closed_at.items() if t >= horizon}

    def _retry(self, job: _Job) -> None:
        again = _Job(job.username, job.client_id, job.reason, job.attempt + 1, job.requested_at)
        self._pending.add((again.username, again.client_id, -1))

        async def later() -> None:
            try:
                await asyncio.sleep(self._retry_delay_s)
                self._put(again)
            finally:
                self._done((again.username, again.client_id, -1))

        task = asyncio.create_task(later(), name=f"rabbitmq-close-retry-{job.username[:40]}")
        self._later.add(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._later.discard(task)
        self._changed.set()


class RevocationWatcher:
    """Every ``interval_s``: asks for the connections of newly revoked tokens, and of expired ones, to be closed.

    ``revoked()`` gives the ids (jti) of revoked access tokens that have not expired yet (from any process: the
    admin command line writes to the same database), ``subject_of(jti)`` the subject (MQTT username) of one;
    both run on a worker thread. ``connections()`` and ``still_valid`` (the RabbitMQ auth endpoints' view of the
    connections they admitted) add the connections whose token expired; ``forget`` drops them from that view.
    """

    def __init__(
        self,
        closer: ConnectionCloser,
        *,
        revoked: Callable[[], set[str]],
        subject_of: Callable[[str], str | None],
        connections: Callable[[], list[tuple[str, str, Principal]]] = list,
        still_valid: Callable[[Principal], bool] | None = None,
        forget: Callable[[str, str], None] = lambda _user, _client: None,
        interval_s: float = 1.0,
    ) -> None:
        self._closer = closer
        self._revoked = revoked
        self._subject_of = subject_of
        self._connections = connections
        self._still_valid = still_valid
        self._forget = forget
        self._interval_s = interval_s
        self._known: set[str] | None = None

    async def run(self) -> None:
        """Watch until cancelled; a failing round is logged and the next one tried."""
        while True:
            try:
                await self.check()
            except Exception:  # a database hiccup must not end the watch
                _LOGGER.exception("RabbitMQ: checking for revoked tokens failed")
            await asyncio.sleep(self._interval_s)

    async def check(self) -> None:
        """One round: revoked tokens since the last round, then expired ones."""
        now = await asyncio.to_thread(self._revoked)
        known, self._known = self._known, now
        if known is not None:  # the first round only learns what was revoked before this cloud started
            fresh = sorted(now - known)
            subjects = await asyncio.to_thread(lambda: {self._subject_of(jti) for jti in fresh})
            for subject in sorted(s for s in subjects if s):
                _LOGGER.info("RabbitMQ: a token of %r was revoked: closing its connections", subject[:40])
                self._closer.request(subject, "its access token was revoked")
        if self._still_valid is None:
            return
        started = time.monotonic()
        for username, client_id, principal in self._connections():
            if not self._still_valid(principal):
                self._forget(username, client_id)
                self._closer.request(username, "its access token expired or was revoked", client_id=client_id)
            if time.monotonic() - started > self._interval_s:  # a huge registry: continue next round
                break


class ConnectionClosing:
    """The management client, the closer and the revocation watcher of one cloud; ``start`` and ``stop`` (bounded).

    ``revoked``, ``subject_of``: as :class:`RevocationWatcher` takes them; ``auth``: the RabbitMQ auth endpoints,
    when they are served (their admitted connections are closed when their token expires, too).
    """

    def __init__(
        self,
        settings: RabbitMQSection,
        stats: Stats,
        *,
        revoked: Callable[[], set[str]],
        subject_of: Callable[[str], str | None],
        auth: RabbitMQAuth | None = None,
        still_valid: Callable[[Principal], bool] | None = None,
        interval_s: float = 1.0,
        retry_delay_s: float = DEFAULT_RETRY_DELAY_S,
    ) -> None:
        self.management = RabbitMQManagement(
            settings.management_url,
            settings.management_user,
            settings.management_password(),
            timeout_s=settings.management_timeout_s,
        )
        self.closer = ConnectionCloser(
            self.management, stats, retry_delay_s=retry_delay_s, call_timeout_s=3 * settings.management_timeout_s
        )
        self.watcher = RevocationWatcher(
            self.closer,
            revoked=revoked,
            subject_of=subject_of,
            connections=auth.connections if auth is not None else list,
            still_valid=still_valid if auth is not None else None,
            forget=auth.forget if auth is not None else (lambda _user, _client: None),
            interval_s=interval_s,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the closer and the watcher as tasks of the running loop."""
        self._tasks = [
            asyncio.create_task(self.closer.run(), name="rabbitmq-closer"),
            asyncio.create_task(self.watcher.run(), name="rabbitmq-revocation-watch"),
        ]
        _LOGGER.info("RabbitMQ: revoked tokens close their connections through %s", self.management.url)

    async def stop(self) -> None:
        """Cancel the tasks and close the HTTP client."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.management.aclose()
