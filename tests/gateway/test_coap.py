"""The CoAP adapter with a real aiocoap client and a real durable buffer behind the hub."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiocoap
import pytest

from gateway.adapters.coap import CoapAdapter
from gateway.adapters.coap_dedup import DuplicateCache
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection, CoapSection
from gateway.hub import Hub
from gateway.pairing import Pairing
from wire import senml
from wire.reading import Reading


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    adapter: CoapAdapter
    buffer: DurableBuffer
    hub: Hub
    pairing: Pairing
    client: aiocoap.Context
    base: str

    async def post(self, path: str, payload: bytes, cf: int | None) -> aiocoap.Message:
        msg = aiocoap.Message(code=aiocoap.POST, uri=self.base + path, payload=payload)
        if cf is not None:
            msg.opt.content_format = cf
        return await asyncio.wait_for(self.client.request(msg).response, 20)

    async def stored(self) -> list[Reading]:
        batch = await self.buffer.take(100_000)
        if batch is None:
            return []
        self.buffer.release([batch.id])
        return batch.readings


async def _rig(tmp_path: Path, **coap: object) -> AsyncIterator[Rig]:
    port = _udp_port()
    section = CoapSection(host="127.0.0.1", port=port, **coap)  # type: ignore[arg-type]
    async with DurableBuffer.from_config(tmp_path / "buf.sqlite", BufferSection()) as buffer:
        hub = Hub(buffer)
        pairing = Pairing(["paired-1"], accept_any=section.accept == "any")
        adapter = CoapAdapter(section, hub, pairing)
        task = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.wait_ready(), 10)
        client = await aiocoap.Context.create_client_context()
        try:
            yield Rig(adapter, buffer, hub, pairing, client, f"coap://127.0.0.1:{port}")
        finally:
            await client.shutdown()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, accept="any"):
        yield r


@pytest.fixture
async def paired_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, accept="paired"):
        yield r


async def test_senml_json_and_cbor_become_durable_readings(rig: Rig) -> None:
    seen: list[Reading] = []
    rig.hub.readings.subscribe(seen.append)
    json_pack = b'[{"bn":"kitchen-th1:","bt":1.8e9,"n":"temperature","u":"Cel","v":21.5},{"n":"humidity","v":40}]'
    assert (await rig.post("/telemetry", json_pack, 110)).code == aiocoap.CHANGED
    cbor_pack = senml.encode([Reading("cellar-2", "temperature", 12.25, 1.8e9 + 1, "Cel")])
    assert (await rig.post("/telemetry", cbor_pack, 112)).code == aiocoap.CHANGED
    stored = await rig.stored()
    assert [(r.sensor, r.metric, r.value, r.unit, r.ts) for r in stored] == [
        ("kitchen-th1", "temperature", 21.5, "Cel", 1.8e9),
        ("kitchen-th1", "humidity", 40.0, None, 1.8e9),  # "u" is per record; "bu" would carry over
        ("cellar-2", "temperature", 12.25, "Cel", 1.8e9 + 1),
    ]
    assert seen == stored, "the hub shows subscribers what became durable"
    assert rig.adapter.accepted == 3


async def test_text_form_and_senml_under_a_sensor_path(rig: Rig) -> None:
    assert (await rig.post("/telemetry/uno-7", b"temp=19.5,door=true\n", 0)).code == aiocoap.CHANGED
    assert (await rig.post("/telemetry/uno-8", b"temp=1", None)).code == aiocoap.CHANGED
    assert (await rig.post("/telemetry/uno-9", b'[{"n":"temp","v":3}]', 110)).code == aiocoap.CHANGED
    got = [(r.sensor, r.metric, r.value) for r in await rig.stored()]
    assert got == [("uno-7", "temp", 19.5), ("uno-7", "door", True), ("uno-8", "temp", 1.0), ("uno-9", "temp", 3.0)]


@pytest.mark.parametrize(
    ("path", "payload", "cf", "code", "words", "reason"),
    [
        ("/telemetry", b'[{"bn":"a:",', 110, aiocoap.BAD_REQUEST, "does not parse", "malformed"),
        ("/telemetry", b"\x81\xa1\x00", 112, aiocoap.BAD_REQUEST, "CBOR", "malformed"),
        ("/telemetry", b'[{"bn":"a:","n":"t","v":1}]', 112, aiocoap.BAD_REQUEST, "says CBOR", "malformed"),
        (
            "/telemetry",
            senml.encode([Reading("a", "t", 1.0, 1.8e9)]),
            110,
            aiocoap.BAD_REQUEST,
            "says JSON",
            "malformed",
        ),
        ("/telemetry", b"t=1", 0, aiocoap.BAD_REQUEST, "must name its sensor", "malformed"),
        ("/telemetry/%2Fdev%2FttyUSB0", b"t=1", 0, aiocoap.BAD_REQUEST, "sensor", "malformed"),
        ("/telemetry/a/b", b"t=1", 0, aiocoap.NOT_FOUND, "/telemetry/{sensor}", "path"),
        ("/telemetry", b"<xml/>", 41, aiocoap.UNSUPPORTED_CONTENT_FORMAT, "110", "content-format"),
        ("/telemetry", b"[" + b" " * 70_000 + b"]", 110, aiocoap.REQUEST_ENTITY_TOO_LARGE, "limit", "too-large"),
        ("/telemetry/x", "t=1,h=\u00e9".encode(), 0, aiocoap.BAD_REQUEST, "not a number", "malformed"),
    ],
)
async def test_bad_posts_are_refused_with_a_diagnostic_and_counted(
    rig: Rig, path: str, payload: bytes, cf: int, code: aiocoap.Code, words: str, reason: str
) -> None:
    resp = await rig.post(path, payload, cf)
    assert resp.code == code
    assert words in resp.payload.decode()
    assert rig.adapter.rejected[reason] == 1
    assert await rig.stored() == []
    # ... and the adapter still serves good posts.
    assert (await rig.post("/telemetry/ok-1", b"t=1", 0)).code == aiocoap.CHANGED


async def test_get_is_not_allowed(rig: Rig) -> None:
    msg = aiocoap.Message(code=aiocoap.GET, uri=rig.base + "/telemetry")
    resp = await asyncio.wait_for(rig.client.request(msg).response, 10)
    assert resp.code == aiocoap.METHOD_NOT_ALLOWED


async def test_blockwise_post_is_reassembled(rig: Rig) -> None:
    readings = [Reading(f"node-{i % 7}", "temperature", 20 + i / 100, 1.8e9 + i, "Cel") for i in range(400)]
    payload = senml.encode(readings, encoding="json")
    assert len(payload) > 4096
    assert (await rig.post("/telemetry", payload, 110)).code == aiocoap.CHANGED
    assert [(r.sensor, r.value, r.ts_us) for r in await rig.stored()] == [
        (r.sensor, r.value, r.ts_us) for r in readings
    ]


async def test_unpaired_sensor_is_listed_and_counted_not_forwarded(paired_rig: Rig) -> None:
    rig = paired_rig
    resp = await rig.post("/telemetry/stranger-1", b"t=1", 0)
    assert resp.code == aiocoap.FORBIDDEN
    assert "stranger-1" in resp.payload.decode() and "not paired" in resp.payload.decode()
    mixed = b'[{"bn":"paired-1:","n":"t","v":1},{"bn":"stranger-2:","n":"t","v":2}]'
    assert (await rig.post("/telemetry", mixed, 110)).code == aiocoap.CHANGED
    assert [r.sensor for r in await rig.stored()] == ["paired-1"]
    assert set(rig.pairing.pending) == {"stranger-1", "stranger-2"}
    assert rig.pairing.refused_readings == 2
    rig.pairing.pair("stranger-1")
    assert (await rig.post("/telemetry/stranger-1", b"t=5", 0)).code == aiocoap.CHANGED
    assert "stranger-1" not in rig.pairing.pending


async def test_a_retransmitted_confirmable_post_is_answered_again_and_stored_once(rig: Rig) -> None:
    # A raw datagram sent twice, as a sensor does when the first ACK is lost (RFC 7252 4.5).
    # RFC 7252 section 3, by hand: ver 1, CON, token length 2 | POST | message id 4242 | token,
    # Uri-Path "telemetry" (option 11), Uri-Path "uno-3", Content-Format 0 (option 12, empty), payload.
    datagram = (
        bytes([0x42, 0x02])
        + (4242).to_bytes(2, "big")
        + b"\x01\x02"
        + b"\xb9telemetry"
        + b"\x05uno-3"
        + b"\x10"
        + b"\xfftemp=21.5"
    )
    loop = asyncio.get_running_loop()
    port = rig.adapter.config.port
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            answers.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(datagram)
        first = aiocoap.Message.decode(await asyncio.wait_for(answers.get(), 10))
        transport.sendto(datagram)
        second = aiocoap.Message.decode(await asyncio.wait_for(answers.get(), 10))
    finally:
        transport.close()
    assert first.code == second.code == aiocoap.CHANGED
    assert first.mid == second.mid == 4242 and first.token == second.token == b"\x01\x02"
    assert [(r.sensor, r.value) for r in await rig.stored()] == [("uno-3", 21.5)], "handled once"


def test_duplicate_cache_expires_in_order_and_stays_bounded() -> None:
    now = [1000.0]
    cache = DuplicateCache(3, lifetime_s=10, clock=lambda: now[0])
    for k in "abc":
        cache[k] = None
    cache["b"] = "response-b"  # aiocoap storing a response: no new entry
    assert len(cache) == 3 and cache["b"] == "response-b"
    cache["d"] = None  # over the bound: the oldest goes, counted
    assert "a" not in cache and "d" in cache and cache.evicted == 1
    now[0] += 10.5  # past the lifetime of b, c, d
    assert "b" not in cache and len(cache) == 0
    assert cache.pop("zzz") is None  # forgetting twice is quiet


async def test_the_adapter_bounds_aiocoaps_duplicate_cache(tmp_path: Path) -> None:
    async for rig in _rig(tmp_path, accept="any", duplicate_cache=16):
        for i in range(40):
            assert (await rig.post("/telemetry/b-1", f"t={i}".encode(), 0)).code == aiocoap.CHANGED
        stats = rig.adapter.stats()
        assert stats["duplicate_cache_evicted"] >= 40 - 16
        assert len(await rig.stored()) == 40
