"""What a gateway signs with its new private key when it rotates its key pair (``urn:roost:rotate-key``).

The token request carries the new public key (SubjectPublicKeyInfo PEM, EC P-256) and ``proof``: the
ECDSA P-256 / SHA-256 signature (DER, base64url without padding) over :func:`rotation_message`. The
message binds the signature to the gateway, the issuer and the refresh token being used up, so a proof
cannot be replayed for another gateway, cloud or request. No I/O here: both ends build the same bytes.
"""

from __future__ import annotations

import hashlib

GRANT_TYPE = "urn:roost:rotate-key"


def rotation_message(gateway_id: str, issuer: str, refresh_token: str) -> bytes:
    """The bytes the new private key signs."""
    digest = hashlib.sha256(refresh_token.encode()).hexdigest()
    return f"roost-rotate-key\n{gateway_id}\n{issuer.rstrip('/')}\n{digest}\n".encode()
