"""``[adapters.ble]`` and its ``[[adapters.ble.devices]]``: the BLE adapter's settings (docs/ble.md).

Pure dataclasses: no bleak import here, so loading a config costs nothing when BLE is off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wire.names import check_metric, check_sensor
from wire.typedconfig import ConfigValueError, doc

GattFormat = Literal["u8", "s8", "u16le", "s16le", "u16be", "s16be", "u24le", "s24le", "u32le", "s32le", "f32le"]

_MAC = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
_HEX = re.compile(r"^[0-9a-fA-F]*$")
_UUID16 = re.compile(r"^[0-9a-f]{4}$")
_UUID128 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BLUETOOTH_BASE_UUID = "0000{}-0000-1000-8000-00805f9b34fb"
BIND_KEY_HEX_CHARS = 32


def normalize_mac(value: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` or ``AA-BB-...`` as ``AA:BB:CC:DD:EE:FF``; ValueError if it is not a MAC address."""
    mac = value.strip().upper().replace("-", ":")
    if not _MAC.match(mac):
        raise ValueError(f"{value!r} is not a Bluetooth address (six hex bytes, like A4:C1:38:0A:1B:2C)")
    return mac


def normalize_uuid(value: str) -> str:
    """A 16-bit (``2a6e``) or 128-bit characteristic UUID as 128-bit lower-case; ValueError otherwise."""
    u = value.strip().lower()
    if u.startswith("0x"):
        u = u[2:]
    if _UUID16.match(u):
        return BLUETOOTH_BASE_UUID.format(u)
    if _UUID128.match(u):
        return u
    raise ValueError(f"{value!r} is not a UUID (16-bit like 2a6e, or 128-bit like 0000181a-0000-1000-...)")


def parse_bind_key(value: str) -> bytes:
    """A bind key written as 32 hex characters; ValueError otherwise (the message never repeats the key)."""
    key = value.strip().replace(" ", "")
    if len(key) != BIND_KEY_HEX_CHARS or not _HEX.match(key):
        raise ValueError(f"must be {BIND_KEY_HEX_CHARS} hex characters (16 bytes), got {len(key)} characters")
    return bytes.fromhex(key)


@dataclass(frozen=True, slots=True, kw_only=True)
class GattPollSection:
    """One characteristic read on a schedule over a GATT connection, and how its bytes become a value."""

    characteristic: str = doc("Characteristic UUID, 16-bit (2a6e) or 128-bit")
    metric: str = doc("Metric name of the readings (temperature, battery, ...)")
    interval_s: float = doc("Seconds between reads", default=300.0)
    format: GattFormat = doc(
        "How the value is encoded: u8, s8, u16le, s16le, u16be, s16be, u24le, s24le, u32le, s32le or f32le",
        default="s16le",
    )
    scale: float = doc("Value = raw * scale + offset", default=1.0)
    offset: float = doc("Added after scaling", default=0.0)
    unit: str = doc("SenML unit of the value (Cel, %RH, %EL, V, ...); empty = none", default="")

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "characteristic", normalize_uuid(self.characteristic))
        except ValueError as exc:
            raise ConfigValueError("characteristic", str(exc)) from exc
        try:
            check_metric(self.metric)
        except ValueError as exc:
            raise ConfigValueError("metric", str(exc)) from exc
        if not 1.0 <= self.interval_s <= 86400:
            raise ConfigValueError("interval_s", "must be between 1 and 86400 seconds")
        if self.scale == 0:
            raise ConfigValueError("scale", "must not be 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class BleDeviceSection:
    """One BLE device the technician paired: its address, sensor id, bind key, availability and GATT reads."""

    address: str = doc("Bluetooth address (A4:C1:38:0A:1B:2C)")
    name: str = doc("Sensor id of its readings; empty = the decoder's (from the address)", default="")
    bind_key: str = doc(
        "Encryption key (32 hex characters) of an encrypted device (BTHome v2, Xiaomi); empty = none",
        default="",
        repr=False,
    )
    expected_interval_s: float = doc(
        "Unavailable after this many seconds unheard; 0 = adapters.ble.expected_interval_s", default=0.0
    )
    gatt: tuple[GattPollSection, ...] = doc(
        "Characteristics read over a GATT connection, one [[adapters.ble.devices.gatt]] table each", default=()
    )

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "address", normalize_mac(self.address))
        except ValueError as exc:
            raise ConfigValueError("address", str(exc)) from exc
        if self.name:
            try:
                check_sensor(self.name)
            except ValueError as exc:
                raise ConfigValueError("name", str(exc)) from exc
        if self.bind_key:
            try:
                parse_bind_key(self.bind_key)
            except ValueError as exc:
                raise ConfigValueError("bind_key", str(exc)) from exc
        if self.expected_interval_s != 0 and not 1.0 <= self.expected_interval_s <= 7 * 86400:
            raise ConfigValueError("expected_interval_s", "must be 0 (the adapter's default) or 1 to 604800 seconds")
        seen: dict[str, int] = {}
        for i, poll in enumerate(self.gatt):
            if poll.metric in seen:
                raise ConfigValueError(f"gatt[{i}].metric", f"{poll.metric!r} is already gatt[{seen[poll.metric]}]'s")
            seen[poll.metric] = i

    @property
    def key(self) -> bytes | None:
        """The bind key as bytes, or None."""
        return parse_bind_key(self.bind_key) if self.bind_key else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BleSection:
    """The BLE adapter (bleak): scans for advertisements, decodes them (BTHome, Xiaomi, Ruuvi, pvvx, iBeacon)."""

    enabled: bool = doc("Run the BLE adapter (imports bleak)", default=False)
    adapter: str = doc("Bluetooth controller to scan with (BlueZ name)", default="hci0")
    scanning_mode: Literal["active", "passive"] = doc(
        "active: ask for scan responses (names); passive: listen only (BlueZ 5.56+ with experimental features)",
        default="active",
    )
    accept: Literal["paired", "any"] = doc(
        "paired: only listed or paired devices are bridged, others are listed for pairing; any: every device",
        default="paired",
    )
    expected_interval_s: float = doc(
        "A listed device unheard this long is published as available = false", default=600.0
    )
    rssi: bool = doc(
        "Publish each sensor's signal strength (rssi, dBm) with its readings; beacons always do", default=False
    )
    devices: tuple[BleDeviceSection, ...] = doc(
        "Paired BLE devices, one [[adapters.ble.devices]] table each (docs/ble.md)", default=()
    )
    replay_file: Path | None = doc(
        "JSON-lines file of recorded advertisements replayed instead of a radio (demo, tests); none = the radio",
        default=None,
    )
    replay_loop: bool = doc("Start the replay file over when it ends", default=False)
    queue_size: int = doc("Advertisements waiting to be decoded, at most; more are dropped and counted", default=1024)
    watchdog_s: float = doc(
        "Restart the scanner when no advertisement arrived for this long (a silent BlueZ); 0 = never",
        default=120.0,
    )
    restart_initial_s: float = doc("First wait before starting a failed scanner again", default=1.0)
    restart_max_s: float = doc("Longest wait between attempts (capped exponential backoff with jitter)", default=60.0)
    start_timeout_s: float = doc("Seconds starting or stopping the scanner may take", default=15.0)
    max_connections: int = doc("GATT connections open at once, at most", default=2)
    connect_timeout_s: float = doc("Seconds a GATT connection may take to open", default=20.0)
    gatt_timeout_s: float = doc("Seconds one GATT read or write may take", default=10.0)

    def __post_init__(self) -> None:
        if not self.adapter or "/" in self.adapter:
            raise ConfigValueError("adapter", f"{self.adapter!r} must be a controller name like hci0")
        if not 1.0 <= self.expected_interval_s <= 7 * 86400:
            raise ConfigValueError("expected_interval_s", "must be between 1 and 604800 seconds")
        if not 1 <= self.queue_size <= 1_000_000:
            raise ConfigValueError("queue_size", "must be between 1 and 1000000")
        if self.watchdog_s != 0 and self.watchdog_s < 1.0:
            raise ConfigValueError("watchdog_s", "must be 0 (never) or at least 1 second")
        if self.restart_initial_s <= 0:
            raise ConfigValueError("restart_initial_s", "must be greater than 0")
        if self.restart_max_s < self.restart_initial_s:
            raise ConfigValueError("restart_max_s", "must be at least restart_initial_s")
        if self.start_timeout_s <= 0:
            raise ConfigValueError("start_timeout_s", "must be greater than 0")
        if not 1 <= self.max_connections <= 10:
            raise ConfigValueError("max_connections", "must be between 1 and 10 (BlueZ controllers manage a few)")
        if self.connect_timeout_s <= 0:
            raise ConfigValueError("connect_timeout_s", "must be greater than 0")
        if self.gatt_timeout_s <= 0:
            raise ConfigValueError("gatt_timeout_s", "must be greater than 0")
        addresses: dict[str, int] = {}
        names: dict[str, int] = {}
        for i, dev in enumerate(self.devices):
            if dev.address in addresses:
                raise ConfigValueError(
                    f"devices[{i}].address", f"{dev.address} is already devices[{addresses[dev.address]}]"
                )
            addresses[dev.address] = i
            if dev.name:
                if dev.name in names:
                    raise ConfigValueError(
                        f"devices[{i}].name", f"{dev.name!r} is already devices[{names[dev.name]}]'s"
                    )
                names[dev.name] = i

    def expected_interval(self, device: BleDeviceSection) -> float:
        """Seconds ``device`` may stay unheard before it is unavailable."""
        return device.expected_interval_s or self.expected_interval_s
