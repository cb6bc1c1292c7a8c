"""The gateway's immutable id: from the hardware serial, else a UUID generated once and kept."""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

from wire.names import check_gateway

_LOGGER = logging.getLogger(__name__)
_CPUINFO = Path("/proc/cpuinfo")
_DT_SERIAL = Path("/sys/firmware/devicetree/base/serial-number")


def hardware_serial(cpuinfo: Path = _CPUINFO, dt_serial: Path = _DT_SERIAL) -> str | None:
    """The board's serial number (a Raspberry Pi's), or None where the hardware has none."""
    try:
        raw = dt_serial.read_bytes().rstrip(b"\0").decode("ascii", "replace").strip()
        if raw and raw.strip("0"):
            return raw.lower()
    except OSError:
        pass
    try:
        m = re.search(r"^Serial\s*:\s*([0-9a-fA-F]+)\s*$", cpuinfo.read_text(), re.MULTILINE)
    except OSError:
        return None
    if m and m.group(1).strip("0"):
        return m.group(1).lower()
    return None


def gateway_id(state_dir: Path, configured: str = "") -> str:
    """The configured id, else ``rpi-{serial}``, else a UUID generated on first start and kept in state_dir."""
    if configured:
        return check_gateway(configured)
    serial = hardware_serial()
    if serial:
        return check_gateway(f"rpi-{serial}")
    path = state_dir / "gateway-id"
    try:
        return check_gateway(path.read_text().strip())
    except FileNotFoundError:
        pass
    new = f"gw-{uuid.uuid4()}"
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    _LOGGER.info("This gateway has no hardware serial: generated its id %s", new)
    return new
