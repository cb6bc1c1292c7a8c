"""Identity: the OAuth2 authorization server (tenants, operators, API clients, gateway enrollment, tokens).

db          the identity database (SQLite, WAL): tenants, operators, clients, enrollments, token records, keys
keys        ES256 signing keys with key ids, the JWKS document, rotation without downtime
hashing     argon2id for operator passwords, SHA-256 for the server's own high-entropy secrets
oauth       Authlib's authorization server with Roost's grants and endpoints (RFC 6749, 7009, 7662, 8628, 9068)
service     the running identity service: the parts above behind one object the API and the broker use
routes      the FastAPI router (metadata, JWKS, /oauth/..., enrollment approval by the decision point)
sessions    operators' dashboard sessions (hashed ids, lifetime, idle timeout, CSRF tokens)
signin      the FastAPI router for /auth/... (sign-in, sign-out, who am I, operator tokens)
operators   operators' access tokens (claims, minting for scripts and the demo)
verify      access-token verification for the broker and the API
admin       plain functions behind ``roost cloud admin ...``
oidc        OpenID Connect: the cloud as a provider (code flow with PKCE, ID tokens, sign-out) and as the relying
            party of an external provider (``[identity.oidc]``)
"""
