"""The device registry: what the gateway knows about each paired device, in a small human-readable file.

One TinyDB JSON file in the state folder (``state_dir/devices.json``, indented so a technician can read
it). Devices are keyed by ``(kind, id)``: ``("zigbee", "00:12:4b:00:1c:a1:b2:c3")``,
``("ble", "A4:C1:38:0A:1B:2C")``. Each holds the name and location the technician gave it, what the
interview found (model, manufacturer, endpoints and clusters), ``added_at`` and ``last_seen``
(seconds since 1970), and whatever else its adapter keeps (``extra``).

Some of ``extra`` is secret (a BLE bind key): the file is created with mode 0600, and
:meth:`Registry.devices` leaves secrets out unless asked (:func:`public`), so no listing shows them.

TinyDB rewrites its whole file on every write (about 12 inserts/s at 20,000 rows here): fine for tens
or hundreds of devices, never per reading. :meth:`Registry.touch` therefore writes ``last_seen`` at
most once per ``touch_interval_s`` per device. The methods block: call them through
``asyncio.to_thread`` from the event loop. A lock serializes them (TinyDB is not thread-safe).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

FILE_NAME = "devices.json"
TOUCH_INTERVAL_S = 3600.0
_FIELDS = ("name", "location", "model", "manufacturer", "endpoints", "status", "extra")
SECRET_EXTRA = frozenset({"bind_key"})
"""Keys of ``extra`` that hold secrets: listed as ``{key}_set: true`` instead of their value."""


def public(entry: Mapping[str, Any]) -> dict[str, Any]:
    """``entry`` without its secrets (what a listing may show)."""
    out = dict(entry)
    extra = out.get("extra")
    if isinstance(extra, Mapping) and SECRET_EXTRA & set(extra):
        out["extra"] = {
            **{k: v for k, v in extra.items() if k not in SECRET_EXTRA},
            **{f"{k}_set": True for k in SECRET_EXTRA if extra.get(k)},
        }
    return out


class Registry:
    """Devices by (kind, id), kept in ``path`` (a TinyDB JSON file)."""

    def __init__(
        self, path: Path, *, touch_interval_s: float = TOUCH_INTERVAL_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created 0600 before TinyDB opens it: no moment readable by others
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._db = TinyDB(path, indent=1, sort_keys=True, ensure_ascii=False)
        self._table = self._db.table("devices")
        self._lock = threading.Lock()
        self._clock = clock
        self._touch_interval_s = touch_interval_s
        self._touched: dict[tuple[str, str], float] = {}
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)  # names of places a technician would not publish, bind keys

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Registry:
        """The registry of a gateway's state folder."""
        return cls(state_dir / FILE_NAME)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def get(self, kind: str, device_id: str) -> dict[str, Any] | None:
        """The entry of one device, or None."""
        q = Query()
        with self._lock:
            doc = self._table.get((q.kind == kind) & (q.id == device_id))
        return None if doc is None else dict(doc)

    def upsert(self, kind: str, device_id: str, **fields: Any) -> dict[str, Any]:
        """Create or update a device's entry with ``fields`` (name, location, model, ...); the entry after."""
        unknown = set(fields) - {*_FIELDS, "last_seen"}
        if unknown:
            raise ValueError(f"unknown registry field(s): {sorted(unknown)}")
        q = Query()
        cond = (q.kind == kind) & (q.id == device_id)
        now = self._clock()
        with self._lock:
            current = self._table.get(cond)
            if current is None:
                doc: dict[str, Any] = {
                    "kind": kind,
                    "id": device_id,
                    "name": "",
                    "location": "",
                    "model": None,
                    "manufacturer": None,
                    "endpoints": {},
                    "status": "paired",
                    "extra": {},
                    "added_at": now,
                    "last_seen": now,
                }
                doc.update(fields)
                self._table.insert(doc)
            else:
                doc = {**dict(current), **fields}
                self._table.update(fields, cond)
        return doc

    def label(
        self, kind: str, device_id: str, *, name: str | None = None, location: str | None = None
    ) -> dict[str, Any]:
        """Set the technician's name and/or location of a device (it need not be known yet)."""
        fields: dict[str, Any] = {}
        if name is not None:
            fields["name"] = name
        if location is not None:
            fields["location"] = location
        return self.upsert(kind, device_id, **fields)

    def touch(self, kind: str, device_id: str, when: float | None = None) -> bool:
        """Note that a device was heard; writes at most once per touch interval. True when it wrote."""
        when = self._clock() if when is None else when
        key = (kind, device_id)
        last = self._touched.get(key)
        if last is not None and when - last < self._touch_interval_s:
            return False
        q = Query()
        with self._lock:
            updated = self._table.update({"last_seen": when}, (q.kind == kind) & (q.id == device_id))
        self._touched[key] = when
        return bool(updated)

    def remove(self, kind: str, device_id: str) -> bool:
        """Forget a device; True if it was known."""
        q = Query()
        with self._lock:
            removed = self._table.remove((q.kind == kind) & (q.id == device_id))
        self._touched.pop((kind, device_id), None)
        return bool(removed)

    def devices(self, kind: str | None = None, *, secrets: bool = False) -> list[dict[str, Any]]:
        """Every entry (of one kind), sorted by kind and id; without secrets unless ``secrets``."""
        with self._lock:
            docs = [dict(d) if secrets else public(d) for d in self._table.all()]
        if kind is not None:
            docs = [d for d in docs if d.get("kind") == kind]
        return sorted(docs, key=lambda d: (str(d.get("kind")), str(d.get("id"))))

    def restore(self, entries: list[Mapping[str, Any]], kind: str) -> int:
        """Add entries of ``kind`` from a backup that this registry does not hold yet; how many were added."""
        added = 0
        for entry in entries:
            device_id = entry.get("id")
            if not isinstance(device_id, str) or entry.get("kind", kind) != kind or self.get(kind, device_id):
                continue
            fields = {k: entry[k] for k in _FIELDS if k in entry}
            self.upsert(kind, device_id, **fields)
            added += 1
        return added
