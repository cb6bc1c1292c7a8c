"""Fetch a bundle over HTTP(S) into a file, resuming with ``Range`` after a cut connection or a restart.

Blocking (the updater runs in its own process). What has arrived is kept in ``DEST.part`` with the URL it
came from beside it (``DEST.part.url``): a later attempt, in this run or after a power cut, asks only for
the rest (``Range: bytes=N-``). A server that answers 200 instead of 206 sends the whole file again, so the
part is started afresh. Attempts and the total time are bounded; TLS verifies the server against the pinned
CA (``cloud.ca_file``) when one is configured.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from gateway.uplink.discovery import tls_context

_LOGGER = logging.getLogger(__name__)

CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(Exception):
    """The bundle could not be fetched; the message says why (HTTP status, TLS, too large, gave up)."""


def _parse_total(content_range: str | None, start: int) -> int | None:
    if content_range is None:
        raise DownloadError("the server answered 206 without a Content-Range")
    m = _CONTENT_RANGE.fullmatch(content_range.strip())
    if m is None or int(m.group(1)) != start:
        raise DownloadError(f"the server resumed at the wrong place ({content_range!r}, asked from byte {start})")
    return None if m.group(3) == "*" else int(m.group(3))


def download(
    url: str,
    dest: Path,
    *,
    ca_file: Path | None = None,
    max_bytes: int,
    attempts: int = 8,
    timeout_s: float = 20.0,
    total_timeout_s: float = 1800.0,
    headers: dict[str, str] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``); returns ``dest``; DownloadError when it gives up."""
    part = dest.with_name(dest.name + ".part")
    marker = dest.with_name(dest.name + ".part.url")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not marker.exists() or marker.read_text() != url:
        part.unlink(missing_ok=True)
        marker.write_text(url)
    context: ssl.SSLContext | None = tls_context(ca_file) if url.startswith("https://") else None
    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"{url!r}: only http:// and https:// URLs are fetched")
    started = time.monotonic()
    last_error = "no attempt made"
    for attempt in range(attempts):
        if time.monotonic() - started > total_timeout_s:
            break
        have = part.stat().st_size if part.exists() else 0
        try:
            done = _attempt(url, part, have, context, max_bytes, timeout_s, headers or {}, progress)
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:  # cut or refused: retry
            reason = getattr(exc, "reason", None)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise DownloadError(f"TLS: the certificate of {url} is not trusted ({reason.verify_message})") from exc
            last_error = str(exc) or type(exc).__name__
            _LOGGER.info("update: download of %s interrupted at %d bytes (%s); resuming", url, have, last_error)
            sleep(min(10.0, 0.2 * 2**attempt))
            continue
        if done:
            marker.unlink(missing_ok=True)
            os.replace(part, dest)
            return dest
    raise DownloadError(f"gave up on {url} after {attempts} attempts: {last_error}")


def _attempt(  # noqa: PLR0917 - one request's every input, private
    url: str,
    part: Path,
    have: int,
    context: ssl.SSLContext | None,
    max_bytes: int,
    timeout_s: float,
    headers: dict[str, str],
    progress: Callable[[int, int | None], None] | None,
) -> bool:
    """One request; True when the file is complete."""
    req = urllib.request.Request(url, headers=dict(headers, **({"Range": f"bytes={have}-"} if have else {})))
    try:
        resp = urllib.request.urlopen(req, timeout=timeout_s, context=context)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # asked beyond the end: what we have may be the whole file
            part.unlink(missing_ok=True)
            raise OSError("the server refused the range; starting again") from exc
        raise DownloadError(f"{url} answered HTTP {exc.code} {exc.reason}") from exc
    with resp:
        if resp.status == 206:
            total = _parse_total(resp.headers.get("Content-Range"), have)
            mode = "ab"
        else:
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
            have, mode = 0, "wb"
        if total is not None and total > max_bytes:
            raise DownloadError(f"{url} is {total} bytes, over the {max_bytes} a bundle may have")
        with part.open(mode) as out:
            for _ in range(max_bytes // CHUNK + 2):
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                have += len(chunk)
                if have > max_bytes:
                    raise DownloadError(f"{url} sent more than the {max_bytes} bytes a bundle may have")
                out.write(chunk)
                if progress is not None:
                    progress(have, total)
            out.flush()
            os.fsync(out.fileno())
    if total is not None and have < total:
        raise OSError(f"the connection ended at {have} of {total} bytes")
    return True


def sha256_file(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
