"""BLE fuzzing: whatever the bytes, parse_ad_structures and decode answer a result, None or a BleDecodeError.

And never the decode() safety net (a MalformedAdvertisement wrapping another exception): that
would be a decoder bug the net hid.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble import emulator
from drivers.ble.advertisement import parse_ad_structures
from drivers.ble.decode import ReplayState, decode
from drivers.ble.errors import BleDecodeError
from drivers.ble.result import BleResult
from wire.names import check_metric, check_sensor

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MAC = "54:48:E6:8F:80:A5"
VALID = [
    bytes.fromhex("0201060B094449592D73656E736F720A16D2FC4002C40903BF13"),
    bytes.fromhex("0201061216d2fc41e445f3c9962b332211006c7c4519"),
    emulator.bthome_advert(
        [(0x02, 21.5), (0x03, 40.0), (0x53, "hi"), (0x3A, "press"), (0x3B, "step_up 5")], packet_id=7
    ),
    emulator.ruuvi_rawv2(mac="CB:B8:33:4C:88:4F"),
    emulator.pvvx(mac=MAC, temperature=21.0, humidity=40.0, battery=90, battery_voltage=3.0, counter=1),
    emulator.atc1441(mac=MAC, temperature=21.0, humidity=40, battery=90, battery_voltage=3.0, counter=1),
    emulator.ibeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 2),
    emulator.eddystone_uid("8b0ca750095477cb3e77", "000000000001"),
    emulator.eddystone_url("https://www.example.com/x"),
    emulator.eddystone_tlm(battery_voltage=3.0, temperature=21.5, advertisement_count=10, uptime=12.3),
]


def _decodes_or_refuses(raw: bytes, *, key: bytes | None = None, state: ReplayState | None = None) -> None:
    try:
        adv = parse_ad_structures(raw, address=MAC, rssi=-60)
        result = decode(adv, key=key, state=state, sensor_rssi=True)
    except BleDecodeError as exc:
        assert str(exc)
        assert not exc.problem.startswith("cannot decode:"), exc.__cause__
        return
    if result is None:
        return
    assert isinstance(result, BleResult)
    if result.sensor:
        check_sensor(result.sensor)
    for m in result.measurements:
        check_metric(m.metric)
        assert isinstance(m.value, bool | int | float | str)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes(raw: bytes) -> None:
    _decodes_or_refuses(raw)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from([0x16, 0xFF, 0x03, 0x07, 0x09, 0x0A, 0x20, 0x21]),
    st.sampled_from([b"\xd2\xfc", b"\x1a\x18", b"\xaa\xfe", b"\x99\x04", b"\x4c\x00", b""]),
    st.binary(max_size=40),
    st.booleans(),
)
def test_random_payloads_behind_known_ids(kind: int, prefix: bytes, body: bytes, keyed: bool) -> None:
    data = prefix + body
    _decodes_or_refuses(emulator.FLAGS + bytes((len(data) + 1, kind)) + data, key=KEY if keyed else None)


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(
        st.tuples(st.integers(0, 80), st.sampled_from(["del", "ins", "sub", "flip"]), st.integers(0, 255)), max_size=4
    ),
    st.booleans(),
)
def test_mutated_valid_adverts(raw: bytes, edits: list[tuple[int, str, int]], keyed: bool) -> None:
    data = bytearray(raw)
    for pos, op, byte in edits:
        i = pos % (len(data) + 1)
        if op == "ins":
            data.insert(i, byte)
        elif i < len(data):
            if op == "del":
                del data[i]
            elif op == "sub":
                data[i] = byte
            else:
                data[i] ^= 1 << (byte % 8)
    _decodes_or_refuses(bytes(data), key=KEY if keyed else None, state=ReplayState())


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_encrypted_bthome_with_random_plaintext(plain: bytes, counter: int) -> None:
    """A valid MIC over arbitrary plaintext: the object parser meets whatever a keyed attacker could send."""
    from drivers.ble import bthome

    data = bthome.encrypt(plain, key=KEY, address=MAC, counter=counter)
    raw = emulator.advertisement(service_data={0xFCD2: data})
    _decodes_or_refuses(raw, key=KEY)
