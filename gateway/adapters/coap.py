"""The CoAP adapter (aiocoap): devices POST readings to ``/telemetry`` or ``/telemetry/{sensor}``.

* ``POST /telemetry`` with a SenML pack, JSON (content-format 110, or 50) or CBOR (112, or 60); the
  base name names the sensor (``bn`` "kitchen-th1:" + ``n`` "temperature").
* ``POST /telemetry/{sensor}`` with ``metric=value,...`` text (content-format 0 or none), or with
  SenML whose names then default to that sensor.

The answer is 2.04 Changed only once the readings are durable in the buffer. Bad input is
refused with a diagnostic payload and counted: 4.00 (malformed), 4.04 (no such path),
4.05 (not POST), 4.13 (too large), 4.15 (content format), 4.03 (sensor not paired),
5.03 (buffer full, with Max-Age saying when to retry).

CoAP nodes that take commands observe ``/cmd/{node}`` (see :mod:`gateway.adapters.coap_commands`);
through it this adapter is an :class:`~gateway.adapters.base.Actuator`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiocoap
import aiocoap.resource

from drivers import linetext
from gateway.adapters import coap_commands, coap_dedup
from gateway.adapters.base import Adapter
from gateway.adapters.coap_commands import Refused
from gateway.config import CoapSection
from gateway.errors import BufferFull
from gateway.hub import Hub
from gateway.pairing import Pairing
from wire import senml
from wire.errors import PayloadError, PayloadTooLarge
from wire.names import check_sensor
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

# content-format -> how the payload is read
_SENML_JSON = {senml.CONTENT_FORMAT_JSON, 50}
_SENML_CBOR = {senml.CONTENT_FORMAT_CBOR, 60}
_TEXT = {0}


class TelemetryResource(aiocoap.resource.Resource):  # type: ignore[misc]
    """``/telemetry``: decode, check pairing, make durable, then answer."""

    def __init__(self, adapter: CoapAdapter) -> None:
        super().__init__()
        self._adapter = adapter

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        """Assemble block-wise posts, unless they already run past the size limit."""
        block1 = request.opt.block1
        # Past the limit, render() answers 4.13 without spooling more blocks.
        return block1 is None or block1.start <= self._adapter.config.max_payload

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        """Answer one request; never lets an exception out."""
        return await self._adapter.handle(request)


class SensorTelemetryResource(TelemetryResource, aiocoap.resource.PathCapable):  # type: ignore[misc]
    """``/telemetry/{sensor}``: the same, with the sensor named in the path."""


class CoapAdapter(Adapter):
    """Serves CoAP on ``config.host:config.port`` until cancelled."""

    name = "coap"

    def __init__(self, config: CoapSection, hub: Hub, pairing: Pairing) -> None:
        super().__init__()
        self.config = config
        self._hub = hub
        self._pairing = pairing
        self.bound: tuple[str, int] | None = None
        self._dedup: list[coap_dedup.DuplicateCache] = []
        self._ready = asyncio.Event()
        self.commands = coap_commands.NodeCommands(pairing, self.rejected)

    def stats(self) -> dict[str, object]:
        """Counters for health reports, with the duplicate cache's evictions."""
        return {**super().stats(), "duplicate_cache_evicted": sum(c.evicted for c in self._dedup)}

    async def wait_ready(self) -> None:
        """Wait until the server socket is bound."""
        await self._ready.wait()

    async def run(self) -> None:
        """Bind the CoAP server and serve until cancelled."""
        site = aiocoap.resource.Site()
        site.add_resource([".well-known", "core"], aiocoap.resource.WKCResource(site.get_resources_as_linkheader))
        site.add_resource(["telemetry"], TelemetryResource(self))
        site.add_resource(["telemetry"], SensorTelemetryResource(self))
        site.add_resource(["cmd"], coap_commands.CommandResource(self.commands))
        try:
            ctx = await aiocoap.Context.create_server_context(
                site, bind=(self.config.host, self.config.port), transports=["udp6"]
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"CoAP cannot listen on [{self.config.host}]:{self.config.port}: "
                f"{exc.strerror} (is another program using that port?)",
            ) from exc
        self._dedup = coap_dedup.bound(ctx, self.config.duplicate_cache)
        self.bound = (self.config.host, self.config.port)
        _LOGGER.info(
            "CoAP listening on [%s]:%d (accepting %s sensors)",
            self.config.host,
            self.config.port,
            "all" if self._pairing.accept_any else "paired",
        )
        self._ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(ctx.shutdown())

    # -- the Actuator interface: CoAP nodes that observe /cmd/{node} (gateway/adapters/coap_commands.py) --

    def owns(self, sensor: str) -> bool:
        """Whether ``sensor`` is a CoAP node listening for commands now."""
        return self.commands.owns(sensor)

    def actions(self, sensor: str) -> list[str]:
        """What CoAP node ``sensor`` said it can do."""
        return self.commands.actions(sensor)

    async def actuate(self, sensor: str, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Have CoAP node ``sensor`` do ``action``; its result."""
        return await self.commands.actuate(sensor, action, args)

    async def handle(self, request: aiocoap.Message) -> aiocoap.Message:
        """Decode, check pairing, make durable, answer; counts every refusal."""
        path = list(request.opt.uri_path)
        payload = request.payload
        # aiocoap keeps every confirmable request (through its response) for EXCHANGE_LIFETIME,
        # 247 s, to answer duplicates; its payload is not needed for that, so let it go now.
        request.payload = b""
        try:
            if request.code != aiocoap.POST:
                raise Refused(aiocoap.METHOD_NOT_ALLOWED, "method", "only POST is supported here")
            readings = self._decode(request, path, payload)
            allowed = self._check_pairing(readings, request)
            try:
                await self._hub.publish(allowed)
            except BufferFull as exc:
                raise Refused(
                    aiocoap.SERVICE_UNAVAILABLE, "buffer-full", "the gateway's buffer is full; try again later"
                ) from exc
        except Refused as exc:
            self.rejected[exc.reason] += 1
            _LOGGER.debug("CoAP %s from %s refused: %s", request.code, _remote(request), exc.diagnostic,
                          extra={"adapter": self.name})  # fmt: skip
            response = aiocoap.Message(code=exc.code, payload=exc.diagnostic.encode())
            response.opt.content_format = 0
            if exc.code == aiocoap.REQUEST_ENTITY_TOO_LARGE:
                response.opt.size1 = self.config.max_payload
            if exc.code == aiocoap.SERVICE_UNAVAILABLE:
                response.opt.max_age = 5
            return response
        except Exception:  # the receive path must never die: answer 5.00 and keep serving
            self.rejected["internal"] += 1
            _LOGGER.exception("CoAP request from %s failed", _remote(request))
            return aiocoap.Message(code=aiocoap.INTERNAL_SERVER_ERROR, payload=b"internal error")
        self.accepted += len(allowed)
        return aiocoap.Message(code=aiocoap.CHANGED)

    def _decode(self, request: aiocoap.Message, path: list[str], payload: bytes) -> list[Reading]:
        sensor: str | None = None
        if len(path) == 1 and path[0]:
            try:
                sensor = check_sensor(path[0])
            except ValueError as exc:
                raise Refused(aiocoap.BAD_REQUEST, "malformed", f"in the path: {exc}") from exc
        elif len(path) > 1 or (len(path) == 1 and not path[0]):
            raise Refused(aiocoap.NOT_FOUND, "path", "post to /telemetry or /telemetry/{sensor}")
        block1 = request.opt.block1
        if len(payload) > self.config.max_payload or (block1 is not None and block1.start > self.config.max_payload):
            size = len(payload) if block1 is None else max(len(payload), block1.start + len(payload))
            raise Refused(
                aiocoap.REQUEST_ENTITY_TOO_LARGE,
                "too-large",
                f"payload of {size}+ bytes is over the limit of {self.config.max_payload} bytes",
            )
        cf = request.opt.content_format
        try:
            if cf in _SENML_JSON or cf in _SENML_CBOR or (cf is None and _looks_like_senml(payload)):
                if cf in _SENML_JSON and senml.sniff(payload) == "cbor":
                    raise PayloadError("content-format says JSON but the payload is CBOR")
                if cf in _SENML_CBOR and senml.sniff(payload) == "json":
                    raise PayloadError("content-format says CBOR but the payload is JSON")
                records = senml.load_records(payload, max_bytes=self.config.max_payload)
                if sensor is not None and records and "bn" not in records[0]:
                    records = [{"bn": sensor + ":"}, *records]
                return senml.resolve(records, max_records=self.config.max_records)
            if cf in _TEXT or cf is None:
                if sensor is None:
                    raise PayloadError("a metric=value post must name its sensor: POST /telemetry/{sensor}")
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise PayloadError("text payload is not UTF-8") from exc
                now = _now()
                return [Reading(sensor=sensor, metric=m, value=v, ts=now) for m, v in linetext.parse(text)]
        except PayloadTooLarge as exc:
            raise Refused(aiocoap.REQUEST_ENTITY_TOO_LARGE, "too-large", str(exc)) from exc
        except PayloadError as exc:
            raise Refused(aiocoap.BAD_REQUEST, "malformed", exc.reason) from exc
        raise Refused(
            aiocoap.UNSUPPORTED_CONTENT_FORMAT,
            "content-format",
            f"content-format {int(cf)} is not supported: use 110 (SenML JSON), 112 (SenML CBOR) "
            "or 0 (metric=value text)",
        )

    def _check_pairing(self, readings: Sequence[Reading], request: aiocoap.Message) -> list[Reading]:
        if self._pairing.accept_any:
            return list(readings)
        allowed = [r for r in readings if self._pairing.allows(r.sensor)]
        if len(allowed) != len(readings):
            unknown: dict[str, int] = {}
            for r in readings:
                if not self._pairing.allows(r.sensor):
                    unknown[r.sensor] = unknown.get(r.sensor, 0) + 1
            for s, n in unknown.items():
                self._pairing.note_unknown(s, f"coap {_remote(request)}", n)
            if not allowed:
                names = ", ".join(sorted(unknown)[:3])
                raise Refused(
                    aiocoap.FORBIDDEN, "unpaired", f"sensor {names} is not paired with this gateway; pair it first"
                )
        return allowed


def _looks_like_senml(payload: bytes) -> bool:
    try:
        return senml.sniff(payload) in ("json", "cbor")
    except PayloadError:
        return False


def _now() -> float:
    return round(time.time(), 6)


def _remote(request: aiocoap.Message) -> Any:
    try:
        return request.remote.hostinfo
    except Exception:  # a log detail only
        return "?"
