"""The DM agent's ``pair`` and ``unpair``: the operator pairs a sensor from the cloud as a technician would on site.

``pair`` ``{"kind": "sensor", "id": "th-7"}``: a CoAP or serial sender known by its sensor id is allowed (its
readings are bridged from now on; kept in the registry across restarts, under kind ``allowed``).
``pair`` ``{"kind": "ble", "id": "A4:C1:38:..", "key": "<32 hex digits, for encrypted BTHome>"}``: a BLE sensor
(the key is a secret: the cloud records it redacted, the gateway never reports it).
``pair`` ``{"kind": "zigbee", "seconds": 120}``: opens the Zigbee network for joining.
``unpair`` ``{"kind": ..., "id": ...}`` reverses each. The BLE and Zigbee cases go through the same handlers as
``roost gateway pair`` on site (:mod:`gateway.control`), so both ends behave alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.control import ControlError, handlers_for
from gateway.dm.commands import CommandFailed, Dispatcher, InvalidArguments
from gateway.pairing import ALLOWED_KIND
from wire.names import check_sensor

if TYPE_CHECKING:
    from gateway.daemon import Daemon

KINDS = ("sensor", "ble", "zigbee")


def _sensor_id(args: dict[str, Any]) -> str:
    sensor = args.get("id")
    if not isinstance(sensor, str):
        raise InvalidArguments("'id' must be the sensor's id (as it sends it)")
    try:
        return check_sensor(sensor)
    except ValueError as exc:
        raise InvalidArguments(f"'id': {exc}") from None


def register(agent: Dispatcher, running: Callable[[], Daemon]) -> None:
    """Offer ``pair`` and ``unpair`` on ``agent``."""

    def kind_of(args: dict[str, Any]) -> str:
        kind = args.get("kind")
        if kind not in KINDS:
            raise InvalidArguments(f"'kind' must be one of {', '.join(KINDS)} (sensor: a CoAP or serial sender)")
        return str(kind)

    async def via_control(op: str, args: dict[str, Any]) -> Any:
        d = running()
        if d.registry is None:
            raise CommandFailed("the gateway's device registry is not open: try again in a few seconds")
        try:
            return await handlers_for(list(d.adapters), d.registry)[op]({**args, "op": op})
        except ControlError as exc:
            raise CommandFailed(str(exc)) from None

    async def pair(args: dict[str, Any]) -> dict[str, Any]:
        kind = kind_of(args)
        if kind != "sensor":
            out = await via_control("pair", args)
            return dict(out) if isinstance(out, dict) else {"result": out}
        sensor, d = _sensor_id(args), running()
        if d.registry is None:
            raise CommandFailed("the gateway's device registry is not open: try again in a few seconds")
        name, location = args.get("name", ""), args.get("location", "")
        if not isinstance(name, str) or not isinstance(location, str) or len(name) > 64 or len(location) > 64:
            raise InvalidArguments("'name' and 'location' must be text of at most 64 characters")
        waiting = d.pairing.pending.get(sensor)
        await asyncio.to_thread(d.registry.upsert, ALLOWED_KIND, sensor, name=name, location=location)
        d.pairing.pair(sensor)
        return {
            "kind": "sensor", "id": sensor, "paired": True,
            "was_waiting": waiting is not None, "readings_held_back": waiting.readings if waiting else 0,
        }  # fmt: skip

    async def unpair(args: dict[str, Any]) -> dict[str, Any]:
        kind = kind_of(args)
        if kind != "sensor":
            out = await via_control("unpair", args)
            return dict(out) if isinstance(out, dict) else {"result": out}
        sensor, d = _sensor_id(args), running()
        if d.registry is None:
            raise CommandFailed("the gateway's device registry is not open: try again in a few seconds")
        removed = await asyncio.to_thread(d.registry.remove, ALLOWED_KIND, sensor)
        if not removed and sensor not in d.pairing.paired:
            raise CommandFailed(f"sensor {sensor} is not paired with this gateway")
        d.pairing.unpair(sensor)
        return {"kind": "sensor", "id": sensor, "paired": False}

    agent.register("pair", pair)
    agent.register("unpair", unpair)
