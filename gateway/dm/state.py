"""Desired and reported state: the cloud's config, applied atomically, rolled back if it loses the cloud.

The cloud publishes ``state/desired`` (retained; re-sent when the gateway connects): a version, gateway.toml
tables the cloud may set (:data:`wire.state.SETTABLE`) and the rules text. :class:`DesiredState`:

1. splits the desired config into units (``adapters.coap``, ``uplink.batch_max_delay_ms``, ``paired``, ...);
   a unit outside the settable subset, or whose value the typed loader refuses, is *rejected* with the reason
   and the rest is *applied* (each unit is checked together with those before it, by the same loader as
   gateway.toml itself);
2. writes what it applied as an overlay, ``state_dir/dm/desired.json`` (temp file, fsync, rename, fsync of
   the folder), after keeping the overlay it replaces as ``desired.prev.json``; the rules text goes to
   ``dm/rules.toml`` for the rules engine. The installer's gateway.toml is never rewritten (it may live on
   a read-only or boot partition): the daemon runs gateway.toml with the overlay on top;
3. restarts the daemon's parts in-process with the new config (buffer, uplink, adapters: the same order and
   bounded shutdown as a process restart, in about a second; the process, its log ring and its command
   memory stay) and puts the new overlay on probation (``dm/pending.json``);
4. once the uplink is connected with it, the overlay is kept; if it is not connected within
   ``dm.rollback_after_s``, the previous overlay is put back, the daemon restarts again, and the version is
   remembered as failed (a retained desired state of that version is not tried again: the operator sends a
   new version);
5. publishes ``state/reported`` (retained) on every connection and after every change.

Feature switches (``enable``/``disable`` of an adapter, the local page, SSH) and the lock live in
``dm/switches.json`` and are applied on top of the overlay: a disabled or locked adapter is not even
imported. Everything here is small JSON; blocking file work runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig
from gateway.identity import write_private
from wire import typedconfig
from wire.state import SETTABLE, Desired

_LOGGER = logging.getLogger(__name__)

DM_DIR = "dm"
OVERLAY = "desired.json"
PREVIOUS = "desired.prev.json"
PENDING = "pending.json"
SWITCHES = "switches.json"
RULES = "rules.toml"
ADAPTERS: tuple[str, ...] = ("coap", "serial", "modbus", "i2c", "spi", "ble")
FEATURES: tuple[str, ...] = (*ADAPTERS, "local-page", "ssh")
FAILED_KEPT = 50


def to_table(obj: Any) -> Any:
    """A config dataclass as the TOML table it could be loaded from (paths as strings, None left out)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.init and value is not None:
                out[f.name] = to_table(value)
        return out
    if isinstance(obj, tuple | list):
        return [to_table(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` on top: tables merge key by key, anything else (lists too) is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _units(config: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(unit key path, the unit as a nested table or None when not settable), one per settable unit."""
    for key, value in config.items():
        if key in SETTABLE:
            if isinstance(value, dict) and value:
                for sub, sub_value in value.items():
                    yield f"{key}.{sub}", {key: {sub: sub_value}}
            else:
                yield key, {key: value}
        elif isinstance(value, dict) and any(s.startswith(f"{key}.") for s in SETTABLE):
            for sub, sub_value in value.items():
                path = f"{key}.{sub}"
                yield path, ({key: {sub: sub_value}} if path in SETTABLE else None)
        else:
            yield key, None


def build(base: GatewayConfig, overlay: dict[str, Any]) -> GatewayConfig:
    """``base`` with the overlay on top, through the typed loader (ConfigValueError names the key)."""
    if not overlay:
        return base
    return typedconfig.build(GatewayConfig, merge(to_table(base), overlay))


@dataclass(frozen=True, slots=True)
class Plan:
    """What a desired config comes to: the overlay to run, the units applied, and those rejected with why."""

    overlay: dict[str, Any]
    applied: list[str]
    rejected: dict[str, str]


def plan(base: GatewayConfig, config: dict[str, Any]) -> Plan:
    """Split ``config`` into units, keep each one the typed loader accepts together with those kept before it."""
    overlay: dict[str, Any] = {}
    applied: list[str] = []
    rejected: dict[str, str] = {}
    for path, unit in _units(config):
        if unit is None:
            rejected[path] = "not settable from the cloud (the installer's gateway.toml keeps it)"
            continue
        candidate = merge(overlay, unit)
        try:
            build(base, candidate)
        except typedconfig.ConfigValueError as exc:
            rejected[path] = f"{exc.key_path}: {exc.problem}" if exc.key_path else exc.problem
            continue
        overlay = candidate
        applied.append(path)
    return Plan(overlay, applied, rejected)


@dataclass(slots=True)
class Switches:
    """Feature switches and the lock, kept across restarts."""

    disabled: list[str] = field(default_factory=list)
    local_page: bool = True
    ssh: bool = False
    locked: bool = False
    locked_by: str | None = None
    locked_at: float | None = None
    version: int = 0
    """The desired version running now (0: none)."""
    applied: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    """Desired versions rolled back (as strings, JSON keys) and why; not tried again."""

    def features(self) -> dict[str, bool]:
        """Every feature and whether it is on."""
        out = {a: a not in self.disabled for a in ADAPTERS}
        out.update({"local-page": self.local_page and not self.locked, "ssh": self.ssh and not self.locked})
        return out


class DesiredState:
    """The overlay, the switches and the probation of a new config, in ``state_dir/dm``."""

    def __init__(self, state_dir: Path, *, rollback_after_s: float, clock: Callable[[], float] = time.time) -> None:
        self.folder = state_dir / DM_DIR
        self.rollback_after_s = rollback_after_s
        self._clock = clock
        self.switches = Switches()
        self.overlay: dict[str, Any] = {}
        self.rolled_back: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    # -- files -------------------------------------------------------------------------------------------------

    def _read(self, name: str) -> Any:
        with contextlib.suppress(FileNotFoundError):
            return json.loads((self.folder / name).read_text())
        return None

    def _write(self, name: str, body: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_private(self.folder / name, json.dumps(body, indent=1).encode())

    def load(self) -> None:
        """Read the overlay and switches (blocking; at start). A damaged file is logged and ignored."""
        try:
            raw = self._read(SWITCHES) or {}
            names = {f.name for f in dataclasses.fields(Switches)}
            self.switches = Switches(**{k: v for k, v in raw.items() if k in names})
        except (ValueError, TypeError) as exc:
            _LOGGER.error("dm: %s is damaged (%s): starting with default switches", self.folder / SWITCHES, exc)
            self.switches = Switches()
        try:
            overlay = self._read(OVERLAY)
            self.overlay = overlay if isinstance(overlay, dict) else {}
        except ValueError as exc:
            _LOGGER.error("dm: %s is damaged (%s): running gateway.toml alone", self.folder / OVERLAY, exc)
            self.overlay = {}

    def save_switches(self) -> None:
        """Persist the switches (blocking)."""
        self._write(SWITCHES, dataclasses.asdict(self.switches))

    # -- the config the daemon runs ------------------------------------------------------------------------------

    def effective(self, base: GatewayConfig) -> GatewayConfig:
        """gateway.toml with the overlay, the disabled adapters and the lock applied."""
        try:
            config = build(base, self.overlay)
        except typedconfig.ConfigValueError as exc:  # gateway.toml changed under the overlay: run it alone
            _LOGGER.error("dm: the cloud's config no longer fits gateway.toml (%s): running gateway.toml alone", exc)
            config = base
        off = set(ADAPTERS) if self.switches.locked else set(self.switches.disabled)
        if not off:
            return config
        a = config.adapters
        adapters = dataclasses.replace(
            a,
            coap=dataclasses.replace(a.coap, enabled=a.coap.enabled and "coap" not in off),
            ble=dataclasses.replace(a.ble, enabled=a.ble.enabled and "ble" not in off),
            serial=() if "serial" in off else a.serial,
            modbus=() if "modbus" in off else a.modbus,
            i2c=() if "i2c" in off else a.i2c,
            spi=() if "spi" in off else a.spi,
        )
        return dataclasses.replace(config, adapters=adapters)

    # -- applying ----------------------------------------------------------------------------------------------

    async def apply(self, base: GatewayConfig, desired: Desired, *, one_off: bool = False) -> tuple[Plan, bool]:
        """Plan ``desired`` and, when the overlay changes, write it and put it on probation; (plan, restart needed).

        ``one_off`` (``set-config``): the units go on top of the overlay running now, the version stays.
        """
        async with self._lock:
            sw = self.switches
            version = desired["version"]
            if not one_off and str(version) in sw.failed:
                reason = f"version {version} was rolled back ({sw.failed[str(version)]}): send a new version"
                return Plan(self.overlay, [], {"*": reason}), False
            p = plan(base, desired["config"])
            overlay = merge(self.overlay, p.overlay) if one_off else p.overlay
            rules = desired.get("rules")
            if rules is not None:
                await asyncio.to_thread(self._write_rules, rules)
                p.applied.append("rules")
            changed = overlay != self.overlay
            if changed:
                await asyncio.to_thread(self._stage, overlay, version)
                self.overlay = overlay
            if not one_off:
                sw.version = version
            sw.applied = sorted(set(sw.applied) | set(p.applied)) if one_off else p.applied
            sw.rejected = p.rejected
            await asyncio.to_thread(self.save_switches)
            _LOGGER.info(
                "dm: desired state %d: applied %s; rejected %s",
                version,
                ", ".join(p.applied) or "nothing new",
                ", ".join(f"{k} ({v})" for k, v in p.rejected.items()) or "nothing",
            )
            return p, changed

    def _write_rules(self, text: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_private(self.folder / RULES, text.encode())

    def _stage(self, overlay: dict[str, Any], version: int) -> None:
        """Keep the overlay running now as the previous one, write the new one, start its probation."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write(PREVIOUS, {"overlay": self.overlay, "version": self.switches.version})
        self._write(OVERLAY, overlay)
        self._write(PENDING, {"version": version, "until": self._clock() + self.rollback_after_s})

    def pending(self) -> dict[str, Any] | None:
        """The probation under way, if any (blocking)."""
        try:
            found = self._read(PENDING)
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    async def confirm(self) -> None:
        """The cloud was reached with the new config: end its probation."""
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread((self.folder / PENDING).unlink)
        self.rolled_back = None
        _LOGGER.info("dm: the new config reaches the cloud: kept")

    async def roll_back(self, reason: str) -> None:
        """Put the previous overlay back, remember the failed version, end the probation."""
        async with self._lock:
            pending = await asyncio.to_thread(self.pending) or {}
            previous = await asyncio.to_thread(self._read, PREVIOUS) or {}
            failed_version = int(pending.get("version", self.switches.version))
            overlay = previous.get("overlay") if isinstance(previous.get("overlay"), dict) else {}
            assert isinstance(overlay, dict)
            await asyncio.to_thread(self._write, OVERLAY, overlay)
            self.overlay = overlay
            sw = self.switches
            sw.failed[str(failed_version)] = reason
            while len(sw.failed) > FAILED_KEPT:
                sw.failed.pop(next(iter(sw.failed)))
            sw.version = int(previous.get("version", 0))
            sw.rejected = {"*": f"version {failed_version} rolled back: {reason}"}
            sw.applied = []
            await asyncio.to_thread(self.save_switches)
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread((self.folder / PENDING).unlink)
            self.rolled_back = {"version": failed_version, "reason": reason}
            _LOGGER.warning("dm: desired version %d rolled back: %s", failed_version, reason)

    async def probation(self, connected: Callable[[], bool], restart: Callable[[str], None]) -> None:
        """While a new config is on probation: keep it once ``connected()``; past the deadline, roll back."""
        pending = await asyncio.to_thread(self.pending)
        if pending is None:
            return
        until = float(pending.get("until", 0))
        for _ in range(int(self.rollback_after_s * 4) + 8):  # bounded: a check every 0.25 s until the deadline
            if connected():
                await self.confirm()
                return
            if self._clock() >= until:
                break
            await asyncio.sleep(0.25)
        await self.roll_back(f"the gateway could not reach the cloud with it within {self.rollback_after_s:.0f} s")
        restart("roll back")

    # -- switches ----------------------------------------------------------------------------------------------

    async def set_switch(self, **changes: Any) -> None:
        """Change switches and persist them."""
        async with self._lock:
            for key, value in changes.items():
                setattr(self.switches, key, value)
            await asyncio.to_thread(self.save_switches)

    def rules_path(self) -> Path:
        """Where the cloud's rules text is kept for the rules engine."""
        return self.folder / RULES
