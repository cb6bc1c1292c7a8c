"""``[adapters.zigbee]``: the Zigbee adapter's settings (docs/zigbee.md).

Pure dataclasses: no zigpy import here, so loading a config costs nothing when Zigbee is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wire.typedconfig import ConfigValueError, doc

Radio = Literal["znp", "ezsp", "deconz", "memory"]
BAUD_RATES = (38400, 57600, 115200, 230400, 460800)
MAX_PERMIT_S = 254
"""The longest permit-join window Zigbee allows in one request (Mgmt_Permit_Joining_req)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ZigbeeSection:
    """The Zigbee adapter (zigpy): one coordinator radio, its network and the devices paired to it."""

    enabled: bool = doc("Run the Zigbee adapter (imports zigpy and the radio's library)", default=False)
    radio: Radio = doc(
        "znp: TI CC2652/CC1352 (extra zigbee-znp); ezsp: Silicon Labs (extra zigbee-ezsp); "
        "deconz: ConBee/RaspBee (extra zigbee-deconz); memory: in-memory radio for the demo and tests",
        default="znp",
    )
    path: str = doc("Radio's serial device: a stable /dev/serial/by-id/... link, or /dev/ttyUSB0", default="")
    baudrate: int = doc("Serial speed of the radio (ZNP and EZSP sticks: 115200)", default=115200)
    flow_control: Literal["none", "hardware", "software"] = doc("Serial flow control", default="none")
    channel: int = doc(
        "Zigbee channel 11-26 when the network is formed; 0 = pick a quiet one of 11/15/20/25", default=0
    )
    pan_id: int = doc("PAN id when the network is formed (0x0001-0xFFFE); 0 = random", default=0)
    backup_file: Path | None = doc(
        "Network backup (keys, PAN id, channel, paired devices), written after forming and on every change; "
        "none = state_dir/zigbee-backup.json",
        default=None,
    )
    restore_file: Path | None = doc(
        "A backup to restore when the state folder has none yet (a replaced SD card or gateway): "
        "the devices stay paired",
        default=None,
    )
    database: bool = doc(
        "Keep zigpy's device database in state_dir/zigbee.db (devices known at once after a restart)", default=True
    )
    expected_interval_s: float = doc(
        "A device unheard this long is published as available = false (reports are configured every 900 s at most)",
        default=3600.0,
    )
    permit_join_s: int = doc("Default length of a pairing window (roost gateway pair zigbee)", default=120)
    start_timeout_s: float = doc("Seconds starting the radio and the network may take", default=60.0)
    command_timeout_s: float = doc("Seconds a command to a device may take to be answered", default=10.0)
    restart_initial_s: float = doc("First wait before starting a failed radio again", default=2.0)
    restart_max_s: float = doc("Longest wait between attempts (capped exponential backoff with jitter)", default=60.0)
    queue_size: int = doc("Readings waiting to be published, at most; more are dropped and counted", default=4096)
    emulate_devices: bool = doc(
        "radio = memory: a set of emulated devices (climate, door, motion, leak, plug, bulb) joins and reports",
        default=False,
    )
    emulate_interval_s: float = doc("radio = memory: seconds between the emulated devices' reports", default=5.0)

    def __post_init__(self) -> None:
        if self.radio != "memory" and self.enabled and not self.path.startswith("/"):
            raise ConfigValueError(
                "path", f"{self.path!r} must be the radio's device path, like /dev/serial/by-id/... or /dev/ttyUSB0"
            )
        if self.baudrate not in BAUD_RATES:
            raise ConfigValueError("baudrate", f"{self.baudrate} must be one of {', '.join(map(str, BAUD_RATES))}")
        if self.channel != 0 and not 11 <= self.channel <= 26:
            raise ConfigValueError("channel", f"{self.channel} must be 0 (pick) or a Zigbee channel from 11 to 26")
        if not 0 <= self.pan_id <= 0xFFFE:
            raise ConfigValueError("pan_id", "must be 0 (random) or from 0x0001 to 0xFFFE")
        if not 10 <= self.expected_interval_s <= 7 * 86400:
            raise ConfigValueError("expected_interval_s", "must be between 10 seconds and 7 days")
        if not 1 <= self.permit_join_s <= MAX_PERMIT_S:
            raise ConfigValueError("permit_join_s", f"must be between 1 and {MAX_PERMIT_S} seconds")
        for key in ("start_timeout_s", "command_timeout_s", "restart_initial_s", "emulate_interval_s"):
            if getattr(self, key) <= 0:
                raise ConfigValueError(key, "must be greater than 0")
        if self.restart_max_s < self.restart_initial_s:
            raise ConfigValueError("restart_max_s", "must be at least restart_initial_s")
        if not 16 <= self.queue_size <= 1_000_000:
            raise ConfigValueError("queue_size", "must be between 16 and 1000000")
        if self.emulate_devices and self.radio != "memory":
            raise ConfigValueError("emulate_devices", "needs radio = 'memory' (emulated devices have no real radio)")
