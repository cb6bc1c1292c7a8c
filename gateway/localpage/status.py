"""What the status page and ``roost gateway status`` show: one JSON-ready dict, no secrets.

Cloud connection, enrollment (the user code while it waits for approval), first boot's report, the
buffer's depth, each adapter's state, and where the local page is. Everything here is local: it works
with no cloud at all.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import identity
from gateway.localpage import cert
from gateway.localpage.config import PIN_FOLDER

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.daemon import Daemon

FIRSTBOOT_REPORT = "firstboot-report.json"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def firstboot_report(state_dir: Path) -> dict[str, Any] | None:
    """First boot's report (``{"ok", "errors": [{"key", "message"}], "at"}``), or None when there is none."""
    doc = _read_json(state_dir / FIRSTBOOT_REPORT)
    if doc is None:
        return None
    errors = [
        {"key": str(e.get("key", "")), "message": str(e.get("message", ""))}
        for e in doc.get("errors") or []
        if isinstance(e, Mapping)
    ]
    return {"ok": bool(doc.get("ok")) and not errors, "errors": errors, "at": doc.get("at")}


def enrollment(state_dir: Path) -> dict[str, Any] | None:
    """The enrollment status the identity code wrote (state, user code, verification URI), or None."""
    doc = _read_json(state_dir / identity.IDENTITY_DIR / identity.STATUS_FILE)
    if doc is None:
        return None
    keep = ("state", "user_code", "verification_uri", "verification_uri_complete", "error", "gateway_id", "tenant")
    return {k: doc[k] for k in keep if k in doc}


def adapter_state(adapter: Any) -> dict[str, Any]:
    """One adapter's name, kind, state in a word, a detail line, and its counters."""
    try:
        stats = adapter.stats()
    except Exception as exc:  # a broken stats() must not take the status page down
        stats = {"problem": str(exc)}
    name = str(getattr(adapter, "name", type(adapter).__name__))
    state, detail = "running", ""
    if isinstance(stats.get("scanner"), Mapping):  # BLE
        state = str(stats["scanner"].get("state", state))
        detail = str(stats["scanner"].get("problem", ""))
    elif isinstance(stats.get("state"), str):  # Zigbee
        state, detail = stats["state"], str(stats.get("problem") or "")
        if stats.get("pairing_open"):
            detail = (detail + "; " if detail else "") + "pairing open"
    elif isinstance(stats.get("ports"), Mapping):  # serial
        ports = stats["ports"]
        bad = [f"{path}: {p.get('state')} {p.get('problem') or ''}".strip() for path, p in ports.items()
               if isinstance(p, Mapping) and p.get("state") != "open"]  # fmt: skip
        state = "running" if not bad else "degraded"
        detail = "; ".join(bad) or f"{len(ports)} port(s) open"
    elif isinstance(stats.get("devices"), Mapping):  # pollers (I2C, SPI, Modbus)
        devices = stats["devices"]
        down = [s for s, d in devices.items() if isinstance(d, Mapping) and d.get("available") is False]
        state = "running" if not down else "degraded"
        detail = f"{len(devices) - len(down)} of {len(devices)} device(s) answering"
        if down:
            detail += f"; not answering: {', '.join(sorted(down))}"
    rejected = stats.get("rejected") if isinstance(stats.get("rejected"), Mapping) else {}
    return {
        "name": name,
        "kind": str(getattr(adapter, "kind", name)),
        "state": state,
        "detail": detail,
        "accepted": stats.get("accepted", 0),
        "rejected": dict(rejected or {}),
    }


def _version() -> str:
    try:
        return metadata.version("roost")
    except metadata.PackageNotFoundError:
        return "unknown"


def _files(config: GatewayConfig) -> dict[str, Any]:
    state_dir = config.gateway.state_dir
    return {
        "enrollment": enrollment(state_dir),
        "firstboot": firstboot_report(state_dir),
        "fingerprint": cert.read_fingerprint(state_dir / PIN_FOLDER),
        "pin_set": config.local.pin_path(state_dir).exists(),
    }


def build(config: GatewayConfig, daemon: Daemon, files: Mapping[str, Any]) -> dict[str, Any]:
    """The status from the running parts (in the event loop: they change there) and what ``_files`` read."""
    uplink = daemon.uplink
    counters = uplink.counters()
    buf = daemon.buffer.stats()
    local = config.local
    host = cert.host_name(daemon.gateway_id)
    port = "" if local.port == 443 else f":{local.port}"
    return {
        "gateway": {
            "id": daemon.gateway_id,
            "tenant": config.gateway.tenant,
            "version": _version(),
            "uptime_s": round(time.time() - daemon.started, 1),
        },
        "cloud": {
            "url": config.cloud.url,
            "connected": uplink.connected,
            "sent": counters["sent"],
            "reconnects": counters["reconnects"],
        },
        "enrollment": files["enrollment"],
        "firstboot": files["firstboot"],
        "buffer": {
            "readings": buf["buffered"],
            "bytes": buf["bytes"],
            "max_bytes": config.buffer.max_bytes,
            "in_flight": buf["inflight"],
            "dropped": buf["dropped"],
            "events": buf["events_buffered"],
        },
        "adapters": [adapter_state(a) for a in daemon.adapters],
        "local_page": {
            "enabled": local.enabled,
            "url": f"https://{host}{port}/",
            "fingerprint": files["fingerprint"],
            "pin_set": files["pin_set"],
        },
    }


async def collect(config: GatewayConfig, daemon: Daemon) -> dict[str, Any]:
    """The status now: the small files are read on a worker thread, the running parts in the loop."""
    files = await asyncio.to_thread(_files, config)
    return build(config, daemon, files)
