"""The gateway's identity: its immutable id (hardware serial, else a UUID kept), key pair and OAuth2 tokens.

The :class:`IdentityStore` keeps the EC P-256 key pair and the tokens in ``state_dir/identity``
(folder 0700, files 0600, written atomically: temp file, fsync, rename, fsync of the folder).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wire.names import check_gateway

_LOGGER = logging.getLogger(__name__)
_CPUINFO = Path("/proc/cpuinfo")
_DT_SERIAL = Path("/sys/firmware/devicetree/base/serial-number")


def hardware_serial(cpuinfo: Path = _CPUINFO, dt_serial: Path = _DT_SERIAL) -> str | None:
    """The board's serial number (a Raspberry Pi's), or None where the hardware has none."""
    try:
        raw = dt_serial.read_bytes().rstrip(b"\0").decode("ascii", "replace").strip()
        if raw and raw.strip("0"):
            return raw.lower()
    except OSError:
        pass
    try:
        m = re.search(r"^Serial\s*:\s*([0-9a-fA-F]+)\s*$", cpuinfo.read_text(), re.MULTILINE)
    except OSError:
        return None
    if m and m.group(1).strip("0"):
        return m.group(1).lower()
    return None


def gateway_id(state_dir: Path, configured: str = "") -> str:
    """The configured id, else ``rpi-{serial}``, else a UUID generated on first start and kept in state_dir."""
    if configured:
        return check_gateway(configured)
    serial = hardware_serial()
    if serial:
        return check_gateway(f"rpi-{serial}")
    path = state_dir / "gateway-id"
    try:
        return check_gateway(path.read_text().strip())
    except FileNotFoundError:
        pass
    new = f"gw-{uuid.uuid4()}"
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    _LOGGER.info("This gateway has no hardware serial: generated its id %s", new)
    return new


# -- the identity store: key pair and tokens ------------------------------------------------------------------

IDENTITY_DIR = "identity"
KEY_FILE = "key.pem"
NEW_KEY_FILE = "key.new.pem"
"""A key pair being rotated to: it replaces key.pem once the cloud has issued tokens for it."""
TOKENS_FILE = "tokens.json"
STATUS_FILE = "enrollment.json"


@dataclass(frozen=True, slots=True)
class Tokens:
    """The OAuth2 tokens the cloud issued to this gateway (never logged: ``repr`` hides the secrets)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: float
    """Lifetime of the access token, seconds."""
    expires_at: float
    """Wall-clock time the access token expires."""
    gateway_id: str
    tenant: str
    issuer: str

    @classmethod
    def from_response(cls, body: dict[str, Any], issuer: str, now: float | None = None) -> Tokens:
        """The tokens of a token endpoint's answer; ValueError when a member is missing or of the wrong type."""
        now = time.time() if now is None else now
        try:
            access, refresh = body["access_token"], body["refresh_token"]
            expires_in = float(body.get("expires_in", 600))
            gw, tenant = body["gateway_id"], body["tenant"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the token response lacks {exc}") from None
        if not all(isinstance(v, str) and v for v in (access, refresh, gw, tenant)) or expires_in <= 0:
            raise ValueError("the token response has an empty or malformed member")
        check_gateway(gw)
        return cls(access, refresh, expires_in, now + expires_in, gw, tenant, issuer)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": self.expires_in,
            "expires_at": self.expires_at,
            "gateway_id": self.gateway_id,
            "tenant": self.tenant,
            "issuer": self.issuer,
        }


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file mode 0600, fsync, rename, fsync of the folder)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class IdentityStore:
    """The gateway's hardware id, EC P-256 key pair and tokens in ``state_dir/identity`` (0700; files 0600).

    Blocking file I/O: call it from an executor in the event loop. Nothing here logs a key or a token.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.folder = state_dir / IDENTITY_DIR

    def _ensure_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)

    @property
    def hardware_id(self) -> str:
        """``rpi-{serial}`` from the hardware, else the UUID-based id generated once and kept in state_dir."""
        return gateway_id(self.state_dir)

    def public_key_pem(self) -> str:
        """The public key (SubjectPublicKeyInfo PEM); the key pair is generated on first use."""
        from cryptography.hazmat.primitives import serialization

        key = self._private_key()
        pem: bytes = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")

    def _private_key(self) -> Any:
        try:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec
        except ImportError as exc:  # pragma: no cover - the image installs it
            raise OSError("the 'cryptography' package is needed for the gateway's key pair") from exc
        path = self.folder / KEY_FILE
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            pass
        except ValueError as exc:
            raise OSError(f"{path} is not a readable private key: {exc}") from None
        else:
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise OSError(f"{path} is not an EC private key")
            return key
        self._ensure_folder()
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(path, pem)
        _LOGGER.info("generated this gateway's key pair (EC P-256) in %s", self.folder)
        return key

    def stage_new_key(self) -> str:
        """Generate the next key pair into ``key.new.pem`` (0600); its public key (PEM)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self._ensure_folder()
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(self.folder / NEW_KEY_FILE, pem)
        public: bytes = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return public.decode("ascii")

    def sign_with_new_key(self, message: bytes) -> str:
        """The staged key's ECDSA P-256/SHA-256 signature over ``message`` (DER, base64url, no padding)."""
        import base64

        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = serialization.load_pem_private_key((self.folder / NEW_KEY_FILE).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise OSError(f"{self.folder / NEW_KEY_FILE} is not an EC private key")
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
        return base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")

    def promote_new_key(self) -> None:
        """The cloud took the staged key: it becomes the gateway's key (atomic rename)."""
        os.replace(self.folder / NEW_KEY_FILE, self.folder / KEY_FILE)
        _fsync_dir(self.folder)

    def discard_new_key(self) -> None:
        """The rotation failed: forget the staged key."""
        with contextlib.suppress(FileNotFoundError):
            (self.folder / NEW_KEY_FILE).unlink()

    def load_tokens(self) -> Tokens | None:
        """The stored tokens, or None (none yet, deleted, or unreadable: then they are set aside)."""
        path = self.folder / TOKENS_FILE
        try:
            raw = json.loads(path.read_bytes())
            return Tokens(
                access_token=str(raw["access_token"]),
                refresh_token=str(raw["refresh_token"]),
                expires_in=float(raw["expires_in"]),
                expires_at=float(raw["expires_at"]),
                gateway_id=check_gateway(str(raw["gateway_id"])),
                tenant=str(raw["tenant"]),
                issuer=str(raw["issuer"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _LOGGER.error(
                "ignoring the unreadable token file %s (%s): the gateway enrolls again", path, type(exc).__name__
            )
            with contextlib.suppress(OSError):
                os.replace(path, path.with_suffix(".bad"))
            return None

    def save_tokens(self, tokens: Tokens) -> None:
        """Store the tokens atomically (the rotated refresh token must survive a power cut)."""
        self._ensure_folder()
        write_private(self.folder / TOKENS_FILE, json.dumps(tokens.to_json(), indent=1).encode())

    def clear_tokens(self) -> None:
        """Delete the tokens (revoked: the gateway must be enrolled again)."""
        with contextlib.suppress(FileNotFoundError):
            (self.folder / TOKENS_FILE).unlink()
        _fsync_dir(self.folder)

    def write_status(self, status: dict[str, Any]) -> None:
        """The enrollment status the local page shows (state, user code, verification URI; no secrets)."""
        self._ensure_folder()
        write_private(self.folder / STATUS_FILE, json.dumps({**status, "updated": time.time()}, indent=1).encode())

    def read_status(self) -> dict[str, Any] | None:
        """The last enrollment status written, or None."""
        try:
            out = json.loads((self.folder / STATUS_FILE).read_bytes())
        except (OSError, ValueError):
            return None
        return out if isinstance(out, dict) else None
