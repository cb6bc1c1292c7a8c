"""``[[adapters.serial]]``: one table per serial port (docs/protocols/serial.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wire.names import check_sensor
from wire.typedconfig import ConfigValueError, doc

SerialProtocol = Literal["roost", "nmea", "line"]
Parity = Literal["none", "even", "odd", "mark", "space"]
BAUD_RATES = (
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 250000, 460800, 500000, 921600, 1000000,
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class SerialPortSection:
    """One serial port and the protocol spoken on it."""

    path: str = doc("Device path: a stable /dev/serial/by-id/... link (resolved at each open) or /dev/ttyUSB0")
    protocol: SerialProtocol = doc(
        "roost: Roost sensor nodes (framed, acknowledged); nmea: a GPS receiver; line: metric=value lines",
        default="roost",
    )
    baud: int = doc("Baud rate (GPS receivers: usually 9600 or 4800)", default=115200)
    bytesize: Literal[5, 6, 7, 8] = doc("Data bits", default=8)
    parity: Parity = doc("Parity", default="none")
    stopbits: float = doc("Stop bits: 1, 1.5 or 2", default=1.0)
    sensor: str = doc("Sensor id of the readings (nmea and line ports; a Roost node announces its own)", default="")
    accept: Literal["paired", "any"] = doc(
        "roost ports: paired: only paired nodes' readings are kept; any: every node's", default="paired"
    )
    max_line: int = doc("nmea and line ports: longest line accepted (bytes)", default=256)
    reopen_initial_s: float = doc("First wait before opening a missing or lost port again", default=0.5)
    reopen_max_s: float = doc("Longest wait between attempts (capped exponential backoff with jitter)", default=30.0)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ConfigValueError(
                "path", f"{self.path!r} must be an absolute device path, like /dev/serial/by-id/... or /dev/ttyUSB0"
            )
        if self.baud not in BAUD_RATES:
            raise ConfigValueError("baud", f"{self.baud} must be one of {', '.join(map(str, BAUD_RATES))}")
        if self.stopbits not in (1.0, 1.5, 2.0):
            raise ConfigValueError("stopbits", f"{self.stopbits:g} must be 1, 1.5 or 2")
        if self.protocol == "roost":
            if self.sensor:
                raise ConfigValueError(
                    "sensor", "a Roost node announces its own id: leave sensor out for protocol = 'roost'"
                )
        elif not self.sensor:
            raise ConfigValueError("sensor", f"is required for protocol = {self.protocol!r}: the readings' sensor id")
        else:
            try:
                check_sensor(self.sensor)
            except ValueError as exc:
                raise ConfigValueError("sensor", str(exc)) from exc
        if not 16 <= self.max_line <= 4096:
            raise ConfigValueError("max_line", "must be between 16 and 4096")
        if self.reopen_initial_s <= 0:
            raise ConfigValueError("reopen_initial_s", "must be greater than 0")
        if self.reopen_max_s < self.reopen_initial_s:
            raise ConfigValueError("reopen_max_s", "must be at least reopen_initial_s")


def check_ports(ports: tuple[SerialPortSection, ...]) -> None:
    """Refuse two tables for one device path (``serial[1].path: ...``)."""
    seen: dict[str, int] = {}
    for i, port in enumerate(ports):
        if port.path in seen:
            first = seen[port.path]
            raise ConfigValueError(f"serial[{i}].path", f"{port.path!r} is already configured as serial[{first}]")
        seen[port.path] = i
