"""What a BLE decoder hands back: the format, the sensor id, SenML-ready measurements and the security fields."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.measurement import Measurement


@dataclass(frozen=True, slots=True)
class BleResult:
    """One decoded advertisement."""

    format: str
    """``bthome``, ``bthome-encrypted``, ``ruuvi-rawv2``, ``pvvx``, ``atc1441``, ``ibeacon``,
    ``eddystone-uid``, ``eddystone-url`` or ``eddystone-tlm``."""
    sensor: str
    """The sensor id: the device's MAC (upper case, colons) or, for a beacon, its beacon id
    (``ibeacon-{uuid}-{major}-{minor}``, ``eddystone-{namespace}-{instance}``); SenML name characters
    only. ``""`` only for an advertisement parsed without an address whose format carries no id."""
    measurements: list[Measurement]
    packet_id: int | None = None
    """The sender's own duplicate filter (BTHome packet id, Ruuvi measurement sequence, pvvx/ATC counter)."""
    encrypted: bool = False
    """True when the data was decrypted and its MIC verified (BTHome with a bind key)."""
    counter: int | None = None
    """The encryption counter of an encrypted advertisement (checked against replays), else None."""
