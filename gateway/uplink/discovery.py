"""Finding the cloud's MQTT endpoint: the discovery document, cached in the state folder.

``GET {cloud.url}/.well-known/roost`` names the MQTT URLs, the acknowledgement mode and the
compressions the ingest reads. The last good document is kept in ``{state_dir}/discovery.json``
with the base URL it came from, so a gateway restarted while the cloud's HTTP side is unreachable
still knows where to connect once the broker answers at the same address.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gateway.config import CloudSection, UplinkSection
from gateway.errors import DiscoveryError
from wire import senml
from wire.discovery import WELL_KNOWN_PATH, AckMode, Discovery, parse
from wire.errors import PayloadError

_LOGGER = logging.getLogger(__name__)

CACHE_NAME = "discovery.json"
MAX_DOCUMENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how the uplink sends: the MQTT URL, when a pack may be deleted, how packs are encoded."""

    mqtt_url: str
    """The first (preferred) MQTT URL."""
    ack: AckMode
    encoding: senml.Encoding
    compress: bool
    max_pack_bytes: int = 1 << 20
    source: str = "config"
    """Where the URL came from: ``config``, ``discovery`` or ``cache``."""
    mqtt_urls: tuple[str, ...] = ()
    """Every broker node's URL (``mqtt_url`` among them) when there are several; empty: ``mqtt_url`` alone."""
    subscribe_qos: int = 1
    """QoS of the subscriptions (``ack``, ``cmd/+``, ``state/desired``): the config's, else the document's."""

    @property
    def urls(self) -> tuple[str, ...]:
        """The broker URLs to fail over between (at least one)."""
        return self.mqtt_urls or (self.mqtt_url,)


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails: paho drops such a socket without closing it."""

    def do_handshake(self, block: bool = False) -> None:
        """The TLS handshake; the socket is closed if it fails."""
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client TLS context that verifies the server: against ``ca_file`` alone when set, else the system CAs."""
    if ca_file is None:
        ctx = ssl.create_default_context()
    else:
        # A pinned CA replaces the system store: a certificate from any other CA is refused.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(ca_file))
    ctx.sslsocket_class = _ClosingSSLSocket
    return ctx


def fetch(cloud: CloudSection) -> Discovery:
    """GET the discovery document (blocking: run it in an executor); raise DiscoveryError saying what failed."""
    url = cloud.url.rstrip("/") + WELL_KNOWN_PATH
    context = tls_context(cloud.ca_file) if url.startswith("https://") else None
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=cloud.connect_timeout_s, context=context) as resp:
            body = resp.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise DiscoveryError(f"{url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise DiscoveryError(
                f"TLS: the certificate of {url} is not trusted ({reason.verify_message}); "
                "pin the cloud's CA with cloud.ca_file"
            ) from None
        raise DiscoveryError(f"cannot read {url}: {reason}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DiscoveryError(f"{url}: the discovery document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return parse(json.loads(body))
    except (ValueError, PayloadError) as exc:
        raise DiscoveryError(f"{url}: not a valid discovery document: {exc}") from exc


def save_cache(state_dir: Path, base_url: str, doc: Discovery) -> None:
    """Keep ``doc`` in the state folder (atomically) for a restart without the cloud's HTTP side."""
    path = state_dir / CACHE_NAME
    tmp = path.with_suffix(".tmp")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"url": base_url, "document": doc}, indent=1))
        os.replace(tmp, path)
    except OSError as exc:
        _LOGGER.warning("cannot cache the discovery document in %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def load_cache(state_dir: Path, base_url: str) -> Discovery | None:
    """The cached document for ``base_url``, or None (no cache, another cloud, or unreadable)."""
    path = state_dir / CACHE_NAME
    try:
        cached = json.loads(path.read_text())
        if cached.get("url") != base_url:
            return None
        return parse(cached.get("document"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError, PayloadError) as exc:
        _LOGGER.warning("ignoring the cached discovery document %s: %s", path, exc)
        return None


def discover(cloud: CloudSection, state_dir: Path) -> tuple[Discovery, str]:
    """Fetch the document (caching it) or fall back to the cache; return it and ``discovery`` or ``cache``."""
    try:
        doc = fetch(cloud)
    except DiscoveryError as exc:
        cached = load_cache(state_dir, cloud.url)
        if cached is None:
            raise
        _LOGGER.debug("discovery failed (%s); using the cached document", exc)
        return cached, "cache"
    save_cache(state_dir, cloud.url, doc)
    return doc, "discovery"


def target(cloud: CloudSection, uplink: UplinkSection, doc: Discovery | None, source: str = "config") -> Target:
    """The MQTT URLs and pack options from the config and (unless ``cloud.mqtt_url(s)`` is set) the document.

    With ``cloud.mqtt_url(s)`` set and no document the acknowledgement mode is ``cloud`` (what Roost's
    cloud does) and packs are compressed only when ``uplink.compress`` is ``zlib``. A document listing
    several nodes (``mqtt_ws_urls``, ``mqtt_tcp_urls``) gives them all, in its order.
    """
    if cloud.broker_urls:
        urls = list(cloud.broker_urls)
    elif doc is None:
        raise DiscoveryError("no MQTT URL: set cloud.mqtt_url or serve a discovery document")
    elif cloud.transport in ("tcp", "tls"):
        tcp = doc.get("mqtt_tcp_url")
        if not tcp:
            raise DiscoveryError(f"cloud.transport is {cloud.transport!r} but the cloud offers no MQTT over TCP")
        urls = _with_first(tcp, doc.get("mqtt_tcp_urls", []))
        if cloud.transport == "tls":
            urls = ["mqtts://" + u.removeprefix("mqtt://") if u.startswith("mqtt://") else u for u in urls]
    else:
        urls = _with_first(doc["mqtt_ws_url"], doc.get("mqtt_ws_urls", []))
        if cloud.transport == "ws":
            urls = ["ws://" + u.removeprefix("wss://") if u.startswith("wss://") else u for u in urls]
        elif cloud.transport == "wss":
            urls = ["wss://" + u.removeprefix("ws://") if u.startswith("ws://") else u for u in urls]
    offered = doc["senml_compression"] if doc is not None else []
    compress = uplink.compress == "zlib" or (uplink.compress == "auto" and "zlib" in offered)
    return Target(
        mqtt_url=urls[0],
        ack=doc["ack"] if doc is not None else "cloud",
        encoding=uplink.encoding,
        compress=compress,
        max_pack_bytes=doc["max_pack_bytes"] if doc is not None else 1 << 20,
        source=source,
        mqtt_urls=tuple(urls) if len(urls) > 1 else (),
        subscribe_qos=(
            cloud.subscribe_qos
            if cloud.subscribe_qos is not None
            else (doc.get("subscribe_qos", 1) if doc is not None else 1)
        ),
    )


def _with_first(first: str, others: list[str]) -> list[str]:
    """``first`` then every other URL of ``others`` once, in order."""
    return [first, *(u for u in dict.fromkeys(others) if u != first)]
