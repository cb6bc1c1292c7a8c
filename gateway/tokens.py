"""The gateway's OAuth2 client of the cloud's authorization server (blocking: call it from an executor).

    POST {issuer}/oauth/device_authorization   RFC 8628 §3.1: a device code and the user code to show
    POST {issuer}/oauth/token                  device_code, refresh_token and urn:roost:claim-token grants

The gateway is the public client ``roost-gateway``. Every request has a timeout; no token or key is
ever logged (errors carry the server's ``error`` and ``error_description`` only).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import UplinkError
from gateway.identity import Tokens
from gateway.uplink.discovery import tls_context
from wire import keyproof

CLIENT_ID = "roost-gateway"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLAIM_GRANT = "urn:roost:claim-token"
ROTATE_KEY_GRANT = keyproof.GRANT_TYPE
MAX_RESPONSE_BYTES = 64 * 1024


class TokenEndpointUnreachable(UplinkError):
    """The authorization server could not be asked (network, TLS, a 5xx, an unreadable answer)."""


class OAuthError(UplinkError):
    """The authorization server answered with an OAuth2 error (``invalid_grant``, ``authorization_pending``, ...)."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """RFC 8628 §3.2: what the gateway shows and how it polls."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float
    interval: float


class TokenClient:
    """Requests to one issuer; blocking, each bounded by ``timeout`` seconds."""

    def __init__(self, issuer: str, *, ca_file: Path | None = None, timeout: float = 10.0) -> None:
        self.issuer = issuer.rstrip("/")
        self._ca_file = ca_file
        self._timeout = timeout

    def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        url = self.issuer + path
        context = tls_context(self._ca_file) if url.startswith("https://") else None
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=context) as resp:
                body = resp.read(MAX_RESPONSE_BYTES + 1)
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                body = exc.read(MAX_RESPONSE_BYTES + 1)
            except OSError:
                body = b""
            finally:
                exc.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise TokenEndpointUnreachable(
                    f"TLS: the certificate of {url} is not trusted ({reason.verify_message}); "
                    "pin the cloud's CA with cloud.ca_file"
                ) from None
            raise TokenEndpointUnreachable(f"cannot reach {url}: {reason}") from None
        try:
            parsed = json.loads(body) if len(body) <= MAX_RESPONSE_BYTES else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise TokenEndpointUnreachable(f"{url} answered HTTP {status} without a JSON object")
        if status >= 400:
            error = parsed.get("error")
            if isinstance(error, str) and error and status < 500:
                description = parsed.get("error_description")
                raise OAuthError(error, description if isinstance(description, str) else "", status)
            raise TokenEndpointUnreachable(f"{url} answered HTTP {status}")
        return parsed

    def device_authorization(self, hardware_id: str, public_key: str) -> DeviceAuthorization:
        """Start the device flow."""
        body = self._post(
            "/oauth/device_authorization",
            {"client_id": CLIENT_ID, "hardware_id": hardware_id, "public_key": public_key},
        )
        try:
            return DeviceAuthorization(
                device_code=str(body["device_code"]),
                user_code=str(body["user_code"]),
                verification_uri=str(body["verification_uri"]),
                verification_uri_complete=str(body.get("verification_uri_complete") or body["verification_uri"]),
                expires_in=float(body.get("expires_in", 600)),
                interval=max(1.0, float(body.get("interval", 5))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TokenEndpointUnreachable(f"the device authorization answer lacks {exc}") from None

    def _token(self, form: dict[str, str]) -> Tokens:
        body = self._post("/oauth/token", {"client_id": CLIENT_ID, **form})
        try:
            return Tokens.from_response(body, self.issuer)
        except ValueError as exc:
            raise TokenEndpointUnreachable(f"{self.issuer}/oauth/token: {exc}") from None

    def poll_device(self, device_code: str) -> Tokens:
        """One poll of the token endpoint with the device code (OAuthError ``authorization_pending`` meanwhile)."""
        return self._token({"grant_type": DEVICE_CODE_GRANT, "device_code": device_code})

    def claim(self, claim_token: str, hardware_id: str, public_key: str, gateway_id: str = "") -> Tokens:
        """Enroll with a claim token."""
        form = {
            "grant_type": CLAIM_GRANT,
            "claim_token": claim_token,
            "hardware_id": hardware_id,
            "public_key": public_key,
        }
        if gateway_id:
            form["gateway_id"] = gateway_id
        return self._token(form)

    def rotate_key(self, refresh_token: str, public_key: str, proof: str) -> Tokens:
        """New tokens for a new key pair (``urn:roost:rotate-key``); the old credentials are revoked by the cloud."""
        return self._token(
            {"grant_type": ROTATE_KEY_GRANT, "refresh_token": refresh_token, "public_key": public_key, "proof": proof}
        )

    def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for the refresh token (which is used up: the answer carries its successor)."""
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})
