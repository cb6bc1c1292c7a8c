"""Token refresh over MQTT, for gateways that reach the broker but not the HTTPS token endpoint.

A token-authenticated gateway publishes on ``roost/{tenant}/{gw}/token``::

    {"request_id": "...", "grant_type": "refresh_token", "refresh_token": "..."}

and the answer goes to ``roost/{tenant}/{gw}/token-result`` (QoS 1, not retained): what ``POST /oauth/token``
would answer, with the request id added (``{"request_id", "access_token", "refresh_token", "expires_in",
"token_type", "gateway_id", "tenant", ...}`` or ``{"request_id", "error", "error_description"}``). The grant
is the identity service's own (rotation, reuse detection); the refresh token must be one of the publishing
gateway's (tenant and id), else ``invalid_grant`` and the token is left alone. No token is ever logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cloud.authz import Principal
from cloud.identity import hashing
from cloud.identity.oauth import GATEWAY_CLIENT_ID, FormRequest
from cloud.identity.service import IdentityService
from wire import topics

_LOGGER = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
MAX_FIELD = 512
MAX_CONCURRENT = 8

Publish = Callable[[str, bytes], Awaitable[None]]


def _error(request_id: str, error: str, description: str) -> dict[str, Any]:
    return {"request_id": request_id, "error": error, "error_description": description}


class MqttTokenRefresher:
    """Answers refresh requests on gateways' ``token`` topics with the identity service's refresh grant."""

    def __init__(self, identity: IdentityService, publish: Publish) -> None:
        self._identity = identity
        self._publish = publish
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self.answered = 0
        """Requests answered (with tokens or an error)."""

    def submit(self, topic: topics.Topic, payload: bytes, principal: Principal | None) -> None:
        """Handle one publish on a ``token`` topic in the background (the caller's loop is not held up)."""
        task = asyncio.get_running_loop().create_task(self._handle(topic, payload, principal))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait briefly for requests under way, then cancel the rest."""
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=2.0)
            for task in pending:
                task.cancel()

    async def _handle(self, topic: topics.Topic, payload: bytes, principal: Principal | None) -> None:
        if (
            principal is None
            or principal.kind != "gateway"
            or principal.token_id is None
            or (principal.tenant, principal.id) != (topic.tenant, topic.gateway)
        ):
            # Only a gateway that proved itself with an access token, on its own topic, gets an answer.
            _LOGGER.warning(
                "token request on %s/%s from a client that is not that gateway: ignored", topic.tenant, topic.gateway
            )
            return
        async with self._slots:
            try:
                answer = await asyncio.to_thread(self.answer, topic.tenant, topic.gateway, payload)
            except Exception:  # never let one request break the ingest; never log the payload
                _LOGGER.exception("token request of %s/%s failed", topic.tenant, topic.gateway)
                answer = _error(_request_id(payload), "server_error", "the refresh failed")
            try:
                await self._publish(
                    topics.topic(topic.tenant, topic.gateway, "token-result"), json.dumps(answer).encode()
                )
            except Exception:
                _LOGGER.exception("cannot publish the token result to %s/%s", topic.tenant, topic.gateway)
                return
            self.answered += 1

    def answer(self, tenant: str, gateway_id: str, payload: bytes) -> dict[str, Any]:
        """The answer to one request of gateway ``gateway_id`` of ``tenant`` (blocking: database, signing)."""
        request_id = _request_id(payload)
        body = _parse(payload)
        if body is None:
            return _error(request_id, "invalid_request", "the request must be a JSON object of at most 4 KiB")
        grant_type = body.get("grant_type")
        refresh_token = body.get("refresh_token")
        if grant_type != "refresh_token":
            return _error(request_id, "unsupported_grant_type", "only the refresh_token grant is served over MQTT")
        if not isinstance(refresh_token, str) or not refresh_token or len(refresh_token) > MAX_FIELD:
            return _error(request_id, "invalid_request", "missing or malformed refresh_token")
        identity = self._identity
        rec = identity.db.refresh(hashing.digest(refresh_token))
        if rec is None or rec.kind != "gateway" or rec.subject != gateway_id or rec.tenant != tenant:
            _LOGGER.warning("token request of %s/%s with a refresh token not its own: refused", tenant, gateway_id)
            return _error(request_id, "invalid_grant", "the refresh token is not valid")
        issuer = self._issuer()
        req = FormRequest(
            method="POST",
            url=f"{issuer}/oauth/token" if issuer.startswith("https://") else "https://mqtt.invalid/oauth/token",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            form={"client_id": GATEWAY_CLIENT_ID, "grant_type": "refresh_token", "refresh_token": refresh_token},
            issuer=issuer,
        )
        _status, result, _headers = identity.oauth.token(req)
        if not isinstance(result, dict):
            return _error(request_id, "server_error", "the refresh failed")
        if "error" in result:
            _LOGGER.info("token request of %s/%s refused: %s", tenant, gateway_id, result.get("error"))
        else:
            _LOGGER.info("refreshed the tokens of gateway %s/%s over MQTT", tenant, gateway_id)
        return {"request_id": request_id, **result}

    def _issuer(self) -> str:
        identity = self._identity
        issuer = identity.issuer_for("")
        if issuer:
            return issuer
        known = sorted(identity.issuers())
        return known[0] if known else "https://mqtt.invalid"


def _parse(payload: bytes) -> dict[str, Any] | None:
    if len(payload) > MAX_REQUEST_BYTES:
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _request_id(payload: bytes) -> str:
    body = _parse(payload)
    rid = body.get("request_id") if body is not None else None
    return rid if isinstance(rid, str) and len(rid) <= 128 else ""
