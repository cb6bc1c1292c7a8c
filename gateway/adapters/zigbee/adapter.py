"""The Zigbee adapter: a zigpy ControllerApplication on the configured radio, its network and its devices.

* **Network.** Formed on the first start (``auto_form``: a quiet channel and a random PAN id, extended
  PAN id and network key unless configured) and backed up to ``backup_file`` (mode 0600) after forming
  and whenever zigpy makes a new backup (daily, and on changes), together with the registry's entries
  for the paired devices. A state folder without a backup restores ``restore_file`` when it is given
  (a replaced SD card or gateway): same PAN id, channel and keys, so no device has to be paired again.
* **Pairing.** :meth:`ZigbeeAdapter.permit` opens a permit-join window (``roost gateway pair zigbee``);
  a device that joins during it gets the technician's name and location in the registry. Join, rejoin,
  interview and leave are device events on the events topic; the interview results (model,
  manufacturer, endpoints and clusters) go into the registry.
* **Readings.** Attribute reports and read responses (zigpy's ``attribute_report`` and
  ``attribute_read`` cluster events) and IAS zone notifications become readings through the table in
  :mod:`drivers.zcl` (the one ``roost decode zcl`` uses), on sensor id = the device's IEEE address.
  Reporting is configured when a device is bound, where the device supports it.
* **Commands.** :meth:`ZigbeeAdapter.command` sends a ZCL cluster command and returns the status of the
  device's default response; the :class:`~gateway.adapters.base.Actuator` methods (on, off, toggle,
  level, color_temperature) are how the rules engine and the cloud reach it.
* **Availability.** A device unheard for ``expected_interval_s`` is published ``available = false``
  (WARNING once); the next frame from it publishes ``available = true`` (INFO).

zigpy is imported by this module: the daemon imports it only when ``[adapters.zigbee] enabled = true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zigpy.backups
import zigpy.device
import zigpy.exceptions
import zigpy.types as zt
from zigpy.application import ControllerApplication
from zigpy.zcl import foundation

from drivers import zcl
from gateway.adapters.base import ActuationError, Adapter
from gateway.adapters.zigbee.config import MAX_PERMIT_S, ZigbeeSection
from gateway.adapters.zigbee.errors import (
    CommandFailed,
    CommandTimeout,
    NotRunning,
    RadioLibraryMissing,
    UnknownDevice,
    ZigbeeError,
)
from gateway.adapters.zigbee.radios import radio_class
from gateway.errors import BufferError_, BufferFull
from gateway.hub import Hub
from gateway.registry import Registry
from wire.events import Event
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

KIND = "zigbee"
AVAILABLE = "available"
BACKUP_FORMAT = "roost-zigbee-backup"
BATCH_MAX = 512
CONFIGURE_TIMEOUT_S = 30.0
AppFactory = Callable[[dict[str, Any]], ControllerApplication]


@dataclass(slots=True)
class DeviceState:
    """What the adapter tracks of one device (reported in health)."""

    ieee: str
    last_heard: float
    available: bool = True
    frames: int = 0
    readings: int = 0

    def as_dict(self, now: float) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "available": self.available,
            "frames": self.frames,
            "readings": self.readings,
            "unheard_s": round(now - self.last_heard, 1),
        }


@dataclass(slots=True)
class PairingWindow:
    """An open permit-join window and the labels a device joining during it gets."""

    until: float
    name: str
    location: str
    joined: int = 0


class ZigbeeAdapter(Adapter):
    """Runs the Zigbee network until cancelled; restarts the radio with backoff when it fails or is lost."""

    name = "zigbee"
    kind = KIND

    def __init__(
        self,
        config: ZigbeeSection,
        hub: Hub,
        *,
        state_dir: Path,
        registry: Registry | None = None,
        app_factory: AppFactory | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.config = config
        self._hub = hub
        self.state_dir = state_dir
        self.backup_file = config.backup_file or state_dir / "zigbee-backup.json"
        self.registry = registry if registry is not None else Registry.in_state_dir(state_dir)
        self._app_factory = app_factory
        self._rng = rng or random.Random()
        self._clock = clock
        self._wall = wall_clock
        self.app: ControllerApplication | None = None
        self.state = "stopped"
        """stopped, starting, running or unavailable."""
        self.problem = ""
        self.devices: dict[str, DeviceState] = {}
        self.window: PairingWindow | None = None
        self._labels: dict[str, tuple[str, str]] = {}
        self._known: dict[tuple[str, int, int], dict[int, int]] = {}
        self._sensors: dict[tuple[str, int, int], str] = {}
        self._attached: dict[str, tuple[int, list[Callable[[], None]]]] = {}
        self._readings: asyncio.Queue[Reading] = asyncio.Queue(config.queue_size)
        self._events: asyncio.Queue[Event] = asyncio.Queue(256)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lost = asyncio.Event()
        self._running = asyncio.Event()
        self._backup_lock = asyncio.Lock()
        self._queue_full_logged = False
        self._events_refused_logged = False
        self.reports = 0
        """Attribute values and zone notifications received from devices."""
        self.skipped = 0
        """Values that gave no reading (sentinels, unmapped attributes, wrong types)."""
        self.backups_written = 0
        self.starts = 0
        self.start_failures = 0
        self.configure_failures = 0

    # -- running ---------------------------------------------------------------------------------

    async def wait_running(self) -> None:
        """Wait until the network is up."""
        await self._running.wait()

    async def run(self) -> None:
        """Start the radio and serve until cancelled; restart it with capped backoff when it fails."""
        cfg = self.config
        delay = cfg.restart_initial_s
        failed = 0
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._publish_readings(), name="zigbee readings")
            tg.create_task(self._publish_events(), name="zigbee events")
            tg.create_task(self._watch_availability(), name="zigbee availability")
            while True:
                self.state = "starting"
                try:
                    app = await self._start()
                except (RadioLibraryMissing, _BadBackup) as exc:
                    self.state, self.problem = "unavailable", str(exc)
                    _LOGGER.error("Zigbee cannot start: %s", exc)
                    await asyncio.Event().wait()  # a configuration problem: no retry helps
                    raise  # pragma: no cover
                except Exception as exc:  # the radio is missing, busy or not answering: retry with backoff
                    failed += 1
                    self.start_failures += 1
                    self.state, self.problem = "unavailable", _describe(exc)
                    if failed == 1:
                        _LOGGER.warning(
                            "Zigbee radio %s (%s) cannot start: %s; retrying with backoff (up to %g s). "
                            "Is the stick plugged in and the path right?",
                            cfg.path or "(memory)",
                            cfg.radio,
                            self.problem,
                            cfg.restart_max_s,
                        )
                    else:
                        _LOGGER.debug("Zigbee radio still cannot start (%d tries): %s", failed, exc)
                    await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))
                    delay = min(delay * 2, cfg.restart_max_s)
                    continue
                if failed:
                    _LOGGER.info("Zigbee radio works again after %d failed starts", failed)
                failed, delay = 0, cfg.restart_initial_s
                try:
                    await self._serve(app)
                finally:
                    await self._stop(app)

    async def _start(self) -> ControllerApplication:
        cfg = self.config
        factory = self._app_factory or radio_class(cfg.radio)
        app = factory(self._zigpy_config())
        listener = _Listener(self)
        app.add_listener(listener)
        app.backups.add_listener(listener)
        backup = await asyncio.to_thread(self._load_backup)
        if backup is not None:
            app.backups.add_backup(backup, suppress_event=True)
        self._lost.clear()
        self.app = app  # zigpy reports the coordinator's own "initialization" during start-up
        try:
            async with asyncio.timeout(cfg.start_timeout_s):
                await app.startup(auto_form=True)
        except BaseException as exc:
            self.app = None
            if isinstance(exc, TimeoutError):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(app.shutdown(), 5)
                raise TimeoutError(f"the radio did not start within {cfg.start_timeout_s:g} s") from None
            raise
        self.starts += 1
        net = app.state.network_info
        if backup is not None and not app.backups.from_network_state().is_compatible_with(backup):
            _LOGGER.warning(
                "The Zigbee radio holds a different network than the backup %s: devices paired to the backed-up "
                "network will not be heard. Reset the radio to restore the backup",
                self.backup_file,
            )
        _LOGGER.info("Zigbee network up on %s: channel %d, PAN id 0x%04X", cfg.radio, net.channel, int(net.pan_id))
        current = app.backups.most_recent_backup()
        if current is None:
            current = await app.backups.create_backup(load_devices=True)
        await self._write_backup(current)
        self.state, self.problem = "running", ""
        start = self._clock()
        for dev in list(app.devices.values()):
            if self._is_coordinator(dev) or not isinstance(dev, zigpy.device.Device):
                continue
            if dev.is_initialized:
                self._attach(dev)
                self.devices.setdefault(str(dev.ieee), DeviceState(str(dev.ieee), start))
        self._running.set()
        return app

    async def _serve(self, app: ControllerApplication) -> None:
        """Serve until the radio connection is lost (then the caller restarts it) or cancelled."""
        emulate = None
        if self.config.emulate_devices:
            emulate = asyncio.create_task(self._emulate(app), name="zigbee emulated devices")
        try:
            await self._lost.wait()
            _LOGGER.warning("Zigbee radio connection lost (%s); restarting it", self.problem or "no reason given")
            self.state = "unavailable"
        finally:
            if emulate is not None:
                emulate.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await emulate

    async def _stop(self, app: ControllerApplication) -> None:
        self._running.clear()
        self.state = "stopped" if self.state == "running" else self.state
        for ieee in list(self._attached):
            self._detach(ieee)
        self.app = None
        try:
            await asyncio.wait_for(app.shutdown(), 10)
        except Exception as exc:  # a radio that is gone cannot shut down cleanly; nothing else to do
            _LOGGER.debug("Zigbee shutdown: %s", _describe(exc))
        for task in list(self._tasks):
            task.cancel()

    def _zigpy_config(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "device": {
                "path": cfg.path or "/dev/null",
                "baudrate": cfg.baudrate,
                "flow_control": None if cfg.flow_control == "none" else cfg.flow_control,
            },
            "database_path": str(self.state_dir / "zigbee.db") if cfg.database else None,
            "network": {"channel": cfg.channel or None, "pan_id": cfg.pan_id or None},
            "ota": {"enabled": False},  # no firmware downloads from the Internet behind the operator's back
            "topology_scan_enabled": False,
        }

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.warning("Zigbee task %s failed: %s", task.get_name(), _describe(task.exception()))

    # -- backups ---------------------------------------------------------------------------------

    def _load_backup(self) -> zigpy.backups.NetworkBackup | None:
        for path, restoring in ((self.backup_file, False), (self.config.restore_file, True)):
            if path is None or not path.exists():
                continue
            try:
                doc = json.loads(path.read_text())
                network = doc["network"] if isinstance(doc, dict) and doc.get("format") == BACKUP_FORMAT else doc
                backup = zigpy.backups.NetworkBackup.from_dict(network)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise _BadBackup(
                    f"the Zigbee backup {path} cannot be read ({_describe(exc)}); fix or remove it"
                ) from exc
            if isinstance(doc, dict) and isinstance(doc.get("devices"), list):
                added = self.registry.restore(doc["devices"], KIND)
                if added:
                    _LOGGER.info("Restored %d Zigbee device entries from %s", added, path)
            if restoring:
                _LOGGER.info("Restoring the Zigbee network from %s (no backup in the state folder yet)", path)
            return backup
        return None

    async def _write_backup(self, backup: zigpy.backups.NetworkBackup | None = None) -> None:
        app = self.app
        if backup is None:
            backup = app.backups.most_recent_backup() if app is not None else None
        if backup is None:
            return
        async with self._backup_lock:
            devices = await asyncio.to_thread(self.registry.devices, KIND)
            doc = {
                "format": BACKUP_FORMAT,
                "version": 1,
                "written_at": datetime.fromtimestamp(self._wall(), UTC).isoformat(),
                "network": backup.as_dict(),
                "devices": devices,
            }
            try:
                await asyncio.to_thread(_write_private, self.backup_file, json.dumps(doc, indent=1))
            except OSError as exc:
                _LOGGER.warning("Cannot write the Zigbee backup %s: %s", self.backup_file, exc)
                return
            self.backups_written += 1
            _LOGGER.debug("Zigbee backup written to %s", self.backup_file)

    # -- pairing ---------------------------------------------------------------------------------

    async def permit(self, seconds: int | None = None, *, name: str = "", location: str = "") -> dict[str, Any]:
        """Open the network for joining for ``seconds`` (at most 254; 0 closes it); what was opened."""
        app = self._app()
        seconds = self.config.permit_join_s if seconds is None else seconds
        if not 0 <= seconds <= MAX_PERMIT_S:
            raise ZigbeeError(f"a Zigbee pairing window lasts 0 to {MAX_PERMIT_S} seconds, not {seconds}")
        await app.permit(time_s=seconds)
        self.window = PairingWindow(self._clock() + seconds, name, location) if seconds else None
        _LOGGER.info("Zigbee pairing window %s", f"open for {seconds} s" if seconds else "closed")
        return {"kind": KIND, "seconds": seconds, "until": self._wall() + seconds, "name": name, "location": location}

    def pairing_open(self) -> bool:
        """Whether a permit-join window is open now."""
        return self.window is not None and self._clock() < self.window.until

    async def label(self, ieee: str, *, name: str | None = None, location: str | None = None) -> dict[str, Any]:
        """Set a device's name and location in the registry (and the backup)."""
        entry = await asyncio.to_thread(self.registry.label, KIND, ieee, name=name, location=location)
        await self._write_backup()
        return entry

    # -- device events (called by zigpy through _Listener) ---------------------------------------

    def _is_coordinator(self, dev: Any) -> bool:
        app = self.app
        return app is not None and dev.ieee == app.state.node_info.ieee

    def on_joined(self, dev: zigpy.device.Device) -> None:
        ieee = str(dev.ieee)
        known = self.registry.get(KIND, ieee) is not None
        if not known and self.pairing_open() and self.window is not None:
            w = self.window
            w.joined += 1
            name = w.name if w.joined == 1 or not w.name else f"{w.name} {w.joined}"
            self._labels[ieee] = (name, w.location)
        self.devices[ieee] = DeviceState(ieee, self._clock())
        what = "rejoined" if known else "joined"
        _LOGGER.info("Zigbee device %s %s (0x%04X)", ieee, what, int(dev.nwk))
        self._event(ieee, what, f"Zigbee device {ieee} {what} the network", {"nwk": f"0x{int(dev.nwk):04X}"})

    def on_initialized(self, dev: zigpy.device.Device) -> None:
        if self._is_coordinator(dev):
            return
        ieee = str(dev.ieee)
        self.devices.setdefault(ieee, DeviceState(ieee, self._clock()))
        self._attach(dev)
        self._spawn(self._interviewed(dev), name=f"zigbee interviewed {ieee}")

    async def _interviewed(self, dev: zigpy.device.Device) -> None:
        ieee = str(dev.ieee)
        endpoints = {
            str(ep.endpoint_id): {
                "profile": f"0x{int(ep.profile_id or 0):04X}",
                "device_type": f"0x{int(ep.device_type or 0):04X}",
                "in_clusters": [f"0x{c:04X}" for c in sorted(ep.in_clusters)],
                "out_clusters": [f"0x{c:04X}" for c in sorted(ep.out_clusters)],
            }
            for ep in dev.non_zdo_endpoints
        }
        fields: dict[str, Any] = {
            "model": dev.model,
            "manufacturer": dev.manufacturer,
            "endpoints": endpoints,
            "status": "paired",
            "last_seen": self._wall(),
        }
        label = self._labels.pop(ieee, None)
        if label is not None:
            fields["name"], fields["location"] = label
        before = await asyncio.to_thread(self.registry.get, KIND, ieee)
        entry = await asyncio.to_thread(self.registry.upsert, KIND, ieee, **fields)
        configured = bool((before or {}).get("extra", {}).get("configured"))
        self._event(
            ieee,
            "interviewed",
            f"Zigbee device {ieee} is a {dev.manufacturer or '?'} {dev.model or '?'}",
            {"model": dev.model, "manufacturer": dev.manufacturer, "name": entry.get("name", ""),
             "location": entry.get("location", "")},
        )  # fmt: skip
        if not configured or label is not None:
            ok = await self._configure(dev)
            await asyncio.to_thread(
                self.registry.upsert, KIND, ieee, extra={**entry.get("extra", {}), "configured": ok}
            )
        await self._write_backup()

    def on_left(self, dev: zigpy.device.Device, what: str) -> None:
        ieee = str(dev.ieee)
        self._detach(ieee)
        self.devices.pop(ieee, None)
        _LOGGER.info("Zigbee device %s %s the network", ieee, what)
        self._event(ieee, what, f"Zigbee device {ieee} {what} the network", {})
        self._spawn(self._mark(ieee, what), name=f"zigbee {what} {ieee}")

    async def _mark(self, ieee: str, status: str) -> None:
        if await asyncio.to_thread(self.registry.get, KIND, ieee) is not None:
            await asyncio.to_thread(self.registry.upsert, KIND, ieee, status=status, last_seen=self._wall())
            await self._write_backup()

    def heard(self, dev: Any) -> None:
        ieee = str(dev.ieee)
        st = self.devices.get(ieee)
        if st is None:
            return
        st.last_heard = self._clock()
        st.frames += 1
        if not st.available:
            st.available = True
            _LOGGER.info("Zigbee device %s is heard again", ieee)
            self._queue_reading(Reading(ieee, AVAILABLE, True, self._wall()))

    def _event(self, ieee: str, what: str, message: str, data: dict[str, Any]) -> None:
        event = Event(
            id=uuid.uuid4().hex,
            kind="device",
            ts=self._wall(),
            key=f"{KIND}/{ieee}",
            message=message,
            sensor=ieee,
            value=what,
            data={"adapter": KIND, **data},
        )
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.rejected["events-queue-full"] += 1

    # -- readings --------------------------------------------------------------------------------

    def _attach(self, dev: zigpy.device.Device) -> None:
        ieee = str(dev.ieee)
        current = self._attached.get(ieee)
        if current is not None and current[0] == id(dev):
            return
        self._detach(ieee)
        unsubs: list[Callable[[], None]] = []
        seen: set[int] = set()
        for ep in sorted(dev.non_zdo_endpoints, key=lambda e: e.endpoint_id):
            for cluster_id, cluster in ep.in_clusters.items():
                if cluster_id not in zcl.CLUSTER_NAMES:
                    continue
                # The first endpoint with a cluster reads as the device itself; further ones as {ieee}/{ep}.
                sensor = ieee if cluster_id not in seen else f"{ieee}/{ep.endpoint_id}"
                seen.add(cluster_id)
                self._sensors[(ieee, ep.endpoint_id, cluster_id)] = sensor
                known = self._known.setdefault((ieee, ep.endpoint_id, cluster_id), {})
                for attr in zcl.CONTEXT_ATTRIBUTES.get(cluster_id, ()):
                    with contextlib.suppress(Exception):  # zigpy's cache: whatever it holds from the database
                        value = cluster.get(attr)
                        if isinstance(value, int):
                            known[attr] = int(value)
                unsubs.append(cluster.on_event("attribute_report", self._on_attribute))
                unsubs.append(cluster.on_event("attribute_read", self._on_attribute))
                if cluster_id == zcl.IAS_ZONE:
                    zone = _ZoneListener(self, ieee, ep.endpoint_id, cluster)
                    cluster.add_listener(zone)
                    unsubs.append(functools.partial(cluster.remove_listener, zone))
        self._attached[ieee] = (id(dev), unsubs)

    def _detach(self, ieee: str) -> None:
        entry = self._attached.pop(ieee, None)
        if entry is None:
            return
        for unsub in entry[1]:
            with contextlib.suppress(Exception):
                unsub()

    def _on_attribute(self, event: Any) -> None:
        """zigpy's attribute_report / attribute_read event (a frozen dataclass)."""
        try:
            ieee = str(event.device_ieee)
            ep = int(event.endpoint_id)
            cluster = int(event.cluster_id)
            attr = int(event.attribute_id)
            if event.manufacturer_code is not None:
                return  # a manufacturer's own attribute: not in the table
            self._value(ieee, ep, cluster, attr, event.raw_value)
        except Exception:  # one odd value must never break zigpy's event loop
            self.rejected["internal"] += 1
            _LOGGER.exception("Zigbee attribute event could not be handled: %r", event)

    def _value(self, ieee: str, ep: int, cluster: int, attr: int, raw: Any) -> None:
        self.reports += 1
        known = self._known.setdefault((ieee, ep, cluster), {})
        if attr in zcl.CONTEXT_ATTRIBUTES.get(cluster, ()):
            if isinstance(raw, int):
                known[attr] = int(raw)
            return
        try:
            measurements = zcl.measure(cluster, attr, raw, known)
        except zcl.SkipValue as exc:
            self.skipped += 1
            _LOGGER.debug("Zigbee %s cluster 0x%04X attribute 0x%04X skipped: %s", ieee, cluster, attr, exc)
            return
        sensor = self._sensors.get((ieee, ep, cluster), ieee)
        ts = self._wall()
        st = self.devices.get(ieee)
        if st is not None:
            st.readings += len(measurements)
        for m in measurements:
            self._queue_reading(Reading(sensor, m.metric, m.value, ts, m.unit))

    def _zone_notification(self, ieee: str, ep: int, zone_status: int) -> None:
        self._value(ieee, ep, zcl.IAS_ZONE, zcl.ZONE_STATUS_ATTR, zone_status)

    def _queue_reading(self, reading: Reading) -> None:
        try:
            self._readings.put_nowait(reading)
        except asyncio.QueueFull:
            self.rejected["queue-full"] += 1
            if not self._queue_full_logged:
                self._queue_full_logged = True
                _LOGGER.warning("Zigbee readings arrive faster than they are stored: dropping (queue of %d)",
                                self.config.queue_size)  # fmt: skip

    async def _publish_readings(self) -> None:
        while True:
            batch = [await self._readings.get()]
            while len(batch) < BATCH_MAX and not self._readings.empty():
                batch.append(self._readings.get_nowait())
            try:
                await self._hub.publish(batch)
            except BufferFull:
                self.rejected["buffer-full"] += len(batch)
                continue
            self.accepted += sum(1 for r in batch if r.metric != AVAILABLE)
            if self._queue_full_logged and self._readings.qsize() < self.config.queue_size // 2:
                self._queue_full_logged = False
                _LOGGER.info("Zigbee readings keep up again")

    async def _publish_events(self) -> None:
        while True:
            batch = [await self._events.get()]
            while len(batch) < 64 and not self._events.empty():
                batch.append(self._events.get_nowait())
            try:
                await self._hub.publish_events(batch)
            except (BufferFull, BufferError_) as exc:
                self.rejected["events-refused"] += len(batch)
                if not self._events_refused_logged:
                    self._events_refused_logged = True
                    _LOGGER.warning("Zigbee device events refused by the buffer: %s", exc)

    async def _watch_availability(self) -> None:
        expected = self.config.expected_interval_s
        step = min(max(expected / 10, 0.05), 60.0)
        while True:
            await asyncio.sleep(step)
            now = self._clock()
            for st in list(self.devices.values()):
                if st.available and now - st.last_heard >= expected:
                    st.available = False
                    _LOGGER.warning(
                        "Zigbee device %s is unavailable: not heard for %.0f s (expected every %.0f s at most). "
                        "Check its battery and distance to the gateway or a router",
                        st.ieee,
                        now - st.last_heard,
                        expected,
                    )
                    self._queue_reading(Reading(st.ieee, AVAILABLE, False, self._wall()))

    # -- binding and reporting -------------------------------------------------------------------

    async def _configure(self, dev: zigpy.device.Device) -> bool:
        """Bind the mapped clusters, configure their reporting and read their context; False if any step failed."""
        from zigpy.zcl.helpers import ReportingConfig

        ok = True
        app = self._app()
        for ep in dev.non_zdo_endpoints:
            for cluster_id, cluster in ep.in_clusters.items():
                if cluster_id not in zcl.CLUSTER_NAMES:
                    continue
                steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [("bind", cluster.bind)]
                reporting = {
                    cluster.find_attribute(spec.attribute): ReportingConfig(*spec.reportable)
                    for (cid, _attr), spec in zcl.ATTRIBUTES.items()
                    if cid == cluster_id and spec.reportable is not None
                }
                if reporting:
                    steps.append(
                        ("configure reporting", functools.partial(cluster.configure_reporting_multiple, reporting))
                    )
                context = sorted(zcl.CONTEXT_ATTRIBUTES.get(cluster_id, ()))
                if context:
                    steps.append(("read", functools.partial(cluster.read_attributes, context)))
                if cluster_id == zcl.IAS_ZONE:
                    cie = {"cie_addr": app.state.node_info.ieee}
                    steps.append(("enroll", functools.partial(cluster.write_attributes, cie)))
                    steps.append(
                        ("enroll", functools.partial(cluster.enroll_response, enroll_response_code=0, zone_id=1))
                    )
                readable = [
                    spec.attribute
                    for (cid, _attr), spec in zcl.ATTRIBUTES.items()
                    if cid == cluster_id and cid != zcl.IAS_ZONE
                ]
                if readable:
                    steps.append(("read", functools.partial(cluster.read_attributes, readable)))
                for what, step in steps:
                    try:
                        async with asyncio.timeout(CONFIGURE_TIMEOUT_S):
                            await step()
                    except (TimeoutError, zigpy.exceptions.ZigbeeException, ValueError, KeyError) as exc:
                        ok = False
                        self.configure_failures += 1
                        _LOGGER.debug("Zigbee %s cluster 0x%04X: %s failed: %s", dev.ieee, cluster_id, what,
                                      _describe(exc))  # fmt: skip
        if not ok:
            _LOGGER.warning(
                "Zigbee device %s: binding or reporting could not be set up everywhere; its readings may come "
                "only when it reports on its own",
                dev.ieee,
            )
        return ok

    # -- commands --------------------------------------------------------------------------------

    def _app(self) -> ControllerApplication:
        if self.app is None or self.state != "running":
            raise NotRunning(
                f"the Zigbee network is not running ({self.state}{': ' + self.problem if self.problem else ''})"
            )
        return self.app

    def _device(self, ieee: str) -> zigpy.device.Device:
        app = self._app()
        try:
            key = zt.EUI64.convert(ieee)
            dev = app.get_device(ieee=key)
        except (KeyError, ValueError):
            raise UnknownDevice(ieee) from None
        if not isinstance(dev, zigpy.device.Device) or self._is_coordinator(dev):
            raise UnknownDevice(ieee, "it is not a Zigbee end device or router")
        return dev

    async def command(
        self, ieee: str, endpoint: int, cluster: int, command: str | int, args: Mapping[str, Any] | None = None
    ) -> str:
        """Send a ZCL cluster command; the status of the device's default response (``SUCCESS``, ...).

        Raises UnknownDevice, CommandTimeout (no answer or no ACK) or ZigbeeError (unknown command or arguments).
        """
        dev = self._device(ieee)
        ep = dev.endpoints.get(endpoint)
        clusters = getattr(ep, "in_clusters", {})
        if cluster not in clusters:
            raise UnknownDevice(ieee, f"has no cluster 0x{cluster:04X} on endpoint {endpoint}")
        cl = clusters[cluster]
        cmd = next((c for c in cl.server_commands.values() if command in (c.name, c.id)), None)
        if cmd is None:
            names = ", ".join(c.name for c in cl.server_commands.values())
            raise ZigbeeError(f"cluster 0x{cluster:04X} has no command {command!r}; it has: {names}")
        timeout = self.config.command_timeout_s
        try:
            async with asyncio.timeout(timeout):
                rsp = await cl.command(cmd.id, **dict(args or {}))
        except TimeoutError:
            raise CommandTimeout(ieee, cmd.name, timeout) from None
        except zigpy.exceptions.DeliveryError as exc:
            raise CommandTimeout(ieee, cmd.name, timeout) from exc
        except (TypeError, ValueError) as exc:
            raise ZigbeeError(f"{cmd.name}: bad arguments {dict(args or {})}: {exc}") from exc
        status = getattr(rsp, "status", foundation.Status.SUCCESS)
        return zcl.status_name(int(status))

    # -- the Actuator interface ------------------------------------------------------------------

    def _endpoint_with(self, ieee: str, cluster: int) -> int | None:
        try:
            dev = self._device(ieee)
        except ZigbeeError:
            return None
        for ep in sorted(dev.non_zdo_endpoints, key=lambda e: e.endpoint_id):
            if cluster in ep.in_clusters:
                return int(ep.endpoint_id)
        return None

    def owns(self, sensor: str) -> bool:
        """Whether ``sensor`` is a joined Zigbee device that can be switched, dimmed or tuned."""
        return bool(self.actions(sensor))

    def actions(self, sensor: str) -> list[str]:
        """on/off/toggle (on/off cluster), level (level control), color_temperature (color control)."""
        out: list[str] = []
        if self._endpoint_with(sensor, zcl.ON_OFF) is not None:
            out += ["on", "off", "toggle"]
        if self._endpoint_with(sensor, zcl.LEVEL_CONTROL) is not None:
            out.append("level")
        if self._endpoint_with(sensor, zcl.COLOR_CONTROL) is not None:
            out.append("color_temperature")
        return out

    async def actuate(self, sensor: str, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Do ``action`` on device ``sensor``: on, off, toggle, level {percent}, color_temperature {kelvin}."""
        transition = _number(args, "transition_s", 0, 6553, default=0)
        if action in ("on", "off", "toggle"):
            cluster, command, cmd_args = zcl.ON_OFF, action, {}
        elif action == "level":
            percent = _number(args, "percent", 0, 100)
            cluster, command = zcl.LEVEL_CONTROL, "move_to_level_with_on_off"
            cmd_args = {"level": round(percent * 254 / 100), "transition_time": round(transition * 10)}
        elif action == "color_temperature":
            kelvin = _number(args, "kelvin", 1000, 10000)
            cluster, command = zcl.COLOR_CONTROL, "move_to_color_temp"
            cmd_args = {"color_temp_mireds": round(1_000_000 / kelvin), "transition_time": round(transition * 10)}
        else:
            raise ActuationError(
                f"a Zigbee device cannot {action!r}: it knows on, off, toggle, level, color_temperature"
            )
        endpoint = self._endpoint_with(sensor, cluster)
        if endpoint is None:
            raise ActuationError(f"{sensor} has no {zcl.CLUSTER_NAMES[cluster]} cluster")
        try:
            status = await self.command(sensor, endpoint, cluster, command, cmd_args)
        except ZigbeeError as exc:
            raise ActuationError(str(exc)) from None
        if status != "SUCCESS":
            raise ActuationError(str(CommandFailed(sensor, command, status)))
        return {"sensor": sensor, "action": action, "result": status}

    # -- the demo's emulated devices -------------------------------------------------------------

    async def _emulate(self, app: ControllerApplication) -> None:
        from gateway.adapters.zigbee.emulated import demo_devices, step
        from gateway.adapters.zigbee.radio_memory import MemoryRadio

        if not isinstance(app, MemoryRadio):
            return
        devices = demo_devices()
        for d in devices:
            ieee = str(d.ieee)
            if await asyncio.to_thread(self.registry.get, KIND, ieee) is None:
                self._labels[ieee] = (f"Emulated {d.model[6:].lower()}", "demo bench")  # as a pairing window would
            app.join(d, force=True)
        n = 0
        while True:
            await asyncio.sleep(self.config.emulate_interval_s)
            n += 1
            for d in devices:
                if d.ieee in app.joined and not d.silent:
                    for packet in step(d, n):
                        app.inject(packet)

    def stats(self) -> dict[str, object]:
        """Counters for health reports, per device too."""
        now = self._clock()
        return {
            **super().stats(),
            "state": self.state,
            "problem": self.problem,
            "reports": self.reports,
            "skipped": self.skipped,
            "pairing_open": self.pairing_open(),
            "backups_written": self.backups_written,
            "configure_failures": self.configure_failures,
            "devices": {ieee: st.as_dict(now) for ieee, st in self.devices.items()},
        }


class _BadBackup(ZigbeeError):
    """The backup file exists but cannot be read: never form a new network over it."""


class _Listener:
    """zigpy's application and backup listener (it calls these by name)."""

    def __init__(self, adapter: ZigbeeAdapter) -> None:
        self._a = adapter

    def _safe(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # zigpy would swallow it at DEBUG: say it
            _LOGGER.exception("Zigbee %s could not be handled", what)

    def device_joined(self, device: Any) -> None:
        self._safe("join", lambda: self._a.on_joined(device))

    def device_initialized(self, device: Any) -> None:
        self._safe("interview", lambda: self._a.on_initialized(device))

    def device_reinterviewed(self, device: Any) -> None:
        self._safe("re-interview", lambda: self._a.on_initialized(device))

    def device_left(self, device: Any) -> None:
        self._safe("leave", lambda: self._a.on_left(device, "left"))

    def device_removed(self, device: Any) -> None:
        self._safe("removal", lambda: self._a.on_left(device, "removed"))

    def device_init_failure(self, device: Any) -> None:
        _LOGGER.warning("Zigbee device %s joined but its interview failed; it will be retried", device.ieee)

    def handle_message(self, device: Any, *_args: Any) -> None:
        self._safe("frame", lambda: self._a.heard(device))

    def connection_lost(self, exc: Exception) -> None:
        self._a.problem = _describe(exc)
        self._a._lost.set()

    def network_backup_created(self, backup: zigpy.backups.NetworkBackup) -> None:
        if self._a.app is not None:
            self._a._spawn(self._a._write_backup(backup), name="zigbee backup")


class _ZoneListener:
    """An IAS zone cluster's legacy listener: status change notifications and enroll requests."""

    def __init__(self, adapter: ZigbeeAdapter, ieee: str, endpoint: int, cluster: Any) -> None:
        self._a = adapter
        self._ieee = ieee
        self._ep = endpoint
        self._cluster = cluster

    def cluster_command(self, tsn: int, command_id: int, args: Any) -> None:
        try:
            if command_id == zcl.STATUS_CHANGE_NOTIFICATION:
                self._a._zone_notification(self._ieee, self._ep, int(args.zone_status))
            elif command_id == 0x01:  # zone enroll request: answer it, or the device keeps asking
                self._a._spawn(
                    self._cluster.enroll_response(enroll_response_code=0, zone_id=1), name=f"zigbee enroll {self._ieee}"
                )
        except Exception:  # an odd frame must never break zigpy's dispatch
            self._a.rejected["internal"] += 1
            _LOGGER.exception("Zigbee zone command from %s could not be handled", self._ieee)


def _number(args: Mapping[str, Any], name: str, lo: float, hi: float, default: float | None = None) -> float:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ActuationError(f"'{name}' must be a number from {lo:g} to {hi:g}, not {value!r}")
    return float(value)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return str(exc) or type(exc).__name__


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 (it holds the network key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
