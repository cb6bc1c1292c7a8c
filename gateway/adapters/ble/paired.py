"""BLE devices paired by a technician (``roost gateway pair ble``), kept in the device registry.

An entry is ``("ble", MAC)`` with the technician's name and location (labels, as for Zigbee: the
readings keep the MAC as their sensor id) and the bind key in ``extra["bind_key"]`` (32 lower-case hex
characters; the registry file is mode 0600 and its listings leave the key out). At start the adapter
adds these devices to those of ``[[adapters.ble.devices]]``; a device in both is taken from
gateway.toml (:func:`merge`).

Pure functions over a :class:`~gateway.registry.Registry` (blocking: call them through
``asyncio.to_thread`` from the event loop); no bleak import, so the command line can use them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.adapters.ble.config import BleDeviceSection, normalize_mac, parse_bind_key
from gateway.registry import Registry, public

_LOGGER = logging.getLogger(__name__)

KIND = "ble"
KEY_FIELD = "bind_key"
MAX_LABEL = 200


class PairingRefused(ValueError):
    """A pairing request that cannot be carried out; the message (never the key) is for the technician."""


@dataclass(frozen=True, slots=True)
class PairedBle:
    """One BLE device from the registry: its address and bind key."""

    address: str
    key: bytes | None = field(default=None, repr=False)


def check_mac(mac: object) -> str:
    """The address as ``AA:BB:CC:DD:EE:FF``; PairingRefused when it is not one."""
    if not isinstance(mac, str):
        raise PairingRefused("--mac is missing: the device's Bluetooth address, like A4:C1:38:0A:1B:2C")
    try:
        return normalize_mac(mac)
    except ValueError as exc:
        raise PairingRefused(f"--mac: {exc}") from None


def check_key(key: object) -> str | None:
    """The bind key as 32 lower-case hex characters (None for none); PairingRefused otherwise, without the key."""
    if key is None or key == "":
        return None
    if not isinstance(key, str):
        raise PairingRefused("--key must be text: 32 hex characters")
    try:
        return parse_bind_key(key).hex()
    except ValueError as exc:
        raise PairingRefused(f"--key {exc}") from None


def check_label(what: str, value: object) -> str:
    """A name or location: text of at most MAX_LABEL characters."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_LABEL or any(ord(c) < 32 for c in value):
        raise PairingRefused(f"--{what} must be one line of at most {MAX_LABEL} characters")
    return value.strip()


def record(registry: Registry, address: str, *, key: str | None, name: str, location: str) -> dict[str, Any]:
    """Create or update the device's entry (a key of None keeps the one it had); the entry without its key."""
    current = registry.get(KIND, address)
    extra: dict[str, Any] = dict(current.get("extra") or {}) if current else {}
    if key is not None:
        extra[KEY_FIELD] = key
    fields: dict[str, Any] = {"extra": extra, "status": "paired"}
    if name or current is None:
        fields["name"] = name
    if location or current is None:
        fields["location"] = location
    return public(registry.upsert(KIND, address, **fields))


def forget(registry: Registry, address: str) -> bool:
    """Remove the device's entry; True if it was there."""
    return registry.remove(KIND, address)


def from_registry(entries: Iterable[Mapping[str, Any]]) -> list[PairedBle]:
    """The BLE devices of registry entries; an entry with a bad address or key is skipped (logged, never its key)."""
    out: list[PairedBle] = []
    for entry in entries:
        raw_id = entry.get("id")
        try:
            address = normalize_mac(str(raw_id))
        except ValueError:
            _LOGGER.warning("Ignoring BLE registry entry %r: not a Bluetooth address", raw_id)
            continue
        extra = entry.get("extra")
        raw_key = extra.get(KEY_FIELD) if isinstance(extra, Mapping) else None
        key: bytes | None = None
        if raw_key:
            try:
                key = parse_bind_key(str(raw_key))
            except ValueError as exc:
                _LOGGER.warning("Ignoring the bind key of BLE device %s in the registry: it %s", address, exc)
        out.append(PairedBle(address, key))
    return out


def merge(configured: Iterable[BleDeviceSection], paired: Iterable[PairedBle]) -> tuple[list[PairedBle], list[str]]:
    """The registry's devices that gateway.toml does not list, and the addresses it lists too (config wins)."""
    listed = {d.address for d in configured}
    taken: list[PairedBle] = []
    both: list[str] = []
    for p in paired:
        if p.address in listed:
            both.append(p.address)
        else:
            taken.append(p)
    return taken, both
