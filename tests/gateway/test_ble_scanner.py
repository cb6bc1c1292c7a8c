"""The replay backend behind bleak's real BleakScanner, replay files, and bleak's types mapped to ours."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from drivers.ble import bthome
from drivers.ble.advertisement import Advertisement
from gateway.adapters.ble.config import BleSection
from gateway.adapters.ble.scanner import (
    ReplayFormatError,
    ReplayScannerBackend,
    ReplaySource,
    load_replay,
    open_scanner,
    record_line,
    record_raw_line,
    to_advertisement,
)
from tests.gateway import ble_rig

MAC = "A4:C1:38:0A:1B:2C"


async def test_bleak_calls_back_with_its_own_types_and_the_recorded_timing() -> None:
    got: list[tuple[float, BLEDevice, AdvertisementData]] = []
    records = ble_rig.timed(ble_rig.bthome(MAC, 20.0, packet_id=1), ble_rig.bthome(MAC, 21.0, packet_id=2), step=0.3)
    scanner = BleakScanner(
        lambda d, a: got.append((time.monotonic(), d, a)), backend=ReplayScannerBackend, replay=ReplaySource(records)
    )
    assert scanner.backend_id == "ReplayScannerBackend"
    async with scanner:
        await asyncio.sleep(0.5)
    assert len(got) == 2
    (t1, dev, adv), (t2, _, adv2) = got
    assert isinstance(dev, BLEDevice) and isinstance(adv, AdvertisementData)
    assert dev.address == MAC and adv.rssi == -60
    assert adv.service_data[bthome.UUID] == records[0].advert.service_data[bthome.UUID]
    assert 0.25 <= t2 - t1 <= 0.45
    assert scanner.discovered_devices_and_advertisement_data[MAC][1] == adv2  # bleak's own bookkeeping
    assert to_advertisement(dev, adv2) == records[1].advert


async def test_a_restarted_scanner_continues_the_recording() -> None:
    got: list[str] = []
    source = ReplaySource(
        ble_rig.timed(*(ble_rig.bthome(MAC, 20.0 + i, packet_id=i) for i in range(4)), step=0.2), speed=1.0
    )
    for _ in range(2):
        async with BleakScanner(
            lambda d, a: got.append(a.service_data[bthome.UUID].hex()), backend=ReplayScannerBackend, replay=source
        ):
            await asyncio.sleep(0.3)
    assert len(got) == len(set(got)) == 4 and source.played == 4
    assert source.finished.is_set()


async def test_a_looping_replay_starts_over_and_is_bounded_in_time() -> None:
    got: list[float] = []
    source = ReplaySource(ble_rig.timed(ble_rig.bthome(MAC, 20.0)), loop=True, speed=0)
    async with BleakScanner(lambda d, a: got.append(time.monotonic()), backend=ReplayScannerBackend, replay=source):
        await asyncio.sleep(1.5)
    assert len(got) == 2  # one record, at most one round per second: no busy loop
    assert source.rounds >= 1


def test_replay_files_round_trip(tmp_path: Path) -> None:
    adverts = [
        ble_rig.bthome(MAC, 20.0, packet_id=1),
        ble_rig.ruuvi_rawv2("C8:25:2D:8E:9C:11", temperature=24.3, humidity=53.49, pressure_pa=100_044, sequence=1),
        ble_rig.ibeacon("5E:01:02:03:04:05", "fda50693-a4e2-4fb1-afcf-c6eb07647825", 1, 2, rssi=-70),
    ]
    path = tmp_path / "adverts.jsonl"
    lines = ["# recorded on site", *(record_line(i * 1.5, a) for i, a in enumerate(adverts)), ""]
    path.write_text("\n".join(lines))
    records = load_replay(path)
    assert [r.t for r in records] == [0.0, 1.5, 3.0]
    assert [r.advert for r in records] == adverts


def test_an_emulated_fleet_becomes_a_replay_file(tmp_path: Path) -> None:
    from drivers.ble.emulator import BleFleet

    fleet = BleFleet(seed=1)
    rounds = [fleet.adverts() for _ in range(2)]
    path = tmp_path / "fleet.jsonl"
    path.write_text(
        "".join(
            record_raw_line(r * 5.0 + i * 0.5, a.address, a.rssi, a.raw) + "\n"
            for r, adverts in enumerate(rounds)
            for i, a in enumerate(adverts)
        )
    )
    records = load_replay(path)
    assert len(records) == 12 and records[-1].t == 7.5
    assert {r.advert.address for r in records} == set(fleet.addresses)


def test_a_raw_record_is_parsed_as_the_radio_sent_it(tmp_path: Path) -> None:
    raw = "020106" + "0716d2fc40" + "02c409"  # flags; BTHome service data: v2 plain, temperature 25.00
    path = tmp_path / "raw.jsonl"
    path.write_text(json.dumps({"t": 0, "address": MAC.lower(), "rssi": -61, "raw": raw}) + "\n")
    (record,) = load_replay(path)
    assert record.advert.address == MAC and record.advert.rssi == -61
    assert record.advert.service_data == {bthome.UUID: bytes.fromhex("4002c409")}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "Expecting property name"),
        ('{"t": 0}', "address is required"),
        ('{"t": -1, "address": "A4:C1:38:0A:1B:2C"}', "t must be seconds"),
        ('{"address": "A4:C1:38:0A:1B:2C", "service_data": {"0000fcd2-0000-1000-8000-00805f9b34fb": "4g"}}', "not hex"),
        ('{"address": "A4:C1:38:0A:1B:2C", "manufacturer_data": {"apple": "00"}}', "not a number"),
        ('{"address": "A4:C1:38:0A:1B:2C", "raw": "05ff"}', ""),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_a_bad_replay_line_is_named(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(record_line(0, ble_rig.bthome(MAC, 20.0)) + "\n" + line + "\n")
    with pytest.raises(ReplayFormatError, match=rf"bad\.jsonl:2: .*{problem}") as info:
        load_replay(path)
    assert info.value.line == 2


def test_passive_scanning_asks_bluez_for_advertisement_monitor_patterns() -> None:
    scanner = open_scanner(
        lambda d, a: None,
        BleSection(enabled=True, scanning_mode="passive", adapter="hci1"),
        backend=ReplayScannerBackend,
        backend_kwargs={"replay": ReplaySource([])},
    )
    backend = scanner._backend
    assert isinstance(backend, ReplayScannerBackend) and backend.scanning_mode == "passive"
    assert backend.bluez["adapter"] == "hci1"
    assert [p.content_of_pattern for p in backend.bluez["or_patterns"]] == [b"\x02", b"\x06", b"\x1a"]  # type: ignore[union-attr]
    active = open_scanner(
        lambda d, a: None,
        BleSection(enabled=True),
        backend=ReplayScannerBackend,
        backend_kwargs={"replay": ReplaySource([])},
    )._backend
    assert isinstance(active, ReplayScannerBackend) and "or_patterns" not in active.bluez


def test_mapping_bleak_data_keeps_every_field() -> None:
    adv = Advertisement(
        address=MAC,
        rssi=-40,
        local_name="ATC_0A1B2C",
        service_data={"0000181a-0000-1000-8000-00805f9b34fb": b"\x01"},
        manufacturer_data={0x0499: b"\x05"},
        service_uuids=("0000181a-0000-1000-8000-00805f9b34fb",),
        tx_power=4,
    )
    data = AdvertisementData(
        "ATC_0A1B2C",
        {0x0499: b"\x05"},
        {"0000181A-0000-1000-8000-00805F9B34FB": b"\x01"},
        ["0000181a-0000-1000-8000-00805f9b34fb"],
        4,
        -40,
        (),
    )
    assert to_advertisement(BLEDevice(MAC.lower(), None, None), data) == adv
