"""What the machine says about itself for the heartbeat: temperature, load, memory, disk, the process.

Each figure is read where Linux keeps it (psutil, /sys/class/thermal); one that cannot be read is left
out rather than guessed, so a report from a machine without a thermal zone simply has no cpu_temp_c.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import psutil

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature(zone: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature in °C (a Pi's thermal zone 0), or None where there is none."""
    with contextlib.suppress(OSError, ValueError):
        return round(int(zone.read_text().strip()) / 1000.0, 1)
    return None


def system_health(state_dir: Path) -> dict[str, Any]:
    """The machine's figures now (cheap: no sampling interval, nothing blocks)."""
    out: dict[str, Any] = {}
    temp = cpu_temperature()
    if temp is not None:
        out["cpu_temp_c"] = temp
    with contextlib.suppress(OSError):
        out["load_1m"] = round(os.getloadavg()[0], 2)
    with contextlib.suppress(Exception):
        out["memory_used_pct"] = round(psutil.virtual_memory().percent, 1)
    with contextlib.suppress(OSError):
        out["disk_free_mb"] = round(shutil.disk_usage(state_dir).free / 1e6, 1)
    with contextlib.suppress(Exception):
        out["process_rss_mb"] = round(psutil.Process().memory_info().rss / 1e6, 1)
    return out
