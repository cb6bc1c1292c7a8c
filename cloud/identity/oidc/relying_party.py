"""The cloud as a relying party of an external OpenID provider (``[identity.oidc]``).

    rp = RelyingParty(settings, store, identity)
    url = await rp.start(resume=authorize_params, redirect_uri=f"{issuer}/auth/oidc/callback")  # 302 there
    who, resume = await rp.finish(code=..., state=..., redirect_uri=...)  # MappedOperator; RpError otherwise
    operator = rp.provision(who)        # the Roost operator, created or updated; RpError when it may not be

The provider's discovery document is fetched on first use (its ``issuer`` must be the configured one) and
its JWKS whenever an ID token names a key not seen yet (at most every few seconds). Each sign-in uses a
fresh ``state``, ``nonce`` and PKCE verifier (S256); the ID token's signature (asymmetric algorithms only),
``iss``, ``aud`` (and ``azp`` when there are several audiences), ``exp``, ``iat`` and ``nonce`` are checked
with joserfc before any claim is read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from cloud.identity import hashing
from cloud.identity.db import IdentityDB, OperatorRecord
from cloud.identity.errors import Conflict, IdentityError, NotFound
from cloud.identity.oidc.mapping import MappedOperator, NotMapped, map_claims
from cloud.identity.oidc.settings import OidcSection
from cloud.identity.oidc.store import LoginRow, OidcStore

_LOGGER = logging.getLogger(__name__)

LOGIN_TTL_S = 600
JWKS_REFETCH_S = 5.0
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
EXTERNAL_PREFIX = "oidc:"
"""Operators made from an external provider carry ``oidc:{issuer}#{sub}`` instead of a password hash: no
password ever matches it, and it tells whose account the name is."""


class RpError(IdentityError):
    """A sign-in through the external provider failed; ``message`` is for the operator, ``status`` for HTTP."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What the discovery document says and the relying party uses."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]


def s256(verifier: str) -> str:
    """RFC 7636's S256 code challenge of ``verifier``."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class RelyingParty:
    """Signs operators in at the configured external provider."""

    def __init__(self, settings: OidcSection, store: OidcStore) -> None:
        self.settings = settings
        self.store = store
        self.issuer = settings.issuer.rstrip("/")
        self._info: ProviderInfo | None = None
        self._keys: KeySet | None = None
        self._keys_fetched = float("-inf")
        self._lock = asyncio.Lock()

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.settings.timeout_s, follow_redirects=False)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._client() as client:
                response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise RpError(502, f"the sign-in provider cannot be reached ({what} at {url}: {exc!r})") from None
        if response.status_code != 200:
            raise RpError(502, f"the sign-in provider answered {response.status_code} for its {what} at {url}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RpError(502, f"the sign-in provider's {what} at {url} is not a JSON object")
        return body

    async def provider(self) -> ProviderInfo:
        """The provider's endpoints (its discovery document, fetched once)."""
        if self._info is not None:
            return self._info
        async with self._lock:
            if self._info is None:
                doc = await self._get_json(f"{self.issuer}/.well-known/openid-configuration", "discovery document")
                if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                    raise RpError(
                        502,
                        f"the provider's discovery document names the issuer {str(doc.get('issuer'))[:200]!r},"
                        f" not {self.issuer!r} (check identity.oidc.issuer)",
                    )
                endpoints = {}
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    value = doc.get(key)
                    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                        raise RpError(502, f"the provider's discovery document has no usable {key!r}")
                    endpoints[key] = value
                offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
                algorithms = tuple(a for a in offered if a in ASYMMETRIC)
                if not algorithms:
                    raise RpError(502, f"the provider signs ID tokens only with algorithms Roost refuses: {offered}")
                self._info = ProviderInfo(
                    endpoints["authorization_endpoint"], endpoints["token_endpoint"], endpoints["jwks_uri"], algorithms
                )
        assert self._info is not None
        return self._info

    async def _key_set(self, *, refetch: bool = False) -> KeySet:
        info = await self.provider()
        now = time.monotonic()
        if self._keys is None or (refetch and now - self._keys_fetched >= JWKS_REFETCH_S):
            jwks = await self._get_json(info.jwks_uri, "signing keys (JWKS)")
            try:
                self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise RpError(502, f"the provider's signing keys cannot be read: {exc!r}") from None
            self._keys_fetched = now
        return self._keys

    # -- the sign-in ---------------------------------------------------------------------------------------------

    async def start(self, *, resume: dict[str, str], redirect_uri: str) -> str:
        """The provider's authorization URL for a new sign-in (state, nonce and PKCE verifier are recorded)."""
        info = await self.provider()
        state, nonce, verifier = hashing.new_token(), hashing.new_token(), hashing.new_token(48)
        now = time.time()
        row = LoginRow(hashing.digest(state), nonce, verifier, resume, now, now + LOGIN_TTL_S)
        await asyncio.to_thread(self.store.add_login, row)
        params = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        sep = "&" if "?" in info.authorization_endpoint else "?"
        return f"{info.authorization_endpoint}{sep}{urlencode(params)}"

    async def finish(self, *, code: str, state: str, redirect_uri: str) -> tuple[MappedOperator, dict[str, str]]:
        """Exchange the code, check the ID token, map its claims; (the operator, the request to resume)."""
        login = await asyncio.to_thread(self.store.take_login, hashing.digest(state), time.time())
        if login is None:
            raise RpError(400, "this sign-in is unknown, used already or too old: start again")
        info = await self.provider()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": login.verifier,
        }
        secret = self.settings.client_secret()
        headers = {"Accept": "application/json"}
        if secret is None:
            form["client_id"] = self.settings.client_id
        else:  # client_secret_basic (RFC 6749 §2.3.1: both form-urlencoded first)
            pair = f"{quote(self.settings.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            async with self._client() as client:
                response = await client.post(info.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise RpError(502, f"the sign-in provider cannot be reached ({exc!r})") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            what = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise RpError(502, f"the sign-in provider refused the code ({response.status_code}: {what or 'no reason'})")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise RpError(502, "the sign-in provider's answer has no ID token")
        claims = await self.check_id_token(id_token, login.nonce)
        try:
            who = map_claims(self.settings, claims)
        except NotMapped as exc:
            _LOGGER.warning("external sign-in refused for %r: %s", str(claims.get("sub"))[:64], exc.message)
            raise RpError(403, exc.message) from None
        return who, login.resume

    async def check_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of a valid ID token from the provider for this client and ``nonce``; RpError otherwise."""
        info = await self.provider()
        keys = await self._key_set()
        try:
            try:
                decoded = jwt.decode(id_token, keys, algorithms=list(info.algorithms))
            except (InvalidKeyIdError, ValueError):  # a key rotated in at the provider: fetch its keys again
                keys = await self._key_set(refetch=True)
                decoded = jwt.decode(id_token, keys, algorithms=list(info.algorithms))
            registry = jwt.JWTClaimsRegistry(
                leeway=self.settings.leeway_s,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(decoded.claims)
        except BadSignatureError:
            raise RpError(502, "the ID token's signature does not verify with the provider's keys") from None
        except ExpiredTokenError:
            raise RpError(502, "the ID token has expired (is this cloud's clock right?)") from None
        except (MissingClaimError, InvalidClaimError) as exc:
            raise RpError(502, f"the ID token is not for this sign-in: {exc.description}") from None
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise RpError(502, f"the ID token is not valid: {type(exc).__name__}") from None
        claims = dict(decoded.claims)
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.settings.client_id:
            raise RpError(502, "the ID token has several audiences and another authorized party (azp)")
        return claims

    # -- the operator ------------------------------------------------------------------------------------------

    def marker(self, subject: str) -> str:
        """What an operator of this provider carries instead of a password hash."""
        return f"{EXTERNAL_PREFIX}{self.issuer}#{subject}"

    def provision(self, db: IdentityDB, who: MappedOperator) -> OperatorRecord:
        """The Roost operator for ``who``: created on first sign-in, its role updated; RpError when it may not."""
        marker = self.marker(who.subject)
        if db.tenant(who.tenant) is None:
            raise RpError(403, f"there is no tenant {who.tenant!r} on this cloud: an administrator must create it")
        found = db.operator(who.username)
        if found is None:
            rec = OperatorRecord(who.username, who.tenant, who.role, marker, time.time())  # type: ignore[arg-type]
            try:
                db.add_operator(rec)
            except (Conflict, NotFound) as exc:
                raise RpError(409, str(exc)) from None
            _LOGGER.info(
                "operator %s of tenant %s created at its first sign-in through %s (role %s)",
                who.username,
                who.tenant,
                self.issuer,
                who.role,
            )
            return rec
        if found.password_hash != marker:
            raise RpError(
                409,
                f"the name {who.username!r} belongs to another Roost operator (a local account, or one of another"
                " provider account): an administrator must rename one of them",
            )
        if found.tenant != who.tenant:
            raise RpError(409, f"operator {who.username!r} belongs to another tenant than your account says")
        if found.disabled is not None:
            raise RpError(403, f"operator {who.username!r} is disabled on this cloud")
        if found.role != who.role:
            db.set_operator_role(who.username, who.role)
            _LOGGER.info(
                "operator %s of tenant %s: role %s -> %s (from %s)",
                who.username,
                who.tenant,
                found.role,
                who.role,
                self.issuer,
            )
            updated = db.operator(who.username)
            assert updated is not None
            return updated
        return found
