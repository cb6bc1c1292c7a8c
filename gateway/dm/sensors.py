"""Which local sensors the gateway has, through which adapter, how far each is managed, and whether it is there.

Management levels (reported in ``state/reported``):

- ``full``: settings, outputs, reboot *and* firmware updates through Roost (a Roost serial node that
  announced interval, outputs or reboot: its firmware goes through its bootloader with ``node-firmware``);
- ``semi``: some of that through Roost (a Roost serial node that announced no capability: firmware only;
  Zigbee devices, through their clusters);
- ``none``: readings and availability only (CoAP senders, BLE advertisers, Modbus, I2C/SPI chips).

Availability: a node announced on a port that is open, or a sensor whose last reading is recent (the
:class:`Seen` tap on the hub keeps the last time per sensor, bounded).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from wire.reading import Reading
from wire.state import Management, SensorState

SEEN_MAX = 10_000
AVAILABLE_S = 600.0
ADAPTER_LEVEL: dict[str, Management] = {
    "coap": "none",
    "ble": "none",
    "modbus": "none",
    "chips": "none",
    "zigbee": "semi",
}


class Seen:
    """The last reading time of each sensor (the newest ``SEEN_MAX`` sensors); an observer of the hub."""

    def __init__(self) -> None:
        self.last: OrderedDict[str, float] = OrderedDict()

    def __call__(self, reading: Reading) -> None:
        """Note one reading."""
        self.last[reading.sensor] = time.time()
        self.last.move_to_end(reading.sensor)
        while len(self.last) > SEEN_MAX:
            self.last.popitem(last=False)


def _node_level(capabilities: int) -> Management:
    return "full" if capabilities & 0x0007 else "semi"


def inventory(adapters: Sequence[Any], seen: Seen, paired: Sequence[str] = ()) -> list[SensorState]:
    """Every sensor the gateway knows now: announced nodes, sensors seen on the hub, paired sensors."""
    out: dict[str, SensorState] = {}
    now = time.time()
    for adapter in adapters:
        nodes = getattr(adapter, "nodes", None)
        if callable(nodes):
            for sensor_id, node in nodes().items():
                out[sensor_id] = {
                    "id": sensor_id,
                    "adapter": adapter.name,
                    "management": _node_level(int(getattr(node, "capabilities", 0))),
                    "available": True,
                }
    others = [a.name for a in adapters if not callable(getattr(a, "nodes", None))]
    # A reading does not say which adapter brought it: name the adapter when only one other could have.
    guess = others[0] if len(others) == 1 else None
    for sensor_id, at in seen.last.items():
        if sensor_id not in out:
            out[sensor_id] = {
                "id": sensor_id,
                "adapter": guess,
                "management": ADAPTER_LEVEL.get(guess or "", "none"),
                "available": now - at < AVAILABLE_S,
            }
    for sensor_id in paired:
        if sensor_id not in out:
            out[sensor_id] = {"id": sensor_id, "adapter": None, "management": "none", "available": False}
    return sorted(out.values(), key=lambda s: s["id"])
