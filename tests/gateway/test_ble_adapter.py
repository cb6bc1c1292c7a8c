"""The BLE adapter through bleak's real BleakScanner with a replay backend, into a real Hub and DurableBuffer.

Advertisements are built with the decoders' own encoders (BTHome encryption included) and replayed
with their timing; what is checked is what the uplink would send.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.adapters.ble.adapter import AVAILABLE, BleAdapter
from gateway.adapters.ble.config import BleDeviceSection, BleSection
from gateway.adapters.ble.scanner import ReplaySource
from gateway.hub import Hub
from gateway.pairing import Pairing
from tests.gateway import ble_rig
from tests.gateway.ble_rig import KEY, OTHER_KEY, buffered, replay_kwargs, run_until, timed

MAC1 = "A4:C1:38:0A:1B:2C"
MAC2 = "A4:C1:38:0A:1B:2D"
STRANGER = "11:22:33:44:55:66"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async for h in ble_rig.hub_at(tmp_path / "buf.sqlite"):
        yield h


def section(*devices: BleDeviceSection, **kwargs: object) -> BleSection:
    return BleSection(enabled=True, devices=devices, **kwargs)  # type: ignore[arg-type]


async def test_bthome_readings_arrive_in_the_buffer_with_reception_time(hub: Hub) -> None:
    cfg = section(BleDeviceSection(address=MAC1, name="kitchen-th"))
    records = timed(
        ble_rig.bthome(MAC1, 21.5, packet_id=1, humidity=45.25), ble_rig.bthome(MAC1, 21.75, packet_id=2), step=0.05
    )
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(records))
    before = time.time()
    await run_until(adapter, lambda: adapter.accepted >= 3)
    readings = await buffered(hub)
    assert [(r.sensor, r.metric, r.value, r.unit) for r in readings] == [
        ("kitchen-th", "temperature", 21.5, "Cel"),
        ("kitchen-th", "humidity", 45.25, "%RH"),
        ("kitchen-th", "temperature", 21.75, "Cel"),
    ]
    assert all(before <= r.ts <= time.time() for r in readings)
    assert readings[2].ts - readings[0].ts >= 0.04  # replayed with its timing, stamped on reception
    assert adapter.rejected_total == 0 and adapter.scanner_starts == 1


async def test_encrypted_bthome_with_the_right_key_is_decrypted(hub: Hub) -> None:
    cfg = section(BleDeviceSection(address=MAC1, bind_key=KEY.hex()))
    records = timed(ble_rig.bthome(MAC1, 19.25, packet_id=7, key=KEY, counter=100))
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(records))
    await run_until(adapter, lambda: adapter.accepted >= 1)
    readings = await buffered(hub)
    assert [(r.sensor, r.metric, r.value) for r in readings] == [(MAC1, "temperature", 19.25)]


async def test_a_wrong_key_is_counted_as_bad_mic_and_nothing_is_published(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = section(BleDeviceSection(address=MAC1, bind_key=OTHER_KEY.hex()))
    records = timed(*(ble_rig.bthome(MAC1, 19.0 + i, packet_id=i, key=KEY, counter=i) for i in range(3)), step=0.01)
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(records))
    with caplog.at_level(logging.DEBUG, logger="gateway.adapters.ble"):
        await run_until(adapter, lambda: adapter.rejected["bad-mic"] >= 3)
    assert adapter.rejected == {"bad-mic": 3}
    assert await buffered(hub) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "bind key" in r.getMessage()]
    assert len(warnings) == 1, "logged once per device and reason, then counted"
    assert KEY.hex() not in caplog.text and OTHER_KEY.hex() not in caplog.text


async def test_a_replayed_counter_is_refused_but_a_packet_heard_twice_is_a_duplicate(hub: Hub) -> None:
    cfg = section(BleDeviceSection(address=MAC1, bind_key=KEY.hex()))
    first = ble_rig.bthome(MAC1, 20.0, packet_id=1, key=KEY, counter=10)
    replay = ble_rig.bthome(MAC1, 35.0, packet_id=2, key=KEY, counter=10)  # new data under an old counter
    older = ble_rig.bthome(MAC1, 36.0, packet_id=3, key=KEY, counter=9)
    later = ble_rig.bthome(MAC1, 21.0, packet_id=4, key=KEY, counter=11)
    records = timed(first, first, replay, older, later, step=0.01)
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(records))
    await run_until(adapter, lambda: adapter.accepted >= 2)
    assert adapter.rejected == {"replayed-counter": 2}
    assert adapter.duplicates == 1
    assert [r.value for r in await buffered(hub)] == [20.0, 21.0]


async def test_an_encrypted_device_without_a_key_is_counted_and_listed(hub: Hub) -> None:
    pairing = Pairing([])
    records = timed(ble_rig.bthome(MAC2, 20.0, packet_id=1, key=KEY, counter=1))
    adapter = BleAdapter(section(), hub, pairing, **replay_kwargs(records))
    await run_until(adapter, lambda: adapter.rejected["needs-key"] >= 1)
    assert MAC2 in pairing.pending
    assert await buffered(hub) == []


async def test_the_same_packet_id_twice_is_published_once(hub: Hub) -> None:
    cfg = section(BleDeviceSection(address=MAC1))
    records = timed(
        ble_rig.bthome(MAC1, 20.0, packet_id=5, rssi=-60),
        ble_rig.bthome(MAC1, 20.0, packet_id=5, rssi=-71),  # the same packet heard again (another rssi)
        ble_rig.bthome(MAC1, 20.5, packet_id=5, rssi=-65),  # the same packet id: the sender says it is a repeat
        ble_rig.bthome(MAC1, 20.5, packet_id=6),
        step=0.01,
    )
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(records))
    await run_until(adapter, lambda: adapter.accepted + adapter.duplicates >= 4)
    assert adapter.duplicates == 2
    assert [r.value for r in await buffered(hub)] == [20.0, 20.5]


async def test_ruuvi_pvvx_and_an_ibeacon_with_its_rssi(hub: Hub) -> None:
    ruuvi_mac, pvvx_mac, beacon_mac = "C8:25:2D:8E:9C:11", MAC2, "5E:01:02:03:04:05"
    beacon_uuid = "fda50693-a4e2-4fb1-afcf-c6eb07647825"
    beacon_id = f"ibeacon-{beacon_uuid}-10-7"
    cfg = section(BleDeviceSection(address=ruuvi_mac, name="ruuvi-1"), BleDeviceSection(address=pvvx_mac))
    records = timed(
        ble_rig.ruuvi_rawv2(ruuvi_mac, temperature=24.3, humidity=53.49, pressure_pa=100_044, sequence=205),
        ble_rig.pvvx(pvvx_mac, temperature=22.51, humidity=40.5, counter=17),
        ble_rig.ibeacon(beacon_mac, beacon_uuid, 10, 7, rssi=-72),
        ble_rig.phone("4A:00:00:00:00:01"),
        step=0.01,
    )
    pairing = Pairing([beacon_id])  # a beacon changes its address: paired by its beacon id
    adapter = BleAdapter(cfg, hub, pairing, **replay_kwargs(records))
    await run_until(adapter, lambda: adapter.foreign >= 1 and adapter.accepted >= 3)
    by = {(r.sensor, r.metric): r for r in await buffered(hub)}
    assert by[("ruuvi-1", "temperature")].value == 24.3
    assert by[("ruuvi-1", "pressure")].value == 100_044 and by[("ruuvi-1", "pressure")].unit == "Pa"
    assert by[(pvvx_mac, "temperature")].value == 22.51 and by[(pvvx_mac, "humidity")].value == 40.5
    assert by[(beacon_id, "presence")].value is True
    assert by[(beacon_id, "rssi")].value == -72 and by[(beacon_id, "rssi")].unit == "dBm"
    assert adapter.foreign == 1 and adapter.rejected_total == 0


async def test_rssi_of_sensors_is_published_when_asked(hub: Hub) -> None:
    cfg = section(BleDeviceSection(address=MAC1), rssi=True)
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(timed(ble_rig.bthome(MAC1, 20.0, rssi=-48))))
    await run_until(adapter, lambda: adapter.accepted >= 2)
    assert {(r.metric, r.value) for r in await buffered(hub)} == {("temperature", 20.0), ("rssi", -48)}


async def test_an_unpaired_device_is_listed_for_pairing_and_not_forwarded(hub: Hub) -> None:
    pairing = Pairing([])
    cfg = section(BleDeviceSection(address=MAC1))
    records = timed(ble_rig.bthome(STRANGER, 30.0, packet_id=1), ble_rig.bthome(MAC1, 20.0, packet_id=1), step=0.01)
    adapter = BleAdapter(cfg, hub, pairing, **replay_kwargs(records))
    await run_until(adapter, lambda: adapter.accepted >= 1 and adapter.rejected["unpaired"] >= 1)
    assert [r.sensor for r in await buffered(hub)] == [MAC1]
    assert STRANGER in pairing.pending and pairing.pending[STRANGER].readings == 1
    assert "ble" in pairing.pending[STRANGER].source

    # Paired on site (the technician's CLI or page): the next advertisement is bridged.
    pairing.pair(STRANGER)
    adapter2 = BleAdapter(cfg, hub, pairing, **replay_kwargs(timed(ble_rig.bthome(STRANGER, 31.0, packet_id=2))))
    await run_until(adapter2, lambda: adapter2.accepted >= 1)
    assert [(r.sensor, r.value) for r in await buffered(hub)] == [(STRANGER, 31.0)]


async def test_accept_any_bridges_every_decodable_device(hub: Hub) -> None:
    adapter = BleAdapter(
        section(accept="any"), hub, Pairing([]), **replay_kwargs(timed(ble_rig.bthome(STRANGER, 30.0)))
    )
    await run_until(adapter, lambda: adapter.accepted >= 1)
    assert [r.sensor for r in await buffered(hub)] == [STRANGER]


async def test_scanner_failures_back_off_then_recover(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    ble_rig.FlakyReplayBackend.fail_starts = 4
    ble_rig.FlakyReplayBackend.attempts = []
    cfg = section(BleDeviceSection(address=MAC1), restart_initial_s=0.05, restart_max_s=0.2)
    source = ReplaySource(timed(ble_rig.bthome(MAC1, 20.0, packet_id=1)))
    adapter = BleAdapter(
        cfg, hub, Pairing([]), scanner_backend=ble_rig.FlakyReplayBackend, scanner_kwargs={"replay": source}
    )
    with caplog.at_level(logging.DEBUG, logger="gateway.adapters.ble"):
        await run_until(adapter, lambda: adapter.accepted >= 1)
    attempts = ble_rig.FlakyReplayBackend.attempts
    assert len(attempts) == 5 and adapter.start_failures == 4 and adapter.scanner_starts == 1
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # capped exponential backoff with jitter (each wait is 50-100 % of 0.05, 0.1, 0.2, 0.2 s)
    for gap, nominal in zip(gaps, (0.05, 0.1, 0.2, 0.2), strict=True):
        assert 0.5 * nominal - 0.01 <= gap <= nominal + 0.15, gaps
    assert adapter.scanner_problem == ""
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot start" in warnings[0] and "No Bluetooth adapters found" in warnings[0]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("works again after 4 failed starts" in m for m in infos)
    assert [r.value for r in await buffered(hub)] == [20.0]


async def test_a_silent_scanner_is_restarted_and_the_replay_goes_on(hub: Hub) -> None:
    cfg = section(BleDeviceSection(address=MAC1), watchdog_s=1.0)
    records = [
        *timed(ble_rig.bthome(MAC1, 20.0, packet_id=1)),
        *timed(ble_rig.bthome(MAC1, 21.0, packet_id=2), start=2.0),  # 2 s of silence: BlueZ restarted under us
    ]
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(records))
    await run_until(adapter, lambda: adapter.accepted >= 2, timeout=6)
    assert adapter.watchdog_restarts >= 1 and adapter.scanner_starts >= 2
    assert [r.value for r in await buffered(hub)] == [20.0, 21.0]  # nothing replayed twice


async def test_a_device_goes_unavailable_after_silence_and_comes_back(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = section(BleDeviceSection(address=MAC1, name="porch", expected_interval_s=1.0), watchdog_s=0)
    records = [
        *timed(ble_rig.bthome(MAC1, 20.0, packet_id=1)),
        *timed(ble_rig.bthome(MAC1, 21.0, packet_id=2), start=1.8),
    ]
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(records))
    with caplog.at_level(logging.INFO, logger="gateway.adapters.ble"):
        await run_until(adapter, lambda: adapter.accepted >= 2, timeout=5)
    readings = await buffered(hub)
    assert [(r.metric, r.value) for r in readings] == [
        ("temperature", 20.0),
        (AVAILABLE, False),
        ("temperature", 21.0),
        (AVAILABLE, True),
    ]
    assert readings[1].ts - readings[0].ts >= 1.0
    assert readings[3].ts == readings[2].ts
    assert adapter.availability[MAC1].available is True
    assert any("unavailable" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert any("heard again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


async def test_a_device_never_heard_is_unavailable_once(hub: Hub) -> None:
    cfg = section(BleDeviceSection(address=MAC1, expected_interval_s=1.0), watchdog_s=0)
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs([]))
    t0 = time.monotonic()
    await run_until(adapter, lambda: time.monotonic() - t0 > 2.0, timeout=3)
    assert [(r.sensor, r.metric, r.value) for r in await buffered(hub)] == [(MAC1, AVAILABLE, False)]


async def test_encryption_counters_survive_a_restart(hub: Hub, tmp_path: Path) -> None:
    cfg = section(BleDeviceSection(address=MAC1, bind_key=KEY.hex()))
    counters = tmp_path / "ble-counters.json"
    advert = ble_rig.bthome(MAC1, 20.0, packet_id=1, key=KEY, counter=500)
    first = BleAdapter(cfg, hub, Pairing([]), counters_file=counters, **replay_kwargs(timed(advert)))
    await run_until(first, lambda: first.accepted >= 1)
    assert counters.exists() and counters.stat().st_mode & 0o777 == 0o600
    # The same recording played to a restarted gateway is a replay.
    second = BleAdapter(cfg, hub, Pairing([]), counters_file=counters, **replay_kwargs(timed(advert)))
    await run_until(second, lambda: second.rejected_total >= 1)
    assert second.rejected == {"replayed-counter": 1} and second.accepted == 0


async def test_a_flood_of_advertisements_is_bounded_and_counted(hub: Hub) -> None:
    cfg = section(accept="any", queue_size=16)
    records = timed(*(ble_rig.bthome(STRANGER, 20.0, packet_id=i % 256) for i in range(2000)))
    adapter = BleAdapter(cfg, hub, Pairing([]), **replay_kwargs(records, speed=0))
    # Every advert ends up accepted, refused as queue-full (counted), or a duplicate: none goes unaccounted.
    await run_until(
        adapter, lambda: adapter.accepted + adapter.rejected["queue-full"] + adapter.duplicates >= 2000, timeout=20
    )
    assert adapter.adverts == 2000
    assert adapter.accepted + adapter.rejected["queue-full"] + adapter.duplicates == 2000
    assert adapter.rejected["queue-full"] > 0, "a 16-deep queue cannot take 2000 adverts at once"
    assert adapter.accepted > 0
