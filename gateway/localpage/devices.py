"""What the pairing and wired pages ask of the running adapters: BLE previews, Modbus test reads, I2C scans.

Each returns JSON-ready data or raises :class:`PageInputError` with a message for the technician.
"""

from __future__ import annotations

import asyncio
import errno
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

TEST_READ_TIMEOUT_S = 20.0
MAX_I2C_BUS = 99


class PageInputError(ValueError):
    """A form value the page refuses; the message names the field."""


def nearby(adapters: list[Any]) -> list[dict[str, Any]]:
    """BLE devices heard but not paired (the adapter's ``pending()``), each with a decoded preview."""
    out: list[dict[str, Any]] = []
    for a in adapters:
        if getattr(a, "kind", None) == "ble" and hasattr(a, "pending"):
            for entry in a.pending():
                preview = a.preview(str(entry.get("id", ""))) if hasattr(a, "preview") else []
                out.append({**entry, "preview": preview})
    return out


def wired_settings(config: GatewayConfig, adapters: list[Any]) -> dict[str, Any]:
    """The serial ports and Modbus units of gateway.toml, with each one's state now."""
    port_stats: dict[str, Any] = {}
    unit_states: dict[str, Any] = {}
    for a in adapters:
        stats = a.stats()
        if getattr(a, "name", "") == "serial":
            port_stats.update(stats.get("ports") or {})
        if getattr(a, "name", "") == "modbus":
            unit_states.update(stats.get("devices") or {})
    serial = [
        {"path": p.path, "protocol": p.protocol, "baud": p.baud, "settings": f"{p.bytesize}{p.parity[0].upper()}"
         f"{p.stopbits:g}", "sensor": p.sensor, "state": (port_stats.get(p.path) or {}).get("state", "not running"),
         "problem": (port_stats.get(p.path) or {}).get("problem", "")}
        for p in config.adapters.serial
    ]  # fmt: skip
    modbus = []
    for u in config.adapters.modbus:
        st = unit_states.get(u.sensor_id) or {}
        modbus.append({
            "path": u.path, "unit": u.unit, "sensor": u.sensor_id, "baud": u.baud,
            "settings": f"8{u.parity[0].upper()}{u.stopbits}", "interval_s": u.interval_s,
            "registers": [r.name for r in u.registers],
            "state": "not running" if not st else "answering" if st.get("available") else "not answering",
            "problem": st.get("last_error", ""),
        })  # fmt: skip
    return {"serial": serial, "modbus": modbus}


async def modbus_test_read(adapters: list[Any], sensor: object) -> list[dict[str, Any]]:
    """Read every register of the Modbus unit ``sensor`` once, through the running adapter (its line's lock)."""
    if not isinstance(sensor, str) or not sensor:
        raise PageInputError("Unit: choose a Modbus unit to read")
    modbus = next((a for a in adapters if getattr(a, "name", "") == "modbus" and hasattr(a, "units")), None)
    if modbus is None:
        raise PageInputError("Modbus is not running: add an [[adapters.modbus]] unit to gateway.toml")
    unit = next((u for u in modbus.units if u.sensor == sensor), None)
    if unit is None:
        raise PageInputError(f"Unit: no Modbus unit {sensor!r} is configured")
    try:
        async with asyncio.timeout(min(TEST_READ_TIMEOUT_S, unit.worst_poll_s + 1.0)):
            measurements = await unit.poll()
    except TimeoutError:
        raise PageInputError(f"{sensor}: no answer within {TEST_READ_TIMEOUT_S:g} s") from None
    except Exception as exc:  # NoAnswer, PortError, ModbusPollError: what the technician should know
        raise PageInputError(f"{sensor}: {exc}") from None
    return [{"metric": m.metric, "value": m.value, "unit": m.unit or ""} for m in measurements]


def _scan_bus(bus_number: int, emulated: bool) -> list[dict[str, Any]]:
    from drivers.i2c.scan import scan

    if emulated:
        from drivers.i2c.emulated_bus import demo_bus

        return [f.as_json() for f in scan(demo_bus())]
    import smbus2

    path = f"/dev/i2c-{bus_number}"
    try:
        bus = smbus2.SMBus(bus_number)
    except FileNotFoundError:
        raise PageInputError(
            f"{path} does not exist: enable I2C (dtparam=i2c_arm=on in /boot/firmware/config.txt, then reboot) "
            "and check the bus number"
        ) from None
    except PermissionError:
        raise PageInputError(f"{path}: permission denied: the gateway's user needs the i2c group") from None
    except OSError as exc:
        raise PageInputError(f"{path}: cannot open: {exc.strerror or errno.errorcode.get(exc.errno or 0)}") from None
    try:
        return [f.as_json() for f in scan(bus)]
    finally:
        bus.close()


async def i2c_scan(bus: object, emulated: bool) -> list[dict[str, Any]]:
    """Probe addresses 0x03-0x77 of ``/dev/i2c-N`` (or the demo's emulated bus) and name known chips."""
    from drivers.errors import DriverError

    try:
        number = int(str(bus).strip())
    except ValueError:
        raise PageInputError(f"Bus number: {str(bus)[:20]!r} is not a whole number (1 on a Raspberry Pi)") from None
    if not 0 <= number <= MAX_I2C_BUS:
        raise PageInputError(f"Bus number: must be between 0 and {MAX_I2C_BUS}")
    try:
        return await asyncio.to_thread(_scan_bus, number, emulated)
    except DriverError as exc:
        raise PageInputError(f"I2C bus {number}: {exc.problem}") from None
