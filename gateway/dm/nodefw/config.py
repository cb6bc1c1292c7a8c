"""The ``[node_firmware]`` table of gateway.toml: how the gateway flashes a serial node (avrdude's settings)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wire.typedconfig import ConfigValueError, doc

_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFirmwareSection:
    """Sensor-node firmware updates over the node's serial port, through its bootloader (docs/device-management.md)."""

    avrdude: str = doc("The avrdude program (a name on PATH or a full path)", default="avrdude")
    programmer: str = doc("avrdude's programmer: arduino for optiboot (Uno), as on avrdude's -c", default="arduino")
    part: str = doc("avrdude's part: m328p for an ATmega328P, as on avrdude's -p", default="m328p")
    baud: int = doc("The bootloader's baud rate (115200 for an Uno's optiboot, 57600 for an old Nano)", default=115200)
    application_bytes: int = doc(
        "Flash below the bootloader that an image may fill: 32256 on an ATmega328P with optiboot (512 bytes)",
        default=32256,
    )
    max_image_bytes: int = doc("Largest .hex file taken (its text, downloaded or inline)", default=262144)
    flash_timeout_s: float = doc("Longest avrdude may run before it is stopped", default=120.0)
    announce_timeout_s: float = doc("Seconds the node has, once flashed, to announce itself again", default=20.0)

    def __post_init__(self) -> None:
        for key in ("programmer", "part"):
            if not _WORD.fullmatch(getattr(self, key)):
                raise ConfigValueError(key, "must be one word of letters, digits, '_', '.', '+' or '-'")
        if not self.avrdude or "\n" in self.avrdude:
            raise ConfigValueError("avrdude", "must name the avrdude program")
        if not 300 <= self.baud <= 2_000_000:
            raise ConfigValueError("baud", "must be between 300 and 2000000")
        if not 512 <= self.application_bytes <= 1 << 24:
            raise ConfigValueError("application_bytes", "must be between 512 and 16777216")
        if not 1024 <= self.max_image_bytes <= 1 << 26:
            raise ConfigValueError("max_image_bytes", "must be between 1024 and 67108864")
        if not 5 <= self.flash_timeout_s <= 3600:
            raise ConfigValueError("flash_timeout_s", "must be between 5 and 3600 seconds")
        if not 1 <= self.announce_timeout_s <= 600:
            raise ConfigValueError("announce_timeout_s", "must be between 1 and 600 seconds")
