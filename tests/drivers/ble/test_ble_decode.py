"""The AD-structure parser, the replay state, the security checks and emulator round trips of every format."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble import bthome, emulator
from drivers.ble.advertisement import Advertisement, normalise_mac, parse_ad_structures, uuid16
from drivers.ble.decode import ReplayState, decode
from drivers.ble.errors import BadMic, MalformedAdvertisement, NotEncrypted, ReplayedCounter
from drivers.ble.result import BleResult

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MAC = "54:48:E6:8F:80:A5"
SPEC_ENCRYPTED = bytes.fromhex("0201061216d2fc41e445f3c9962b332211006c7c4519")


def _decode(raw: bytes, **kw: object) -> BleResult:
    result = decode(parse_ad_structures(raw, address=MAC, rssi=-58), **kw)  # type: ignore[arg-type]
    assert result is not None
    return result


def _values(result: BleResult) -> dict[str, object]:
    return {m.metric: m.value for m in result.measurements}


# --- AD structures ---------------------------------------------------------------------------------


def test_parse_ad_structures_reads_every_type() -> None:
    raw = (
        emulator.FLAGS
        + emulator.ad_structure(0x03, b"\x0f\x18\xaa\xfe")
        + emulator.ad_structure(0x05, b"\x78\x56\x34\x12")
        + emulator.ad_structure(0x08, b"Short")
        + emulator.ad_structure(0x09, b"Complete name")
        + emulator.ad_structure(0x0A, b"\xf4")
        + emulator.ad_structure(0x16, b"\xd2\xfc\x40\x01\x61")
        + emulator.ad_structure(0x20, b"\x78\x56\x34\x12\x01\x02")
        + emulator.ad_structure(0x21, bytes(range(16)) + b"\x09")
        + emulator.ad_structure(0xFF, b"\x99\x04\x05")
    )
    adv = parse_ad_structures(raw, address="54-48-e6-8f-80-a5", rssi=-70)
    assert adv.address == MAC and adv.rssi == -70
    assert adv.local_name == "Complete name"
    assert adv.tx_power == -12
    assert adv.service_uuids == (uuid16(0x180F), uuid16(0xFEAA), "12345678-0000-1000-8000-00805f9b34fb")
    assert adv.service_data == {
        "0000fcd2-0000-1000-8000-00805f9b34fb": b"\x40\x01\x61",
        "12345678-0000-1000-8000-00805f9b34fb": b"\x01\x02",
        "0f0e0d0c-0b0a-0908-0706-050403020100": b"\x09",
    }
    assert adv.manufacturer_data == {0x0499: b"\x05"}


def test_the_shortened_name_serves_when_there_is_no_complete_one() -> None:
    assert parse_ad_structures(emulator.ad_structure(0x08, b"ATC_1234")).local_name == "ATC_1234"


def test_an_advertisement_is_what_bleak_would_hand_over() -> None:
    adv = Advertisement(
        address=MAC,
        rssi=-60,
        local_name=None,
        service_data={uuid16(0xFCD2): bytes.fromhex("4002c40903bf13")},
        manufacturer_data={},
    )
    assert _values(decode(adv) or pytest.fail("not decoded")) == {"temperature": 25.0, "humidity": 50.55}


@pytest.mark.parametrize("text", ["a4:c1:38:12:34:56", "A4-C1-38-12-34-56", "a4c138123456", " A4:C1:38:12:34:56 "])
def test_mac_forms(text: str) -> None:
    assert normalise_mac(text) == "A4:C1:38:12:34:56"


@pytest.mark.parametrize("text", ["a4:c1:38:12:34", "A4:C1:38:12:34:5G", "", "/dev/ttyUSB0"])
def test_bad_macs(text: str) -> None:
    with pytest.raises(MalformedAdvertisement, match="is not a MAC address"):
        normalise_mac(text)


def test_too_long_and_not_bytes() -> None:
    with pytest.raises(MalformedAdvertisement, match="longer than any advertisement"):
        parse_ad_structures(b"\x01\x01" * 900)
    with pytest.raises(MalformedAdvertisement, match="is bytes, not str"):
        parse_ad_structures("0201")  # type: ignore[arg-type]


# --- security ---------------------------------------------------------------------------------------


def test_the_spec_example_nonce_and_ciphertext() -> None:
    """bthome.io/encryption: the nonce, then the service data it lists, byte for byte."""
    counter = (0x00112233).to_bytes(4, "little")
    assert bthome.nonce(MAC, 0x41, counter).hex() == "5448e68f80a5d2fc4133221100"
    data = bthome.encrypt(bytes.fromhex("02ca0903bf13"), key=KEY, address=MAC, counter=1122867)
    assert (b"\xd2\xfc" + data).hex() == "d2fc41e445f3c9962b332211006c7c4519"


def test_a_replayed_counter_is_refused_and_a_higher_one_accepted() -> None:
    state = ReplayState()
    first = _decode(SPEC_ENCRYPTED, key=KEY, state=state)
    assert first.encrypted and first.counter == 1122867 and state.last(MAC) == 1122867
    with pytest.raises(ReplayedCounter) as caught:
        _decode(SPEC_ENCRYPTED, key=KEY, state=state)
    assert caught.value.counter == caught.value.last == 1122867 and caught.value.address == MAC
    older = emulator.bthome_advert([(0x02, 20.0)], key=KEY, address=MAC, counter=1122866)
    with pytest.raises(ReplayedCounter, match="not greater than the last one seen"):
        _decode(older, key=KEY, state=state)
    newer = emulator.bthome_advert([(0x02, 20.0)], key=KEY, address=MAC, counter=1122868)
    assert _decode(newer, key=KEY, state=state).counter == 1122868
    assert state.snapshot() == {MAC: 1122868}


def test_a_forged_advertisement_does_not_move_the_counter() -> None:
    state = ReplayState({MAC: 5})
    forged = emulator.bthome_advert([(0x02, 99.0)], key=bytes(16), address=MAC, counter=2**32 - 1)
    with pytest.raises(BadMic):
        _decode(forged, key=KEY, state=state)
    assert state.last(MAC) == 5
    assert _decode(emulator.bthome_advert([(0x02, 20.0)], key=KEY, address=MAC, counter=6), key=KEY, state=state)


def test_replay_state_is_bounded_and_forgets() -> None:
    state = ReplayState(max_devices=2)
    state.check("AA:AA:AA:AA:AA:01", 1)
    state.check("AA:AA:AA:AA:AA:02", 1)
    state.check("AA:AA:AA:AA:AA:01", 2)  # 01 is now the most recent
    state.check("AA:AA:AA:AA:AA:03", 1)
    assert len(state) == 2 and state.last("AA:AA:AA:AA:AA:02") is None
    state.forget("AA:AA:AA:AA:AA:01")
    state.check("AA:AA:AA:AA:AA:01", 0)  # a reset device, forgotten on purpose
    with pytest.raises(ValueError, match="max_devices"):
        ReplayState(max_devices=0)


def test_a_keyed_device_sending_plain_data_is_refused() -> None:
    plain = emulator.bthome_advert([(0x02, 20.0)])
    with pytest.raises(NotEncrypted):
        _decode(plain, key=KEY)


def test_a_wrong_length_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        _decode(SPEC_ENCRYPTED, key=KEY[:15])


# --- rssi ----------------------------------------------------------------------------------------------


def test_rssi_is_a_beacon_reading_and_optional_for_sensors() -> None:
    beacon = _decode(emulator.ibeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 2))
    assert _values(beacon)["rssi"] == -58 and _values(beacon)["presence"] is True
    sensor = emulator.pvvx(mac=MAC, temperature=20.0, humidity=40.0, battery=9, battery_voltage=2.5, counter=3)
    assert "rssi" not in _values(_decode(sensor))
    assert _values(_decode(sensor, sensor_rssi=True))["rssi"] == -58


# --- emulator round trips ----------------------------------------------------------------------------


TEMPS = st.integers(-4000, 8000).map(lambda n: n / 100)


@settings(max_examples=200, deadline=None)
@given(
    TEMPS,
    st.integers(0, 10000).map(lambda n: n / 100),
    st.integers(0, 100),
    st.integers(0, 2**32 - 1),
    st.booleans(),
    st.text(max_size=20),
)
def test_bthome_round_trip(temp: float, hum: float, battery: int, counter: int, motion: bool, text: str) -> None:
    objects = [(0x01, battery), (0x02, temp), (0x03, hum), (0x21, motion), (0x53, text)]
    plain = _decode(emulator.bthome_advert(objects, packet_id=counter & 0xFF))
    assert plain.packet_id == counter & 0xFF and not plain.encrypted
    want = {"battery": battery, "temperature": temp, "humidity": hum, "motion": motion, "text": text}
    assert _values(plain) == want
    sealed = _decode(emulator.bthome_advert(objects, key=KEY, address=MAC, counter=counter), key=KEY)
    assert sealed.encrypted and sealed.counter == counter and sealed.format == "bthome-encrypted"
    assert _values(sealed) == want


def test_every_bthome_object_id_round_trips_through_the_emulator() -> None:
    samples: dict[str, object] = {"binary": True, "text": "héllo", "raw": "00ff", "button": "double_press"}
    samples |= {"dimmer": "rotate_right 4", "command": "step_down 2", "firmware": "1.2.3", "timestamp": 1700000000}
    for spec in bthome.OBJECTS:
        if spec.kind == "packet_id":
            continue
        if spec.kind == "number":
            value: object = 1 if spec.factor == 1 else round(123 * spec.factor, spec.digits)
        elif spec.kind == "firmware":
            value = "1.2.3" if spec.size == 3 else "1.2.3.4"
        else:
            value = samples[spec.kind]
        result = _decode(emulator.bthome_advert([(spec.object_id, value)]))  # type: ignore[list-item]
        assert [(m.metric, m.unit) for m in result.measurements] == [(spec.metric, spec.unit)], hex(spec.object_id)
        got = result.measurements[0].value
        assert got == value or math.isclose(float(got), float(value)), (hex(spec.object_id), got, value)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-32767, 32767).map(lambda n: n * 0.005),
    st.integers(0, 40000).map(lambda n: n * 0.0025),
    st.integers(50000, 115534),
    st.tuples(*[st.integers(-32767, 32767)] * 3),
    st.integers(1600, 3646).map(lambda mv: mv / 1000),
    st.integers(0, 30).map(lambda n: n * 2 - 40),
    st.integers(0, 254),
    st.integers(0, 65534),
)
def test_ruuvi_round_trip(
    temp: float, hum: float, press: int, accel_mg: tuple[int, int, int], volts: float, tx: int, moves: int, seq: int
) -> None:
    accel = tuple(mg * 9.80665 / 1000 for mg in accel_mg)
    raw = emulator.ruuvi_rawv2(
        mac="CB:B8:33:4C:88:4F",
        temperature=temp,
        humidity=hum,
        pressure=press,
        acceleration=accel,  # type: ignore[arg-type]
        battery_voltage=volts,
        tx_power=tx,
        movement_counter=moves,
        sequence=seq,
    )
    result = _decode(raw)
    assert result.sensor == "CB:B8:33:4C:88:4F" and result.packet_id == seq
    v = _values(result)
    assert math.isclose(float(v["temperature"]), temp, abs_tol=1e-9)  # type: ignore[arg-type]
    assert math.isclose(float(v["humidity"]), hum, abs_tol=1e-9)  # type: ignore[arg-type]
    assert v["pressure"] == press and v["tx_power"] == tx and v["movement_counter"] == moves
    assert math.isclose(float(v["battery_voltage"]), volts)  # type: ignore[arg-type]
    for axis, a in zip("xyz", accel, strict=True):
        assert math.isclose(float(v[f"acceleration_{axis}"]), a, abs_tol=1e-6)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(TEMPS, st.integers(0, 9999).map(lambda n: n / 100), st.integers(0, 100), st.integers(0, 255), st.integers(0, 31))
def test_pvvx_and_atc1441_round_trip(temp: float, hum: float, pct: int, counter: int, flags: int) -> None:
    pv = _decode(
        emulator.pvvx(
            mac=MAC, temperature=temp, humidity=hum, battery=pct, battery_voltage=2.9, counter=counter, flags=flags
        )
    )
    assert pv.format == "pvvx" and pv.sensor == MAC and pv.packet_id == counter
    v = _values(pv)
    assert v["temperature"] == temp and v["humidity"] == hum and v["battery"] == pct
    assert v["reed_switch"] is bool(flags & 1) and v["humidity_trigger"] is bool(flags & 16)
    t1 = round(temp, 1)
    atc = _decode(
        emulator.atc1441(
            mac=MAC, temperature=t1, humidity=round(hum), battery=pct, battery_voltage=2.9, counter=counter
        )
    )
    assert atc.format == "atc1441" and atc.packet_id == counter
    assert _values(atc)["temperature"] == t1 and _values(atc)["humidity"] == round(hum)


@pytest.mark.parametrize(
    "url",
    [
        "https://goo.gl/S6zT6P",
        "http://www.example.org",
        "https://roost.example.com/a",
        "http://x.gov/",
        "https://www.a.info",
    ],
)
def test_eddystone_url_round_trip(url: str) -> None:
    assert _values(_decode(emulator.eddystone_url(url)))["url"] == url


def test_the_fleet_decodes_with_its_keys_and_never_replays() -> None:
    fleet = emulator.BleFleet(seed=3)
    state = ReplayState()
    formats = set()
    for _ in range(6):
        for advert in fleet.adverts():
            adv = parse_ad_structures(advert.raw, address=advert.address, rssi=advert.rssi)
            result = decode(adv, key=fleet.keys.get(advert.address), state=state)
            assert result is not None and result.measurements
            formats.add(result.format)
    assert formats == {"bthome", "bthome-encrypted", "ruuvi-rawv2", "pvvx", "atc1441", "ibeacon", "eddystone-uid"}
