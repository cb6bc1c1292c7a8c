"""OpenID Connect for operators: the cloud as an OpenID provider, and as a relying party of an external one.

settings        the ``[identity.oidc]`` config table (an external provider, its claim mappings)
store           the OpenID tables in the identity database: clients, authorization codes, session links,
                pending external sign-ins
clients         registered clients (the console's public client ``roost-console`` and others) for Authlib
provider        Authlib's authorization code grant with PKCE (S256 only) and OpenID Connect's ID token
mapping         an external provider's claims as a Roost operator (tenant, role, username)
relying_party   discovery, code exchange and ID-token validation against an external provider
pages           the server-rendered sign-in, sign-out and error pages (no external resources)
routes          the FastAPI router: discovery, /oauth/authorize, /oauth/userinfo, /oauth/end_session,
                /auth/oidc/callback

This module imports nothing, so the config can import :mod:`cloud.identity.oidc.settings` cheaply.
"""
