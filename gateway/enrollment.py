"""Enrollment and token upkeep: the uplink's credentials when the gateway has an identity of its own.

:class:`TokenCredentials` runs beside the uplink (the daemon starts :meth:`TokenCredentials.run`):

1. Tokens stored in ``state_dir/identity``? Use them. Else enroll with the issuer the config or the
   cloud's discovery document names: with the claim token in ``identity.claim_token_file`` when there
   is one, else the device flow (the user code is logged at WARNING once per code and written to
   ``identity/enrollment.json`` for the local page; polling honours ``interval``, ``slow_down`` and
   ``expires_in``, and a new code is asked for when one expires). Adapters buffer meanwhile.
2. Refresh the access token after ``identity.refresh_at`` of its lifetime; the rotated refresh token
   is stored (atomically) before the new access token is handed out; the uplink then reconnects.
   When the token endpoint cannot be reached (a network error, not an OAuth error) and the uplink's MQTT
   connection is up, the refresh goes over MQTT instead (``token`` / ``token-result``), with the same storing.
3. ``invalid_grant`` on refresh (revoked, or the family was revoked after a replay): the tokens are
   deleted, an ERROR says the gateway must be enrolled again, and enrollment starts over.

A cloud whose discovery document names no issuer has no authorization server: the gateway then
connects as before identity existed (username = gateway id, no password). All blocking work (HTTP,
files, key generation) runs in an executor; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from gateway.config import GatewayConfig
from gateway.errors import UplinkError
from gateway.identity import IdentityStore, Tokens
from gateway.tokens import DeviceAuthorization, OAuthError, TokenClient, TokenEndpointUnreachable
from gateway.uplink import discovery
from gateway.uplink.auth import Credentials
from wire import keyproof

_LOGGER = logging.getLogger(__name__)

SLOW_DOWN_S = 5.0
"""RFC 8628 §3.5: each slow_down adds 5 seconds to the polling interval."""
MAX_RETRY_S = 60.0
REFUSED_REFRESH_GAP_S = 30.0
WIPE_DESCRIPTION = "revoked: wipe"
"""The token endpoint's ``error_description`` for a gateway revoked as stolen: it wipes itself."""


class RotationFailed(UplinkError):
    """Rotating the key pair did not happen; the message says why (the old credentials still hold)."""


"""A broker's refusal triggers an early refresh at most this often."""


class TokenChannel(Protocol):
    """The uplink's MQTT connection, for refreshing over MQTT (:class:`gateway.uplink.Uplink`)."""

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""

    async def request_token(self, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """Publish ``body`` on ``token`` and return the answer on ``token-result`` (UplinkError otherwise)."""


class TokenCredentials:
    """A credentials provider over the identity store: enrolls, refreshes, re-enrolls after revocation."""

    def __init__(self, config: GatewayConfig, store: IdentityStore) -> None:
        self._config = config
        self._cfg = config.identity
        self._cloud = config.cloud
        self._store = store
        self._current: Credentials | None = None
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_refused_refresh = -REFUSED_REFRESH_GAP_S
        self._warned_ids: set[tuple[str, str]] = set()
        self._channel: TokenChannel | None = None
        self.refreshes = 0
        """Access tokens refreshed since start."""
        self.mqtt_refreshes = 0
        """Of those, refreshed over MQTT (the token endpoint could not be reached)."""
        self.enrollments = 0
        """Enrollments completed since start."""
        self.state = "starting"
        """starting, enrolling, waiting-for-approval, enrolled, revoked or no-identity."""
        self.rotations = 0
        """Key pairs rotated since start."""
        self._rotation: asyncio.Future[dict[str, object]] | None = None
        self.on_wipe: Callable[[str], None] | None = None
        """Called when the cloud says this gateway was revoked as stolen (``error_description`` "revoked: wipe")."""

    def use_channel(self, channel: TokenChannel) -> None:
        """Refresh over this MQTT connection when the token endpoint cannot be reached."""
        self._channel = channel

    async def rotate(self, timeout: float = 60.0) -> dict[str, object]:
        """Rotate the key pair now (a new one, new tokens, the old credentials revoked by the cloud).

        Returns what the DM agent reports; raises RotationFailed with a reason an operator can act on.
        """
        if self.state != "enrolled":
            raise RotationFailed(f"this gateway is not enrolled (it is {self.state}): nothing to rotate")
        if self._rotation is None or self._rotation.done():
            self._rotation = asyncio.get_running_loop().create_future()
        pending = self._rotation
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(pending)
        except TimeoutError:
            raise RotationFailed(f"the rotation did not finish within {timeout:.0f} s") from None

    # ----------------------------------------------------------------- provider

    async def get(self) -> Credentials:
        """The credentials now; waits (in bounded steps, cancellably) while the gateway is not enrolled."""
        while self._current is None:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30.0):
                    await changed.wait()
        return self._current

    async def renewed(self, current: Credentials) -> None:
        """Return once ``current`` is no longer the credentials to use."""
        while self._current is current:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60.0):
                    await changed.wait()

    def refused(self, current: Credentials) -> None:
        """The broker refused the token: refresh early (at most every 30 s), in case it was revoked or expired."""
        if current is not self._current or current.kind != "token":
            return
        now = time.monotonic()
        if now - self._last_refused_refresh >= REFUSED_REFRESH_GAP_S:
            self._last_refused_refresh = now
            _LOGGER.info("identity: the broker refused the access token: refreshing it now")
            self._wake.set()

    def _publish(self, creds: Credentials | None) -> None:
        self._current = creds
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    def _use(self, tokens: Tokens) -> None:
        configured = self._config.gateway.id
        key = (tokens.gateway_id, tokens.tenant)
        if key not in self._warned_ids:
            self._warned_ids.add(key)
            if configured and configured != tokens.gateway_id:
                _LOGGER.warning(
                    "identity: gateway.id is %r but the cloud enrolled this gateway as %r: "
                    "connecting and publishing as %r (the id its tokens are for)",
                    configured,
                    tokens.gateway_id,
                    tokens.gateway_id,
                )
            if self._cloud.username and self._cloud.username != tokens.gateway_id:
                _LOGGER.warning("identity: cloud.username is ignored: a token's username is its gateway id")
        self._publish(Credentials(tokens.gateway_id, tokens.access_token, tokens.gateway_id, tokens.tenant, "token"))

    # ----------------------------------------------------------------- the task

    async def run(self) -> None:
        """Enroll when needed, keep the access token fresh, start over after revocation; until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            tokens = await loop.run_in_executor(None, self._store.load_tokens)
            if tokens is None:
                issuer = await self._issuer()
                if issuer is None:
                    return  # no authorization server: connecting without a password (published already)
                tokens = await self._enroll(issuer)
            else:
                _LOGGER.info(
                    "identity: gateway %s of tenant %s (tokens from %s)",
                    tokens.gateway_id,
                    tokens.tenant,
                    tokens.issuer,
                )
            self.state = "enrolled"
            self._use(tokens)
            await self._keep_fresh(tokens)
            # Revoked: the credentials are gone; the uplink disconnects and waits for the new enrollment.
            self._publish(None)

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def _issuer(self) -> str | None:
        if self._cfg.issuer:
            return self._cfg.issuer
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                doc, _source = await loop.run_in_executor(
                    None, discovery.discover, self._cloud, self._config.gateway.state_dir
                )
            except UplinkError as exc:
                delay = _backoff(attempt)
                attempt += 1
                log = _LOGGER.warning if attempt == 1 else _LOGGER.debug
                log("identity: cannot find the cloud's issuer (%s); retrying in %.0f s", exc, delay)
                await self._sleep(delay)
                continue
            issuer = doc.get("issuer")
            if issuer:
                return issuer
            _LOGGER.warning(
                "identity: the cloud at %s has no authorization server (no issuer in its discovery document): "
                "connecting without a password",
                self._cloud.url,
            )
            self.state = "no-identity"
            gw = self._config.gateway.id or await loop.run_in_executor(None, lambda: self._store.hardware_id)
            self._publish(Credentials(self._cloud.username or gw, None, gw, self._config.gateway.tenant, "none"))
            return None

    # ----------------------------------------------------------------- enrollment

    async def _enroll(self, issuer: str) -> Tokens:
        loop = asyncio.get_running_loop()
        client = TokenClient(issuer, ca_file=self._cloud.ca_file, timeout=self._cfg.http_timeout_s)
        self.state = "enrolling"
        hardware_id, public_key = await loop.run_in_executor(None, self._hardware_and_key)
        claim = await loop.run_in_executor(None, self._claim_token)
        tokens = None
        if claim:
            tokens = await self._enroll_with_claim(client, claim, hardware_id, public_key)
        if tokens is None:
            tokens = await self._device_flow(client, hardware_id, public_key)
        await loop.run_in_executor(None, self._store.save_tokens, tokens)
        self.enrollments += 1
        await self._status({"state": "enrolled", "gateway_id": tokens.gateway_id, "tenant": tokens.tenant})
        _LOGGER.info("identity: enrolled as gateway %s of tenant %s", tokens.gateway_id, tokens.tenant)
        return tokens

    def _hardware_and_key(self) -> tuple[str, str]:
        return self._store.hardware_id, self._store.public_key_pem()

    def _claim_token(self) -> str:
        path: Path | None = self._cfg.claim_token_file
        if path is None:
            return ""
        try:
            return path.read_text().strip()
        except OSError as exc:
            _LOGGER.warning(
                "identity: cannot read the claim token file %s (%s): using the device flow", path, exc.strerror
            )
            return ""

    async def _status(self, status: dict[str, object]) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._store.write_status, status)
        except OSError as exc:
            _LOGGER.warning("identity: cannot write the enrollment status: %s", exc)

    async def _enroll_with_claim(
        self, client: TokenClient, claim: str, hardware_id: str, public_key: str
    ) -> Tokens | None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                return await loop.run_in_executor(
                    None, client.claim, claim, hardware_id, public_key, self._config.gateway.id
                )
            except OAuthError as exc:
                if exc.error == "slow_down":
                    await self._sleep(_backoff(attempt))
                    attempt += 1
                    continue
                _LOGGER.error(
                    "identity: the cloud refused the claim token in %s (%s): enroll this gateway with the device flow",
                    self._cfg.claim_token_file,
                    exc,
                )
                await self._status({"state": "claim-refused", "error": exc.error})
                return None
            except TokenEndpointUnreachable as exc:
                delay = _backoff(attempt)
                attempt += 1
                (_LOGGER.warning if attempt == 1 else _LOGGER.debug)(
                    "identity: cannot enroll yet (%s); retrying in %.0f s", exc, delay
                )
                await self._sleep(delay)

    async def _device_flow(self, client: TokenClient, hardware_id: str, public_key: str) -> Tokens:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                dev = await loop.run_in_executor(None, client.device_authorization, hardware_id, public_key)
            except (OAuthError, TokenEndpointUnreachable) as exc:
                delay = _backoff(attempt)
                attempt += 1
                (_LOGGER.warning if attempt == 1 else _LOGGER.debug)(
                    "identity: cannot start enrollment (%s); retrying in %.0f s", exc, delay
                )
                await self._sleep(delay)
                continue
            attempt = 0
            self.state = "waiting-for-approval"
            _LOGGER.warning(
                "Enroll this gateway: open %s and enter %s (or open %s); the code expires in %.0f s",
                dev.verification_uri,
                dev.user_code,
                dev.verification_uri_complete,
                dev.expires_in,
            )
            await self._status(
                {
                    "state": "waiting-for-approval",
                    "user_code": dev.user_code,
                    "verification_uri": dev.verification_uri,
                    "verification_uri_complete": dev.verification_uri_complete,
                    "expires_at": time.time() + dev.expires_in,
                }
            )
            tokens = await self._poll(client, dev)
            if tokens is not None:
                return tokens

    async def _poll(self, client: TokenClient, dev: DeviceAuthorization) -> Tokens | None:
        """Poll until approved (tokens), or None when the code expired or was denied (a new one is asked for)."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + dev.expires_in
        interval = dev.interval
        while True:
            await self._sleep(min(interval, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                _LOGGER.info("identity: the user code %s expired: asking for a new one", dev.user_code)
                return None
            try:
                return await loop.run_in_executor(None, client.poll_device, dev.device_code)
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += SLOW_DOWN_S
                    continue
                if exc.error == "expired_token":
                    _LOGGER.info("identity: the user code %s expired: asking for a new one", dev.user_code)
                    return None
                if exc.error == "access_denied":
                    _LOGGER.error("identity: the enrollment with user code %s was denied", dev.user_code)
                    await self._status({"state": "denied", "user_code": dev.user_code})
                    await self._sleep(MAX_RETRY_S)
                    return None
                _LOGGER.error("identity: the cloud refused the device code (%s): asking for a new one", exc)
                await self._sleep(interval)
                return None
            except TokenEndpointUnreachable as exc:
                _LOGGER.debug("identity: polling failed (%s); trying again", exc)
                interval = min(interval * 2, MAX_RETRY_S)

    # ----------------------------------------------------------------- refresh

    async def _keep_fresh(self, tokens: Tokens) -> None:
        """Refresh before expiry until the refresh token is refused (then the tokens are deleted and it returns)."""
        loop = asyncio.get_running_loop()
        client = TokenClient(tokens.issuer, ca_file=self._cloud.ca_file, timeout=self._cfg.http_timeout_s)
        # When the refresh is due, in monotonic time (the wall clock only for tokens read from disk).
        due = time.monotonic() + _refresh_in(tokens, self._cfg.refresh_at, time.time())
        attempt = 0
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due - time.monotonic())):
                    await self._wake.wait()
            rotation = self._rotation
            if rotation is not None and not rotation.done():
                try:
                    tokens = await self._rotate_key(client, tokens)
                except OAuthError as exc:
                    rotation.set_exception(RotationFailed(f"the cloud refused the new key: {exc}"))
                    if exc.error == "invalid_grant":  # the refresh token is dead: so is the enrollment
                        await self._revoked(exc)
                        return
                    continue
                except (TokenEndpointUnreachable, OSError) as exc:
                    rotation.set_exception(RotationFailed(f"cannot rotate now: {exc}"))
                    continue
                rotation.set_result({"gateway": tokens.gateway_id, "expires_in": round(tokens.expires_in)})
                due = time.monotonic() + _refresh_in(tokens, self._cfg.refresh_at, time.time())
                continue
            try:
                new, via = await self._refresh(client, tokens)
            except OAuthError as exc:
                if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                    await self._revoked(exc)
                    return
                delay = _backoff(attempt)
                attempt += 1
                _LOGGER.warning("identity: refreshing the access token failed (%s); retrying in %.0f s", exc, delay)
                due = time.monotonic() + delay
                continue
            except TokenEndpointUnreachable as exc:
                remaining = tokens.expires_at - time.time()
                delay = min(_backoff(attempt), max(1.0, remaining / 4))
                attempt += 1
                (_LOGGER.warning if attempt == 1 else _LOGGER.debug)(
                    "identity: cannot refresh the access token (%s); retrying in %.0f s", exc, delay
                )
                due = time.monotonic() + delay
                continue
            attempt = 0
            # The old refresh token is used up: keep the new one on disk before anything uses the new access token.
            try:
                await loop.run_in_executor(None, self._store.save_tokens, new)
            except OSError as exc:
                _LOGGER.error(
                    "identity: cannot store the refreshed tokens (%s): a restart will need re-enrollment", exc
                )
            tokens = new
            self.refreshes += 1
            if via == "MQTT":
                self.mqtt_refreshes += 1
            _LOGGER.info("identity: access token refreshed (valid for %.0f s, over %s)", new.expires_in, via)
            self._use(new)
            due = time.monotonic() + _refresh_in(new, self._cfg.refresh_at, time.time())

    async def _refresh(self, client: TokenClient, tokens: Tokens) -> tuple[Tokens, str]:
        """New tokens over HTTPS or, when the token endpoint cannot be reached but MQTT is up, over MQTT."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, client.refresh, tokens.refresh_token), "HTTPS"
        except TokenEndpointUnreachable as exc:
            channel = self._channel
            if channel is None or not channel.connected:
                raise
            _LOGGER.info("identity: cannot refresh over HTTPS (%s): refreshing over MQTT", exc)
        try:
            body = await channel.request_token(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}, self._cfg.http_timeout_s
            )
        except UplinkError as err:
            raise TokenEndpointUnreachable(f"over MQTT: {err}") from None
        error = body.get("error")
        if error:
            description = body.get("error_description")
            raise OAuthError(str(error), description if isinstance(description, str) else "", 400)
        try:
            return Tokens.from_response(body, tokens.issuer), "MQTT"
        except ValueError as err:
            raise TokenEndpointUnreachable(f"the token result over MQTT: {err}") from None

    async def _rotate_key(self, client: TokenClient, tokens: Tokens) -> Tokens:
        """Stage a new key, prove it to the cloud, store the new tokens, then make the new key the gateway's."""
        loop = asyncio.get_running_loop()
        public_key = await loop.run_in_executor(None, self._store.stage_new_key)
        message = keyproof.rotation_message(tokens.gateway_id, tokens.issuer, tokens.refresh_token)
        try:
            proof = await loop.run_in_executor(None, self._store.sign_with_new_key, message)
            new = await loop.run_in_executor(None, client.rotate_key, tokens.refresh_token, public_key, proof)
        except BaseException:
            await loop.run_in_executor(None, self._store.discard_new_key)
            raise
        # The cloud holds the new key and revoked the old credentials: keep the tokens, then the key.
        await loop.run_in_executor(None, self._store.save_tokens, new)
        await loop.run_in_executor(None, self._store.promote_new_key)
        self.rotations += 1
        _LOGGER.info("identity: rotated this gateway's key pair; new tokens valid for %.0f s", new.expires_in)
        self._use(new)
        return new

    async def _revoked(self, exc: OAuthError) -> None:
        self.state = "revoked"
        _LOGGER.error(
            "identity: the cloud refused this gateway's refresh token (%s): its enrollment was revoked. "
            "Deleted its tokens; it must be enrolled again",
            exc,
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._store.clear_tokens)
        except OSError as err:
            _LOGGER.error("identity: cannot delete the dead tokens: %s", err)
        await self._status({"state": "revoked", "error": exc.error})
        if exc.description.startswith(WIPE_DESCRIPTION) and self.on_wipe is not None:
            _LOGGER.error("identity: the cloud revoked this gateway as stolen: wiping it")
            self.on_wipe("the cloud revoked this gateway as stolen")


def _refresh_in(tokens: Tokens, refresh_at: float, now: float) -> float:
    """Seconds from now until the refresh is due: after ``refresh_at`` of the lifetime (0 when past)."""
    remaining = tokens.expires_at - now
    return max(0.0, min(tokens.expires_in * refresh_at, remaining - tokens.expires_in * (1 - refresh_at)))


def _backoff(attempt: int) -> float:
    return min(MAX_RETRY_S, 2.0 ** min(attempt, 10)) * random.uniform(0.5, 1.0)
