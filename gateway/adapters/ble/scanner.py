"""bleak's scanner facade, a backend that replays recorded advertisements, and bleak's types mapped to ours.

The adapter always scans through :class:`bleak.BleakScanner`; only the backend differs. On a Pi it
is bleak's BlueZ backend; in the demo and the tests it is :class:`ReplayScannerBackend`, a
:class:`bleak.backends.scanner.BaseBleakScanner` that plays recorded advertisements with their
timing through bleak's own machinery (``create_or_update_device``, ``call_detection_callbacks``), so
the adapter sees the same :class:`BLEDevice` and :class:`AdvertisementData` objects either way.

Recorded advertisements are JSON lines, one advertisement each::

    {"t": 0.0, "address": "A4:C1:38:0A:1B:2C", "rssi": -67, "raw": "0201061516d2fc4000..."}
    {"t": 1.5, "address": "...", "rssi": -70, "local_name": "ATC_0A1B2C",
     "service_data": {"0000181a-0000-1000-8000-00805f9b34fb": "a4c1380a1b2c..."},
     "manufacturer_data": {"1177": "0512fc..."}, "service_uuids": [], "tx_power": null}

``t`` is seconds from the start of the recording; ``raw`` (the AD structures as the radio sent
them, hex) or the decoded fields; manufacturer ids as decimal (``"1177"``) or hex (``"0x0499"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern, OrPatternLike
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakError

from drivers.ble.advertisement import Advertisement, parse_ad_structures
from gateway.adapters.ble.config import BleSection

_LOGGER = logging.getLogger(__name__)

MAX_REPLAY_RECORDS = 1_000_000
MAX_REPLAY_LINE = 4096
MIN_LOOP_PERIOD_S = 1.0
"""A looping replay takes at least this long per round, so a recording without timing cannot spin."""

# Passive scanning on BlueZ needs advertisement-monitor patterns; these match every advertisement
# that carries the usual flags (as Home Assistant's Bluetooth integration does).
PASSIVE_OR_PATTERNS: list[OrPatternLike] = [
    OrPattern(0, AdvertisementDataType.FLAGS, b"\x02"),
    OrPattern(0, AdvertisementDataType.FLAGS, b"\x06"),
    OrPattern(0, AdvertisementDataType.FLAGS, b"\x1a"),
]


class ReplayFormatError(ValueError):
    """A replay file line that cannot be read (``.line`` is 1-based)."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class RecordedAdvert:
    """One advertisement and when (seconds from the start of the recording) it was heard."""

    t: float
    advert: Advertisement


def to_advertisement(device: BLEDevice, data: AdvertisementData) -> Advertisement:
    """bleak's device and advertisement data as a ``drivers.ble`` Advertisement."""
    return Advertisement(
        address=device.address.upper(),
        rssi=data.rssi,
        local_name=data.local_name,
        service_data={str(k).lower(): bytes(v) for k, v in data.service_data.items()},
        manufacturer_data={int(k): bytes(v) for k, v in data.manufacturer_data.items()},
        service_uuids=tuple(str(u).lower() for u in data.service_uuids),
        tx_power=data.tx_power,
    )


def to_advertisement_data(advert: Advertisement, platform_data: tuple[Any, ...] = ()) -> AdvertisementData:
    """A ``drivers.ble`` Advertisement as bleak's AdvertisementData (what a backend hands to callbacks)."""
    return AdvertisementData(
        local_name=advert.local_name,
        manufacturer_data=dict(advert.manufacturer_data),
        service_data=dict(advert.service_data),
        service_uuids=list(advert.service_uuids),
        tx_power=advert.tx_power,
        rssi=advert.rssi if advert.rssi is not None else -127,
        platform_data=platform_data,
    )


def record_line(t: float, advert: Advertisement) -> str:
    """One JSON line of a replay file for ``advert`` heard at ``t`` (the decoded fields, hex bytes)."""
    doc: dict[str, Any] = {"t": round(t, 6), "address": advert.address, "rssi": advert.rssi}
    if advert.local_name is not None:
        doc["local_name"] = advert.local_name
    if advert.service_data:
        doc["service_data"] = {k: bytes(v).hex() for k, v in advert.service_data.items()}
    if advert.manufacturer_data:
        doc["manufacturer_data"] = {str(k): bytes(v).hex() for k, v in advert.manufacturer_data.items()}
    if advert.service_uuids:
        doc["service_uuids"] = list(advert.service_uuids)
    if advert.tx_power is not None:
        doc["tx_power"] = advert.tx_power
    return json.dumps(doc, separators=(",", ":"))


def record_raw_line(t: float, address: str, rssi: int | None, raw: bytes) -> str:
    """One JSON line of a replay file holding the raw AD structures (what drivers.ble.emulator builds)."""
    return json.dumps({"t": round(t, 6), "address": address, "rssi": rssi, "raw": raw.hex()}, separators=(",", ":"))


def parse_record(doc: Mapping[str, Any]) -> RecordedAdvert:
    """One replay record (a parsed JSON line); ValueError naming what is wrong."""
    t = doc.get("t", 0.0)
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t < 1e9:
        raise ValueError(f"t must be seconds from the start of the recording, not {t!r}")
    address = doc.get("address")
    if not isinstance(address, str):
        raise ValueError("address is required (a Bluetooth address)")
    rssi = doc.get("rssi")
    if rssi is not None and (isinstance(rssi, bool) or not isinstance(rssi, int) or not -127 <= rssi <= 20):
        raise ValueError(f"rssi must be an integer dBm, not {rssi!r}")
    if "raw" in doc:
        raw = _hex(doc["raw"], "raw")
        return RecordedAdvert(float(t), parse_ad_structures(raw, address=address.upper(), rssi=rssi))
    service_data = doc.get("service_data", {})
    manufacturer_data = doc.get("manufacturer_data", {})
    uuids = doc.get("service_uuids", [])
    name = doc.get("local_name")
    tx_power = doc.get("tx_power")
    if not isinstance(service_data, dict) or not isinstance(manufacturer_data, dict) or not isinstance(uuids, list):
        raise ValueError("service_data and manufacturer_data must be objects, service_uuids a list")
    if name is not None and not isinstance(name, str):
        raise ValueError("local_name must be a string")
    if tx_power is not None and (isinstance(tx_power, bool) or not isinstance(tx_power, int)):
        raise ValueError("tx_power must be an integer")
    advert = Advertisement(
        address=address.upper(),
        rssi=rssi,
        local_name=name,
        service_data={str(k).lower(): _hex(v, f"service_data[{k}]") for k, v in service_data.items()},
        manufacturer_data={_company(k): _hex(v, f"manufacturer_data[{k}]") for k, v in manufacturer_data.items()},
        service_uuids=tuple(str(u).lower() for u in uuids),
        tx_power=tx_power,
    )
    return RecordedAdvert(float(t), advert)


def load_replay(path: Path) -> list[RecordedAdvert]:
    """Read a JSON-lines replay file; ReplayFormatError names the line that cannot be read."""
    records: list[RecordedAdvert] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if len(records) >= MAX_REPLAY_RECORDS:
                raise ReplayFormatError(str(path), n, f"more than {MAX_REPLAY_RECORDS} records")
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if len(text) > MAX_REPLAY_LINE:
                raise ReplayFormatError(str(path), n, f"line longer than {MAX_REPLAY_LINE} characters")
            try:
                doc = json.loads(text)
                if not isinstance(doc, dict):
                    raise ValueError("each line must be a JSON object")
                records.append(parse_record(doc))
            except ValueError as exc:  # json.JSONDecodeError and the decoders' errors are ValueErrors
                raise ReplayFormatError(str(path), n, str(exc)) from exc
            except Exception as exc:  # a decoder's own error type for malformed AD structures
                raise ReplayFormatError(str(path), n, str(exc) or type(exc).__name__) from exc
    return records


class ReplaySource:
    """Recorded advertisements and how far they have been played; shared by every backend built on it.

    The adapter builds a new scanner on every restart: the source keeps its place, so a restart
    continues the recording instead of playing it again.
    """

    def __init__(self, records: Iterable[RecordedAdvert], *, loop: bool = False, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must be 0 (as fast as possible) or more")
        self.records: Sequence[RecordedAdvert] = sorted(records, key=lambda r: r.t)
        self.loop = loop
        self.speed = speed
        self.position = 0
        self.played = 0
        self.rounds = 0
        self.finished = asyncio.Event()
        """Set when a recording that does not loop has been played to its end."""

    @classmethod
    def from_file(cls, path: Path, *, loop: bool = False, speed: float = 1.0) -> ReplaySource:
        """A source over a JSON-lines replay file."""
        return cls(load_replay(path), loop=loop, speed=speed)

    async def play(self, emit: Callable[[Advertisement], None]) -> None:
        """Hand records to ``emit`` with their timing until the end (or for ever when looping); cancel to stop."""
        records = self.records
        if not records:
            self.finished.set()
            await asyncio.Event().wait()
        loop = asyncio.get_running_loop()
        while True:
            start_pos = self.position
            t0 = records[start_pos].t if start_pos < len(records) else 0.0
            started = loop.time()
            while self.position < len(records):
                rec = records[self.position]
                if self.speed > 0:
                    delay = (rec.t - t0) / self.speed - (loop.time() - started)
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif self.played % 256 == 255:
                    await asyncio.sleep(0)  # as fast as possible, but let the rest of the loop run
                self.position += 1
                self.played += 1
                emit(rec.advert)
            self.rounds += 1
            if not self.loop:
                self.finished.set()
                await asyncio.Event().wait()  # a finished recording is a quiet radio
            await asyncio.sleep(max(0.0, MIN_LOOP_PERIOD_S - (loop.time() - started)))
            self.position = 0


class ReplayScannerBackend(BaseBleakScanner):
    """A bleak scanner backend that plays a :class:`ReplaySource` (pass it as ``replay=`` to BleakScanner)."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"],
        *,
        replay: ReplaySource,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self.scanning_mode = scanning_mode
        self.bluez: BlueZScannerArgs = kwargs.get("bluez", {})
        """What a BlueZ backend would have been asked for (controller, passive-scan patterns)."""
        self.replay = replay
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start playing; BleakError if already scanning (as a radio would)."""
        if self._task is not None:
            raise BleakError("scanning already started")
        self.seen_devices = {}
        self._task = asyncio.create_task(self.replay.play(self._emit), name="ble replay")

    async def stop(self) -> None:
        """Stop playing (the source keeps its place)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _emit(self, advert: Advertisement) -> None:
        data = to_advertisement_data(advert, ("replay",))
        if not self.is_allowed_uuid(data.service_uuids):
            return
        device = self.create_or_update_device(advert.address, advert.address, advert.local_name, None, data)
        self.call_detection_callbacks(device, data)


def open_scanner(
    callback: AdvertisementDataCallback,
    config: BleSection,
    *,
    backend: type[BaseBleakScanner] | None = None,
    backend_kwargs: Mapping[str, Any] | None = None,
) -> BleakScanner:
    """A BleakScanner on ``config.adapter`` in ``config.scanning_mode``, on ``backend`` (None: the platform's)."""
    bluez: BlueZScannerArgs = {"adapter": config.adapter}
    if config.scanning_mode == "passive":
        bluez["or_patterns"] = PASSIVE_OR_PATTERNS
    return BleakScanner(
        callback, None, config.scanning_mode, bluez=bluez, backend=backend, **dict(backend_kwargs or {})
    )


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ValueError(f"{what} is not hex: {exc}") from exc


def _company(key: Any) -> int:
    text = str(key).strip().lower()
    try:
        value = int(text, 16) if text.startswith("0x") else int(text)
    except ValueError as exc:
        raise ValueError(f"manufacturer id {key!r} is not a number") from exc
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"manufacturer id {key!r} is not 16-bit")
    return value
