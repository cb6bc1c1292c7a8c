"""Helpers for the OTA tests: tiny wheels made by hand, update keys, bundles, and a range-serving HTTP server."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from roost.bundle_cli import build_bundle

FAKE_MODULE = 'VERSION = "{version}"\n\ndef main() -> None:\n    print(VERSION)\n'


def make_wheel(folder: Path, version: str, *, name: str = "roost", platform: str = "any") -> Path:
    """A minimal valid wheel of ``name`` holding a module ``fakegw`` (no build tools needed: it is a zip)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        "fakegw/__init__.py": FAKE_MODULE.format(version=version).encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: roost-tests\nRoot-Is-Purelib: true\nTag: py3-none-{platform}\n"
        ).encode(),
        f"{dist}/entry_points.txt": b"[console_scripts]\nfakegw = fakegw:main\n",
    }
    record = []
    path = folder / f"{name}-{version}-py3-none-{platform}.whl"
    with zipfile.ZipFile(path, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{n},sha256={digest},{len(data)}")
        record.append(f"{dist}/RECORD,,")
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


@dataclass
class Keys:
    """An update key pair, the public half written to a PEM file."""

    folder: Path
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def pub_file(self) -> Path:
        path = self.folder / f"update-{id(self)}.pub"
        if not path.exists():
            path.write_bytes(self.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
        return path


def make_bundle(tmp: Path, keys: Keys, version: str, *, platform: str = "any", name: str | None = None) -> Path:
    """A signed bundle holding one fake roost wheel of ``version``."""
    wheel = make_wheel(tmp / f"wheels-{version}-{platform}", version, platform=platform)
    out = tmp / (name or f"roost-{version}-{platform}.bundle")
    build_bundle([wheel], keys.private, out)
    return out


class RangeServer:
    """Serves files from a folder over HTTP on 127.0.0.1 with Range support; can cut the first N responses short."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cut_after: int | None = None
        self.cuts_left = 0
        self.requests: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = server.folder / self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append(rng)
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cuts_left > 0 and server.cut_after is not None:
                    server.cuts_left -= 1
                    self.wfile.write(body[: server.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> RangeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
