"""Management levels and availability in the reported inventory of sensors."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.dm.sensors import Seen, inventory
from wire.reading import Reading


@dataclass
class Node:
    capabilities: int


class SerialLike:
    name = "serial"

    def nodes(self) -> dict[str, Any]:
        return {"node-full": Node(0x0007), "node-bare": Node(0)}


class CoapLike:
    name = "coap"


def test_levels_by_what_each_sensor_supports() -> None:
    seen = Seen()
    seen(Reading(sensor="th-1", metric="temp", value=21.0, ts=time.time(), unit="Cel"))
    seen.last["th-old"] = time.time() - 3600
    out = {s["id"]: s for s in inventory([SerialLike(), CoapLike()], seen, paired=["th-quiet"])}
    assert out["node-full"]["management"] == "full" and out["node-full"]["adapter"] == "serial"
    assert out["node-bare"]["management"] == "semi"  # firmware through its bootloader, nothing else
    assert out["th-1"] == {"id": "th-1", "adapter": "coap", "management": "none", "available": True}
    assert out["th-old"]["available"] is False
    assert out["th-quiet"] == {"id": "th-quiet", "adapter": None, "management": "none", "available": False}
