"""The setup PIN's scrypt file (layout.md's format) and the page's self-signed certificate."""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
from pathlib import Path

import pytest

from gateway.localpage import cert, pin


def test_a_pin_file_written_elsewhere_in_the_agreed_format_is_checked(tmp_path: Path) -> None:
    # What first boot writes: hashlib.scrypt with its own parameters, in layout.md's JSON.
    salt = bytes(range(16))
    digest = hashlib.scrypt(b"2468", salt=salt, n=2**12, r=8, p=1, dklen=32)
    path = tmp_path / "pin.json"
    path.write_text(json.dumps({"scheme": "scrypt", "n": 4096, "r": 8, "p": 1, "salt": salt.hex(),
                                "hash": digest.hex()}))  # fmt: skip
    hashed = pin.load(path)
    assert hashed is not None and hashed.matches("2468")
    assert not hashed.matches("2469") and not hashed.matches("24") and not hashed.matches("")


def test_write_then_load(tmp_path: Path) -> None:
    path = tmp_path / "local" / "pin.json"
    written = pin.write(path, "correct horse")
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["scheme"] == "scrypt" and doc["n"] == pin.N and "correct horse" not in path.read_text()
    loaded = pin.load(path)
    assert loaded == written and loaded.matches("correct horse")
    assert pin.load(tmp_path / "none.json") is None
    with pytest.raises(ValueError, match="4 to 64 characters"):
        pin.write(path, "123")


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ([], "not a JSON object"),
        ({"scheme": "bcrypt"}, "scheme must be 'scrypt'"),
        ({"scheme": "scrypt", "n": "16384", "r": 8, "p": 1}, "n must be a positive whole number"),
        ({"scheme": "scrypt", "n": 1000, "r": 8, "p": 1}, "n must be a power of 2"),
        ({"scheme": "scrypt", "n": 2**20, "r": 8, "p": 1}, "n must be a power of 2 up to 131072"),
        ({"scheme": "scrypt", "n": 1024, "r": 99, "p": 1}, "r must be at most 32"),
        ({"scheme": "scrypt", "n": 1024, "r": 8, "p": 1, "salt": "zz", "hash": "00"}, "salt and hash must be hex"),
        ({"scheme": "scrypt", "n": 1024, "r": 8, "p": 1, "salt": "00", "hash": "00" * 32}, "salt must be at least"),
    ],
)
def test_unusable_pin_files_are_named(tmp_path: Path, doc: object, problem: str) -> None:
    path = tmp_path / "pin.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(pin.PinFileError, match=problem):
        pin.load(path)
    path.write_text("{not json")
    with pytest.raises(pin.PinFileError, match="not JSON"):
        pin.load(path)


def test_the_certificate_is_made_once_logged_and_verifies(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    folder = tmp_path / "local"
    made = cert.ensure(folder, "roost-ab12.local")
    assert f"SHA-256 fingerprint: {made.fingerprint}" in caplog.text
    assert len(made.fingerprint) == 95 and made.fingerprint.count(":") == 31
    assert (folder / "key.pem").stat().st_mode & 0o777 == 0o600
    again = cert.ensure(folder, "roost-ab12.local")
    assert again.fingerprint == made.fingerprint, "an existing certificate is kept"
    ctx = ssl.create_default_context(cafile=str(made.cert))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(made.cert, made.key)
    assert ctx.cert_store_stats()["x509"] == 1
    (folder / "cert.pem").write_text("garbage")
    remade = cert.ensure(folder, "roost-ab12.local")
    assert remade.fingerprint != made.fingerprint and "cannot be read" in caplog.text
