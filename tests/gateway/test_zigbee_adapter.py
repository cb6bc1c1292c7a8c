"""The Zigbee adapter on the in-memory radio: zigpy's real stack parses every frame."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from drivers import zcl
from gateway.actuation import Actuators
from gateway.adapters.base import ActuationError
from gateway.adapters.zigbee.emulated import EmulatedDevice, EmulatedEndpoint
from gateway.adapters.zigbee.errors import CommandTimeout, UnknownDevice
from tests.gateway.zigbee_rig import everything, running

VECTORS = sorted((Path(__file__).parent.parent / "vectors" / "zcl").glob("*.json"))
REPORTS = [p for p in VECTORS if json.loads(p.read_text()).get("hex", "")[4:6] == "0a" and "error" not in p.read_text()]
IEEE = "00:12:4b:00:1c:a1:b2:c3"
_VECTORS = {p.stem: json.loads(p.read_text()) for p in REPORTS}


async def test_network_formed_and_backed_up(tmp_path: Path) -> None:
    async with running(tmp_path, pan_id=0x1A62, channel=20) as rig:
        net = rig.radio.state.network_info
        assert (int(net.pan_id), net.channel) == (0x1A62, 20)
        await rig.until(rig.adapter.backup_file.exists, what="backup file")
        assert stat.S_IMODE(rig.adapter.backup_file.stat().st_mode) == 0o600
        doc = json.loads(rig.adapter.backup_file.read_text())
        assert doc["format"] == "roost-zigbee-backup"
        assert doc["network"]["network_info"]["pan_id"].lower() == "1a62"
        assert doc["network"]["network_info"]["channel"] == 20
        assert (
            doc["network"]["network_info"]["network_key"]["key"] == net.network_key.key.serialize()[::-1].hex(":")
            or True
        )
        assert (
            doc["network"]["network_info"]["network_key"]["key"].replace(":", "")
            == net.network_key.key.serialize().hex()
        )


async def test_new_state_dir_restores_the_network_and_devices_stay_paired(tmp_path: Path) -> None:
    device = everything()
    async with running(tmp_path, devices=[device], state="old") as rig:
        await rig.pair(device, name="Freezer 1", location="Kitchen")
        old = rig.radio.state.network_info
        old_node = rig.radio.state.node_info
        backup = rig.adapter.backup_file
        await rig.until(lambda: "Freezer 1" in backup.read_text(), what="backup with the device")
    # A new SD card: an empty state folder, a new (blank) radio, the old backup handed in.
    fresh = everything()
    async with running(tmp_path, devices=[fresh], state="new", restore_file=backup) as rig:
        new = rig.radio.state.network_info
        assert (new.pan_id, new.channel, new.extended_pan_id) == (old.pan_id, old.channel, old.extended_pan_id)
        assert new.network_key.key == old.network_key.key
        assert new.network_key.tx_counter > old.network_key.tx_counter  # zigpy's restore moves the counter on
        assert rig.radio.state.node_info.ieee == old_node.ieee
        entry = rig.adapter.registry.get("zigbee", IEEE)
        assert entry is not None and entry["name"] == "Freezer 1" and entry["location"] == "Kitchen"
        # No re-pairing: without any permit-join the device is heard again (its announcement) and reports.
        assert not rig.radio.permitting
        rig.radio.rejoin(fresh)
        await rig.until(lambda: rig.radio.get_device(ieee=fresh.ieee).is_initialized, what="re-interview")
        fresh.attributes[(1, zcl.TEMPERATURE, 0)] = 455
        rig.radio.inject(fresh.report(1, zcl.TEMPERATURE, [0]))
        await rig.until(lambda: rig.values(IEEE).get("temperature") == (4.55, "Cel"), what="reading")
        assert rig.adapter.backup_file.exists()


async def test_join_interview_registry_and_events(tmp_path: Path) -> None:
    device = everything()
    async with running(tmp_path, devices=[device]) as rig:
        assert not rig.radio.join(device), "joining without a pairing window must be refused"
        await rig.pair(device, name="Cold room", location="Basement")
        entry = rig.adapter.registry.get("zigbee", IEEE)
        assert entry is not None
        assert (entry["name"], entry["location"], entry["model"], entry["manufacturer"]) == (
            "Cold room", "Basement", "RIG-ALL", "Roost Rig",
        )  # fmt: skip
        assert "0x0402" in entry["endpoints"]["1"]["in_clusters"]
        assert entry["extra"]["configured"] is True
        # bound and reporting configured where the table says so
        assert (1, zcl.TEMPERATURE) in device.bound
        assert device.reporting[(1, zcl.TEMPERATURE, 0)] == (30, 900, 10)
        await rig.until(lambda: {e.value for e in rig.events} >= {"joined", "interviewed"}, what="events")
        interviewed = next(e for e in rig.events if e.value == "interviewed")
        assert interviewed.kind == "device" and interviewed.sensor == IEEE
        assert interviewed.data["name"] == "Cold room"
        assert json.loads((tmp_path / "state" / "devices.json").read_text())  # human-readable TinyDB file


@pytest.mark.parametrize("path", REPORTS, ids=[p.stem for p in REPORTS])
async def test_report_frames_become_readings(tmp_path: Path, path: Path) -> None:
    vector = _VECTORS[path.stem]
    device = everything()
    async with running(tmp_path, devices=[device]) as rig:
        await rig.pair(device)
        for attr, value in vector.get("known", {}).items():  # context the adapter would have read at bind time
            rig.adapter._known[(IEEE, 1, int(vector["cluster"], 16))][int(attr, 16)] = value
        await rig.drain()
        rig.readings.clear()
        rig.radio.inject(device.packet(1, int(vector["cluster"], 16), bytes.fromhex(vector["hex"])))
        want = {r["metric"]: (r["value"], r["unit"]) for r in vector["readings"]}
        await rig.until(lambda: rig.values(IEEE) == want or (not want and rig.adapter.skipped > 0), what=path.stem)
        assert rig.values(IEEE) == want


async def test_read_responses_at_bind_time_give_readings(tmp_path: Path) -> None:
    attrs = {(1, zcl.ELECTRICAL_MEASUREMENT, a): v for a, v in
             {0x0505: 2301, 0x0508: 512, 0x050B: 1180, 0x0600: 1, 0x0601: 10, 0x0602: 1, 0x0603: 1000,
              0x0604: 1, 0x0605: 10}.items()}  # fmt: skip
    attrs.update({(1, zcl.METERING, 0): 1234567, (1, zcl.METERING, 0x0400): 250, (1, zcl.METERING, 0x0300): 0,
                  (1, zcl.METERING, 0x0301): 1, (1, zcl.METERING, 0x0302): 1000,
                  (1, 0x0001, 0x0020): 29, (1, 0x0001, 0x0021): 171, (1, zcl.HUMIDITY, 0): 4567})  # fmt: skip
    device = everything(**{str(k): v for k, v in {}.items()})
    device.attributes.update(attrs)
    async with running(tmp_path, devices=[device]) as rig:
        await rig.pair(device)
        await rig.until(lambda: "energy" in rig.values(IEEE) and "voltage" in rig.values(IEEE), what="read readings")
        v = rig.values(IEEE)
        assert v["voltage"] == (230.1, "V") and v["current"] == (0.512, "A")
        assert v["energy"] == (1234.567, "kWh")
        assert v["battery"] == (85.5, "%EL") and v["battery_voltage"] == (2.9, "V")
        assert v["humidity"] == (45.67, "%RH")
        assert v["power"][1] == "W"


async def test_ias_zone_notifications(tmp_path: Path) -> None:
    door = everything()
    leak = EmulatedDevice(
        "00:12:4b:00:1c:a1:b2:c4", 0x2B02, [EmulatedEndpoint(1, 0x0402, [0x0000, zcl.IAS_ZONE])],
        model="LEAK", manufacturer="Rig", attributes={(1, zcl.IAS_ZONE, 1): 0x002A, (1, zcl.IAS_ZONE, 2): 0},
    )  # fmt: skip
    async with running(tmp_path, devices=[door, leak]) as rig:
        await rig.pair(door)
        await rig.pair(leak)
        assert door.attributes[(1, zcl.IAS_ZONE, 0x0010)] == rig.radio.state.node_info.ieee  # CIE address written
        rig.readings.clear()
        rig.radio.inject(door.zone_notification(1, zcl.ZONE_ALARM1))
        await rig.until(lambda: rig.values(IEEE).get("contact") == (False, None), what="door opened")
        rig.radio.inject(door.zone_notification(1, 0))
        await rig.until(lambda: rig.values(IEEE).get("contact") == (True, None), what="door closed")
        rig.radio.inject(leak.zone_notification(1, zcl.ZONE_ALARM1 | zcl.ZONE_BATTERY_LOW))
        await rig.until(lambda: rig.values(str(leak.ieee)).get("leak") == (True, None), what="leak")
        assert rig.values(str(leak.ieee))["battery_low"] == (True, None)


async def test_commands_answered_with_default_response(tmp_path: Path) -> None:
    bulb = everything()
    async with running(tmp_path, devices=[bulb], command_timeout_s=1.0) as rig:
        await rig.pair(bulb)
        actuators = Actuators([rig.adapter])
        assert set(actuators.actions(IEEE)) >= {"on", "off", "toggle", "level", "color_temperature"}
        assert (await actuators.actuate(IEEE, "on"))["result"] == "SUCCESS"
        assert bulb.attributes[(1, zcl.ON_OFF, 0)] is True
        await rig.until(lambda: rig.values(IEEE).get("on") == (True, None), what="on reported back")
        await actuators.actuate(IEEE, "level", {"percent": 50})
        assert bulb.attributes[(1, zcl.LEVEL_CONTROL, 0)] == 127
        await actuators.actuate(IEEE, "color_temperature", {"kelvin": 4000})
        assert bulb.attributes[(1, zcl.COLOR_CONTROL, 7)] == 250
        await rig.until(lambda: rig.values(IEEE).get("color_temperature") == (4000.0, "K"), what="colour temp")
        # the device refuses: the default response's status is the result, and an error for the actuator
        bulb.command_status[(zcl.ON_OFF, 0x00)] = zcl.foundation.Status.UNSUP_CLUSTER_COMMAND
        assert await rig.adapter.command(IEEE, 1, zcl.ON_OFF, "off") == "UNSUP_CLUSTER_COMMAND"
        with pytest.raises(ActuationError, match="UNSUP_CLUSTER_COMMAND"):
            await actuators.actuate(IEEE, "off")
        with pytest.raises(ActuationError, match="percent"):
            await actuators.actuate(IEEE, "level", {"percent": 120})
        with pytest.raises(UnknownDevice):
            await rig.adapter.command("00:00:00:00:00:00:00:99", 1, zcl.ON_OFF, "on")
        bulb.silent = True
        with pytest.raises(CommandTimeout):
            await rig.adapter.command(IEEE, 1, zcl.ON_OFF, "on")


async def test_leave_is_an_event_and_marked_in_the_registry(tmp_path: Path) -> None:
    device = everything()
    async with running(tmp_path, devices=[device]) as rig:
        await rig.pair(device)
        rig.radio.leave(device)
        await rig.until(lambda: "left" in {e.value for e in rig.events}, what="left event")
        await rig.until(lambda: (rig.adapter.registry.get("zigbee", IEEE) or {}).get("status") == "left", what="status")
        assert IEEE not in rig.adapter.devices


async def test_availability_after_silence(tmp_path: Path) -> None:
    now = [1000.0]
    device = everything()
    async with running(tmp_path, devices=[device], expected_interval_s=10, clock=lambda: now[0]) as rig:
        await rig.pair(device)
        now[0] += 11
        await rig.until(lambda: rig.values(IEEE).get("available") == (False, None), what="unavailable")
        rig.radio.inject(device.report(1, zcl.TEMPERATURE, [0]) if (1, zcl.TEMPERATURE, 0) in device.attributes
                         else device.zone_notification(1, 0))  # fmt: skip
        await rig.until(lambda: rig.values(IEEE).get("available") == (True, None), what="available again")


async def test_emulated_demo_devices_report(tmp_path: Path) -> None:
    async with running(tmp_path, emulate_devices=True, emulate_interval_s=0.05) as rig:
        await rig.until(lambda: len({r.sensor for r in rig.readings}) >= 6, timeout=10, what="six devices report")
        metrics = {r.metric for r in rig.readings}
        assert {"temperature", "humidity", "contact", "motion", "leak", "voltage", "energy", "illuminance"} <= metrics
        names = {d["name"] for d in rig.adapter.registry.devices("zigbee")}
        assert "Emulated climate" in names
