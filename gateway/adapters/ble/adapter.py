"""The BLE adapter: scans with bleak, decodes advertisements with ``drivers.ble``, publishes paired devices' readings.

Per advertisement (bleak's detection callback only queues it; one task decodes, in batches):

* the same packet heard again (identical bytes after a packet with a packet id or encryption, or
  the same packet id) is a duplicate: counted, not published again;
* decoded with the device's bind key and the adapter's replay state; formats no decoder knows
  (phones, headphones) are counted as ``foreign`` and ignored; decoding failures are counted in
  :attr:`rejected` by reason (``needs-key``, ``bad-mic``, ``replayed-counter``, ``not-encrypted``,
  ``malformed``, ``unsupported``) and logged once per device and reason;
* a device that is neither listed in ``[[adapters.ble.devices]]`` nor paired is listed for pairing
  and counted (``unpaired``), not forwarded (unless ``accept = "any"``);
* readings carry the reception time and go to the hub in one publish per batch.

Devices paired at run time (``roost gateway pair ble``, through the control socket) are recorded in
the device registry (``paired.py``) and taken at once; the registry's devices are loaded at start,
beside those of gateway.toml (which wins for a device in both). Devices heard but not paired are
kept in :attr:`BleAdapter.heard_unpaired` for ``roost gateway devices``.

Listed devices unheard for their ``expected_interval_s`` are published ``available = false`` once
(WARNING); the next advertisement or GATT read publishes ``available = true`` (INFO).

The scanner is restarted when it fails to start (BlueZ gone, controller unplugged: capped
exponential backoff with jitter, WARNING once, INFO on recovery) and when it falls silent for
``watchdog_s`` (bluetoothd restarted under it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner

from drivers.ble import errors as ble_errors
from drivers.ble.decode import ReplayState, decode
from gateway.adapters.base import ActuationError, Adapter
from gateway.adapters.ble import paired as ble_paired
from gateway.adapters.ble.config import BleDeviceSection, BleSection, normalize_mac
from gateway.adapters.ble.errors import BleError
from gateway.adapters.ble.gatt import GattLink, GattScheduler
from gateway.adapters.ble.scanner import ReplayScannerBackend, ReplaySource, open_scanner, to_advertisement
from gateway.errors import BufferFull
from gateway.hub import Hub
from gateway.pairing import Pairing
from gateway.registry import Registry
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

AVAILABLE = "available"
"""The metric published when a listed device goes unheard (false) or is heard again (true)."""
BATCH_MAX = 512
"""Most advertisements decoded into one hub publish."""
MAX_TRACKED = 4096
"""Addresses whose last packet is remembered for de-duplication (a busy street must not grow memory)."""
MAX_LOGGED = 1024
"""(device, reason) pairs remembered for log-once; past it, repeats go to DEBUG."""
COUNTERS_SAVE_S = 60.0
"""How often the encryption counters are saved when they changed (an SD card wears with every write)."""

# Decoding failures by reason: the counter's key and what the technician should check.
_REASONS: tuple[tuple[type[ble_errors.BleDecodeError], str, str], ...] = (
    (ble_errors.BindKeyRequired, "needs-key", "sends encrypted data and has no bind key: add its bind_key"),
    (ble_errors.BadMic, "bad-mic", "could not be decrypted: is its bind key right?"),
    (ble_errors.ReplayedCounter, "replayed-counter", "repeated an old encryption counter (a replay, or a reset)"),
    (ble_errors.NotEncrypted, "not-encrypted", "has a bind key but sent plain data (a spoof or a downgrade)"),
    (ble_errors.AddressRequired, "malformed", "sent encrypted data without its address"),
    (ble_errors.UnsupportedFormat, "unsupported", "uses a format version Roost does not decode"),
    (ble_errors.MalformedAdvertisement, "malformed", "sent a malformed advertisement"),
)


@dataclass(slots=True)
class _LastPacket:
    fingerprint: tuple[Any, ...]
    packet_id: int | None
    format: str
    dedupable: bool


@dataclass(slots=True)
class HeardUnpaired:
    """A device heard but not paired: what ``roost gateway devices`` lists for the technician to pair."""

    address: str
    sensor: str
    format: str
    status: str
    """``unpaired`` (it decodes) or ``needs-key`` (encrypted, no bind key)."""
    first_seen: float
    last_seen: float
    heard: int = 0

    def as_entry(self) -> dict[str, Any]:
        """A registry-like entry (kind, id, status, ...)."""
        return {
            "kind": ble_paired.KIND,
            "id": self.address,
            "name": "",
            "location": "",
            "model": self.format,
            "status": self.status,
            "sensor": self.sensor,
            "heard": self.heard,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


@dataclass(slots=True)
class Availability:
    """Whether a listed device has been heard within its expected interval (reported in health)."""

    address: str
    sensor: str
    expected_s: float
    last_heard: float
    """Monotonic time of the last advertisement or GATT read (the adapter's start before the first)."""
    available: bool | None = None
    """None until the device is heard or its interval passes."""
    heard: int = 0

    def as_dict(self, now: float) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "sensor": self.sensor,
            "available": self.available,
            "heard": self.heard,
            "unheard_s": round(now - self.last_heard, 1),
            "expected_s": self.expected_s,
        }


class BleAdapter(Adapter):
    """Scans, decodes and publishes until cancelled; GATT reads on a schedule for devices that list them."""

    kind = ble_paired.KIND

    name = "ble"

    def __init__(
        self,
        config: BleSection,
        hub: Hub,
        pairing: Pairing,
        *,
        keys: Mapping[str, bytes] | None = None,
        counters_file: Path | None = None,
        registry: Registry | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        scanner_kwargs: Mapping[str, Any] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.config = config
        self._hub = hub
        self._pairing = pairing
        self._scanner_backend = scanner_backend
        self._scanner_kwargs: dict[str, Any] = dict(scanner_kwargs or {})
        self._rng = rng or random.Random()
        self._clock = clock
        self._wall = wall_clock
        self.devices: dict[str, BleDeviceSection] = {d.address: d for d in config.devices}
        self._keys: dict[str, bytes] = {normalize_mac(a): k for a, k in (keys or {}).items()}
        for d in config.devices:
            if d.key is not None:
                self._keys[d.address] = d.key
        self._by_name = {d.name: d.address for d in config.devices if d.name}
        self._configured = frozenset(self.devices)
        self.registry = registry
        """Where devices paired at run time are kept (none: they last until the adapter stops)."""
        self.heard_unpaired: dict[str, HeardUnpaired] = {}
        self._group: asyncio.TaskGroup | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._replay_state = ReplayState()
        self.counters_file = counters_file
        """Where the last encryption counter per device is kept, so a recording cannot be replayed after a restart."""
        self._counters_saved: dict[str, int] = {}
        self._last: dict[str, _LastPacket] = {}
        self._ble_devices: dict[str, BLEDevice] = {}
        self._queue: asyncio.Queue[tuple[float, BLEDevice, AdvertisementData]] = asyncio.Queue(config.queue_size)
        self._logged: set[tuple[str, str]] = set()
        self._queue_full_logged = False
        self._last_advert = clock()
        self._scanning = asyncio.Event()
        self._measured = 0
        start = clock()
        self.availability: dict[str, Availability] = {
            d.address: Availability(d.address, d.name or d.address, config.expected_interval(d), start)
            for d in config.devices
        }
        self.link = GattLink(
            config, device_lookup=self._ble_devices.get, backend=client_backend, backend_kwargs=client_kwargs
        )
        self.gatt = GattScheduler(
            self.link, config.devices, self._sensor_of, self._publish_gatt, clock=clock, wall_clock=wall_clock
        )
        self.foreign = 0
        """Advertisements in formats no decoder knows (phones, headphones, ...): ignored."""
        self.duplicates = 0
        """Packets heard again (the same packet id or bytes): not published twice."""
        self.adverts = 0
        """Advertisements received from the scanner."""
        self.scanner_state = "stopped"
        """stopped, starting, scanning or unavailable."""
        self.scanner_problem = ""
        self.scanner_starts = 0
        self.start_failures = 0
        self.watchdog_restarts = 0

    # -- running ---------------------------------------------------------------------------------

    async def wait_scanning(self) -> None:
        """Wait until the scanner has started."""
        await self._scanning.wait()

    async def run(self) -> None:
        """Scan, decode, watch availability and read GATT characteristics until cancelled."""
        if self._scanner_backend is None and self.config.replay_file is not None:
            source = await asyncio.to_thread(
                ReplaySource.from_file, self.config.replay_file, loop=self.config.replay_loop
            )
            self._scanner_backend = ReplayScannerBackend
            self._scanner_kwargs = {"replay": source}
            _LOGGER.info(
                "BLE replaying %d recorded advertisements from %s", len(source.records), self.config.replay_file
            )
        if self.counters_file is not None:
            self._counters_saved = await asyncio.to_thread(_load_counters, self.counters_file)
            self._replay_state = ReplayState(self._counters_saved)
        if self.registry is not None:
            await self._load_registry(self.registry)
        start = self._clock()
        for st in self.availability.values():
            st.last_heard = start
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._scan_forever(), name="ble scanner")
                tg.create_task(self._decode_forever(), name="ble decode")
                if self.availability:
                    self._watch_task = tg.create_task(self._watch_availability(), name="ble availability")
                self._group = tg  # a device paired later starts the availability watch (_adopt)
                if self.gatt.devices:
                    tg.create_task(self.gatt.run(), name="ble gatt")
                if self.counters_file is not None:
                    tg.create_task(self._save_counters_forever(), name="ble counters")
        finally:
            self._group = self._watch_task = None
            self._save_counters()  # small and rare: written in place on the way out, even when cancelled

    # -- pairing at run time (the control socket) ------------------------------------------------

    async def _load_registry(self, registry: Registry) -> None:
        entries = await asyncio.to_thread(registry.devices, ble_paired.KIND, secrets=True)
        taken, both = ble_paired.merge(self.config.devices, ble_paired.from_registry(entries))
        for address in both:
            _LOGGER.info(
                "BLE device %s is in gateway.toml and in the device registry: gateway.toml's entry is used", address
            )
        for device in taken:
            self._adopt(device)
        if taken:
            _LOGGER.info("BLE: %d device(s) paired from the device registry", len(taken))

    def _adopt(self, device: ble_paired.PairedBle) -> None:
        address = device.address
        self.devices[address] = BleDeviceSection(address=address)
        if device.key is not None:
            self._keys[address] = device.key
        else:
            self._keys.pop(address, None)
        if address not in self.availability:
            self.availability[address] = Availability(address, address, self.config.expected_interval_s, self._clock())
        if self._group is not None and self._watch_task is None:
            self._watch_task = self._group.create_task(self._watch_availability(), name="ble availability")
        self.heard_unpaired.pop(address, None)
        self._pairing.pending.pop(address, None)
        self._logged = {(a, r) for a, r in self._logged if a != address}  # its next problem is worth a line again

    def _refuse_configured(self, address: str, what: str) -> None:
        if address in self._configured:
            raise ble_paired.PairingRefused(
                f"{address} is listed in gateway.toml ([[adapters.ble.devices]]), which wins over pairing: "
                f"{what} it there"
            )

    async def pair_device(
        self, mac: object, *, key: object = None, name: object = "", location: object = ""
    ) -> dict[str, Any]:
        """Pair a device now (bind key, name, location): recorded in the registry, bridged from its next advert."""
        address = ble_paired.check_mac(mac)
        hex_key = ble_paired.check_key(key)
        label, place = ble_paired.check_label("name", name), ble_paired.check_label("location", location)
        self._refuse_configured(address, "change")
        # Without a new key, the one it had stays (as ble_paired.record keeps it in the registry).
        device = ble_paired.PairedBle(address, bytes.fromhex(hex_key) if hex_key else self._keys.get(address))
        if self.registry is not None:
            entry = await asyncio.to_thread(
                ble_paired.record, self.registry, address, key=hex_key, name=label, location=place
            )
        else:
            entry = {"kind": ble_paired.KIND, "id": address, "name": label, "location": place, "status": "paired"}
        self._adopt(device)
        _LOGGER.info("BLE device %s paired%s", address, " with a bind key" if device.key else "")
        return {**entry, "active": True, "encrypted": device.key is not None}

    async def unpair_device(self, mac: object) -> dict[str, Any]:
        """Forget a device paired at run time: its readings are no longer bridged."""
        address = ble_paired.check_mac(mac)
        self._refuse_configured(address, "remove")
        known = address in self.devices
        if self.registry is not None:
            known = await asyncio.to_thread(ble_paired.forget, self.registry, address) or known
        if not known:
            raise ble_paired.PairingRefused(f"{address} is not paired")
        self.devices.pop(address, None)
        self._keys.pop(address, None)
        self.availability.pop(address, None)
        _LOGGER.info("BLE device %s unpaired", address)
        return {"kind": ble_paired.KIND, "id": address, "removed": True, "active": True}

    def pending(self) -> list[dict[str, Any]]:
        """Devices heard but not paired, most recently heard first."""
        return [h.as_entry() for h in sorted(self.heard_unpaired.values(), key=lambda h: -h.last_seen)]

    def preview(self, address: str) -> list[dict[str, Any]]:
        """What the last advertisement heard from ``address`` decodes to with no key ([] when encrypted).

        Decoded again from the packet kept for de-duplication, with no replay state, so a preview never
        changes what the adapter accepts (the local page shows it beside devices waiting to be paired).
        """
        from drivers.ble.advertisement import Advertisement
        from drivers.ble.decode import decode
        from drivers.ble.errors import BleDecodeError

        last = self._last.get(address)
        if last is None or len(last.fingerprint) != 2:
            return []
        try:
            result = decode(Advertisement(address, None, None, dict(last.fingerprint[0]), dict(last.fingerprint[1])))
        except (BleDecodeError, TypeError, ValueError):
            return []
        if result is None:
            return []
        return [{"metric": m.metric, "value": m.value, "unit": m.unit or ""} for m in result.measurements]

    def _note_unpaired(self, address: str, sensor: str, fmt: str, status: str) -> None:
        now = self._wall()
        entry = self.heard_unpaired.get(address)
        if entry is None:
            if len(self.heard_unpaired) >= MAX_TRACKED:
                self.heard_unpaired.pop(next(iter(self.heard_unpaired)))  # the longest-listed goes first
            entry = self.heard_unpaired[address] = HeardUnpaired(address, sensor, fmt, status, now, now)
        entry.sensor, entry.format, entry.status, entry.last_seen = sensor, fmt, status, now
        entry.heard += 1

    async def _save_counters_forever(self) -> None:
        while True:
            await asyncio.sleep(COUNTERS_SAVE_S)
            snapshot = self._replay_state.snapshot()
            if snapshot != self._counters_saved:
                await asyncio.to_thread(self._save_counters, snapshot)

    def _save_counters(self, snapshot: dict[str, int] | None = None) -> None:
        if self.counters_file is None:
            return
        snapshot = self._replay_state.snapshot() if snapshot is None else snapshot
        if snapshot == self._counters_saved:
            return
        try:
            _write_counters(self.counters_file, snapshot)
        except OSError as exc:
            _LOGGER.warning("Cannot save BLE encryption counters to %s: %s", self.counters_file, exc)
            return
        self._counters_saved = snapshot

    async def _scan_forever(self) -> None:
        cfg = self.config
        delay = cfg.restart_initial_s
        failed_in_a_row = 0
        while True:
            self.scanner_state = "starting"
            scanner = None
            try:
                scanner = open_scanner(
                    self._on_advert, cfg, backend=self._scanner_backend, backend_kwargs=self._scanner_kwargs
                )
                async with asyncio.timeout(cfg.start_timeout_s):
                    await scanner.start()
            except Exception as exc:  # BleakError, D-Bus errors, OSError, a timeout: the stack is not there now
                self.start_failures += 1
                failed_in_a_row += 1
                self.scanner_state = "unavailable"
                self.scanner_problem = _describe(exc)
                if scanner is not None:
                    await self._stop(scanner)
                wait = delay * self._rng.uniform(0.5, 1.0)  # jitter: many gateways, one restarted BlueZ
                if failed_in_a_row == 1:
                    _LOGGER.warning(
                        "BLE scanning on %s cannot start: %s; trying again with backoff (up to %g s). "
                        "Is bluetoothd running and the controller present (bluetoothctl list)?",
                        cfg.adapter,
                        self.scanner_problem,
                        cfg.restart_max_s,
                    )
                else:
                    _LOGGER.debug("BLE scanning still cannot start (%d tries): %s", failed_in_a_row, exc)
                await asyncio.sleep(wait)
                delay = min(delay * 2, cfg.restart_max_s)
                continue
            if failed_in_a_row:
                _LOGGER.info("BLE scanning on %s works again after %d failed starts", cfg.adapter, failed_in_a_row)
            failed_in_a_row = 0
            delay = cfg.restart_initial_s
            self.scanner_state = "scanning"
            self.scanner_problem = ""
            self.scanner_starts += 1
            self._last_advert = self._clock()
            self._scanning.set()
            _LOGGER.debug("BLE scanner started on %s (%s)", cfg.adapter, cfg.scanning_mode)
            try:
                await self._watchdog()
            finally:
                self._scanning.clear()
                self.scanner_state = "stopped"
                await self._stop(scanner)
            self.watchdog_restarts += 1

    async def _watchdog(self) -> None:
        """Return when no advertisement arrived for ``watchdog_s`` (never when it is 0)."""
        limit = self.config.watchdog_s
        if not limit:
            await asyncio.Event().wait()
        while True:
            quiet = self._clock() - self._last_advert
            if quiet >= limit:
                level = logging.WARNING if self.watchdog_restarts == 0 or self.adverts else logging.DEBUG
                _LOGGER.log(level, "BLE: no advertisement for %.0f s; restarting the scanner", quiet)
                return
            await asyncio.sleep(limit - quiet)

    async def _stop(self, scanner: Any) -> None:
        try:
            async with asyncio.timeout(self.config.start_timeout_s):
                await scanner.stop()
        except Exception as exc:  # stopping a scanner whose stack is gone fails too; nothing to do but note it
            _LOGGER.debug("BLE scanner stop failed: %s", _describe(exc))

    def _on_advert(self, device: BLEDevice, data: AdvertisementData) -> None:
        """bleak's detection callback: queue the advertisement (never blocks, never raises)."""
        self._last_advert = self._clock()
        self.adverts += 1
        try:
            self._queue.put_nowait((self._wall(), device, data))
        except asyncio.QueueFull:
            self.rejected["queue-full"] += 1
            if not self._queue_full_logged:
                self._queue_full_logged = True
                _LOGGER.warning(
                    "BLE advertisements arrive faster than they are decoded: dropping (queue of %d)",
                    self.config.queue_size,
                )
            return
        if self._queue_full_logged and self._queue.qsize() < self.config.queue_size // 2:
            self._queue_full_logged = False
            _LOGGER.info("BLE decoding keeps up again")

    async def _decode_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            readings: list[Reading] = []
            came_back: list[Availability] = []
            self._measured = 0
            for ts, device, data in batch:
                try:
                    readings.extend(self._handle(ts, device, data, came_back))
                except Exception:  # one odd advertisement must never stop the adapter
                    self.rejected["internal"] += 1
                    _LOGGER.exception("BLE advertisement from %s could not be handled", device.address)
            if readings:
                if await self._publish(readings):
                    self.accepted += self._measured
                else:
                    for st in came_back:  # not durable: say it again with the next advertisement
                        st.available = False
            if batch and len(batch) == BATCH_MAX:
                await asyncio.sleep(0)

    # -- one advertisement -----------------------------------------------------------------------

    def _handle(
        self, ts: float, device: BLEDevice, data: AdvertisementData, came_back: list[Availability]
    ) -> list[Reading]:
        advert = to_advertisement(device, data)
        address = advert.address
        listed = self.devices.get(address)
        if listed is not None and listed.gatt:
            self._ble_devices[address] = device  # what a GATT connection needs on BlueZ
        fingerprint = (
            tuple(sorted(advert.service_data.items())),
            tuple(sorted(advert.manufacturer_data.items())),
        )
        last = self._last.get(address)
        if last is not None and last.dedupable and last.fingerprint == fingerprint:
            self.duplicates += 1
            return self._heard(address, ts, came_back)
        try:
            result = decode(advert, key=self._keys.get(address), state=self._replay_state, sensor_rssi=self.config.rssi)
        except ble_errors.BleDecodeError as exc:
            self._refused(address, exc)
            return []
        if result is None:
            self.foreign += 1
            # A listed device whose advertisements carry no data Roost decodes (read over GATT) is still alive.
            return self._heard(address, ts, came_back) if listed is not None else []
        if (
            result.packet_id is not None
            and last is not None
            and (last.packet_id, last.format) == (result.packet_id, result.format)
        ):
            self.duplicates += 1
            last.fingerprint = fingerprint
            return self._heard(address, ts, came_back)
        self._remember(
            address,
            _LastPacket(fingerprint, result.packet_id, result.format, result.packet_id is not None or result.encrypted),
        )
        sensor = listed.name if listed is not None and listed.name else result.sensor
        if not sensor:
            self.rejected["malformed"] += 1
            return []
        if not self._allowed(address, sensor):
            self.rejected["unpaired"] += 1
            self._pairing.note_unknown(sensor, f"ble {address} ({result.format})", len(result.measurements))
            self._note_unpaired(address, sensor, result.format, "unpaired")
            return []
        readings = [Reading(sensor, m.metric, m.value, ts, m.unit) for m in result.measurements]
        self._measured += len(readings)
        readings.extend(self._heard(address, ts, came_back))
        return readings

    def _allowed(self, address: str, sensor: str) -> bool:
        if self.config.accept == "any" or address in self.devices:
            return True
        paired = self._pairing.paired
        return sensor in paired or address in paired

    def _remember(self, address: str, packet: _LastPacket) -> None:
        if address not in self._last and len(self._last) >= MAX_TRACKED:
            self._last.pop(next(iter(self._last)))  # the longest-remembered address goes first
        self._last[address] = packet

    def _refused(self, address: str, exc: ble_errors.BleDecodeError) -> None:
        reason, hint = "malformed", "sent an advertisement that cannot be decoded"
        for cls, key, text in _REASONS:
            if isinstance(exc, cls):
                reason, hint = key, text
                break
        self.rejected[reason] += 1
        if reason == "needs-key" and address not in self.devices and self.config.accept == "paired":
            self._pairing.note_unknown(address, f"ble {address} (encrypted, needs a bind key)", 0)
            self._note_unpaired(address, address, "encrypted", "needs-key")
        if (address, reason) in self._logged:
            _LOGGER.debug("BLE %s: %s (%s)", address, exc.problem, reason)
            return
        if len(self._logged) < MAX_LOGGED:
            self._logged.add((address, reason))
        # Only listed devices are worth a WARNING: a neighbour's sensor with its own key is not our problem.
        level = logging.WARNING if address in self.devices or reason == "needs-key" else logging.INFO
        _LOGGER.log(level, "BLE device %s %s (%s); further ones are counted", address, hint, exc.problem)

    def _heard(self, address: str, ts: float, came_back: list[Availability]) -> list[Reading]:
        st = self.availability.get(address)
        if st is None:
            return []
        now = self._clock()
        unheard = now - st.last_heard
        st.last_heard = now
        st.heard += 1
        if st.available is False:
            st.available = True
            came_back.append(st)
            _LOGGER.info("BLE device %s is heard again after %.0f s", st.sensor, unheard)
            return [Reading(st.sensor, AVAILABLE, True, ts)]
        st.available = True
        return []

    # -- availability, GATT, publishing ----------------------------------------------------------

    async def _watch_availability(self) -> None:
        while True:
            shortest = min(
                (st.expected_s for st in self.availability.values()), default=self.config.expected_interval_s
            )
            await asyncio.sleep(max(0.25, shortest / 4))
            now = self._clock()
            gone = [
                st
                for st in self.availability.values()
                if st.available is not False and now - st.last_heard > st.expected_s
            ]
            if not gone:
                continue
            ts = self._wall()
            for st in gone:
                _LOGGER.warning(
                    "BLE device %s is unavailable: not heard for %.0f s (expected every %g s at most); "
                    "check its battery and distance",
                    st.sensor,
                    now - st.last_heard,
                    st.expected_s,
                )
            if await self._publish([Reading(st.sensor, AVAILABLE, False, ts) for st in gone]):
                for st in gone:
                    st.available = False

    def _sensor_of(self, address: str) -> str:
        listed = self.devices.get(address)
        return listed.name if listed is not None and listed.name else address

    async def _publish_gatt(self, address: str, readings: Sequence[Reading]) -> None:
        came_back: list[Availability] = []
        out = list(readings)
        out.extend(self._heard(address, readings[0].ts if readings else self._wall(), came_back))
        if await self._publish(out):
            self.accepted += len(readings)
        else:
            for st in came_back:
                st.available = False

    async def _publish(self, readings: list[Reading]) -> bool:
        try:
            await self._hub.publish(readings)
        except BufferFull:
            self.rejected["buffer-full"] += len(readings)
            return False
        return True

    async def write(self, device: str, characteristic: str, data: bytes, *, response: bool = True) -> None:
        """Write ``data`` to a characteristic of ``device`` (its sensor name or address) to actuate it.

        Raises GattFailed or GattTimeout (``gateway.adapters.ble.errors``).
        """
        address = self._by_name.get(device) or normalize_mac(device)
        await self.link.write(address, characteristic, data, response=response)

    # -- the Actuator interface (the DM agent's and the rules engine's way to a device) ----------

    def owns(self, sensor: str) -> bool:
        """Whether ``sensor`` (a name or address) is a device listed in ``[[adapters.ble.devices]]``."""
        if sensor in self._by_name:
            return True
        try:
            return normalize_mac(sensor) in self.devices
        except ValueError:
            return False

    def actions(self, sensor: str) -> list[str]:
        """A listed BLE device can be written to over GATT."""
        return ["write"] if self.owns(sensor) else []

    async def actuate(self, sensor: str, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """``write``: ``characteristic`` (UUID), ``value`` (hex), ``response`` (bool, default true)."""
        if action != "write":
            raise ActuationError(f"a BLE device cannot {action!r}: it knows write")
        characteristic, value, response = args.get("characteristic"), args.get("value"), args.get("response", True)
        if not isinstance(characteristic, str) or not isinstance(value, str) or not isinstance(response, bool):
            raise ActuationError("write needs 'characteristic' (a UUID), 'value' (hex bytes), optionally 'response'")
        try:
            data = bytes.fromhex(value)
            await self.write(sensor, characteristic, data, response=response)
        except ValueError as exc:
            raise ActuationError(f"write: {exc}") from None
        except BleError as exc:
            raise ActuationError(str(exc)) from None
        return {"sensor": sensor, "action": action, "result": "done", "bytes": len(data)}

    def stats(self) -> dict[str, object]:
        """Counters for health reports: scanner state, decoding, availability and GATT."""
        now = self._clock()
        return {
            **super().stats(),
            "adverts": self.adverts,
            "foreign": self.foreign,
            "duplicates": self.duplicates,
            "scanner": {
                "state": self.scanner_state,
                "problem": self.scanner_problem,
                "starts": self.scanner_starts,
                "start_failures": self.start_failures,
                "watchdog_restarts": self.watchdog_restarts,
            },
            "devices": {a: st.as_dict(now) for a, st in self.availability.items()},
            "gatt": {**self.link.stats.as_dict(), "devices": {a: s.as_dict() for a, s in self.gatt.states.items()}},
        }


def _load_counters(path: Path) -> dict[str, int]:
    """The saved encryption counters ({} when there are none, or they cannot be read: logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _LOGGER.warning("Ignoring the BLE encryption counters in %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}


def _write_counters(path: Path, snapshot: Mapping[str, int]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(snapshot, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
