"""The local page's self-signed certificate: ``state_dir/local/cert.pem`` and ``key.pem`` (0600).

First boot makes them and prints the fingerprint on the console; the daemon makes them itself when they
are missing (an SD card restored without them). The name in the certificate is the page's mDNS name,
``roost-XXXX.local``. A technician checks the SHA-256 fingerprint the browser shows against the one on
the console, in the journal, or from ``roost gateway status``.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

CERT_FILE, KEY_FILE = "cert.pem", "key.pem"
VALID_DAYS = 20 * 365
"""A Pi has no real-time clock: a long validity that started well before the first boot."""


@dataclass(frozen=True, slots=True)
class PageCertificate:
    """Where the certificate and key are, and the certificate's SHA-256 fingerprint."""

    cert: Path
    key: Path
    fingerprint: str
    """``AB:CD:...``, as browsers show it."""


def host_name(gateway_id: str) -> str:
    """``roost-XXXX.local``: XXXX are the last 4 hex digits of the gateway id (0000 when it has fewer)."""
    digits = "".join(c for c in gateway_id.lower() if c in "0123456789abcdef")
    return f"roost-{digits[-4:].rjust(4, '0')}.local"


def fingerprint(pem: bytes) -> str:
    """The SHA-256 fingerprint of a PEM certificate, as ``AB:CD:...``; ValueError when it is not one.

    The standard library's PEM reader, so a gateway that already has its certificate never loads
    cryptography's X.509 code (about 7 MB of RSS) just to show a fingerprint.
    """
    text = pem.decode("ascii", errors="replace")
    if "-----BEGIN CERTIFICATE-----" not in text or "-----END CERTIFICATE-----" not in text:
        raise ValueError("not a PEM certificate")
    start = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    try:
        der = ssl.PEM_cert_to_DER_cert(text[start:end])
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"not a PEM certificate: {exc}") from None
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def make(folder: Path, hostname: str) -> PageCertificate:
    """A new key pair and self-signed certificate for ``hostname`` in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    cert_pem = cert.public_bytes(Encoding.PEM)
    _write(folder / KEY_FILE, key_pem, 0o600)
    _write(folder / CERT_FILE, cert_pem, 0o644)
    return PageCertificate(folder / CERT_FILE, folder / KEY_FILE, fingerprint(cert_pem))


def ensure(folder: Path, hostname: str) -> PageCertificate:
    """The certificate in ``folder``, made (and logged) when missing or unreadable."""
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    if cert.exists() and key.exists():
        try:
            found = PageCertificate(cert, key, fingerprint(cert.read_bytes()))
        except (OSError, ValueError) as exc:
            _LOGGER.warning("The local page's certificate %s cannot be read (%s): making a new one", cert, exc)
        else:
            _LOGGER.info("Local page certificate SHA-256 fingerprint: %s", found.fingerprint)
            return found
    made = make(folder, hostname)
    _LOGGER.warning(
        "Made a new self-signed certificate for the local page (%s); SHA-256 fingerprint: %s",
        hostname,
        made.fingerprint,
    )
    return made


def read_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the certificate in ``folder``, or None when there is none (or it is unreadable)."""
    try:
        return fingerprint((folder / CERT_FILE).read_bytes())
    except (OSError, ValueError):
        return None


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
