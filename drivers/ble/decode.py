"""One entry point for every BLE format Roost decodes: :func:`decode` turns an Advertisement into a BleResult.

Pure: no radio, no clock, no asyncio. The adapter hands in what bleak reported (or
:func:`~drivers.ble.advertisement.parse_ad_structures` built from raw bytes), the device's bind key
when it has one, and a :class:`ReplayState` that remembers the last encryption counter per MAC.
The answer is a result, None (no decoder recognises the advertisement: a phone, a TV, a format
Roost does not read), or a :class:`~drivers.ble.errors.BleDecodeError` (malformed data, a format
version Roost does not decode, or a failed security check); never another exception.

Decoders are found by service-data UUID, then by manufacturer company id:

============================  =========================  ==========================================
service data / company        format(s)                  module
============================  =========================  ==========================================
UUID 0xFCD2                   bthome, bthome-encrypted   :mod:`drivers.ble.bthome`
UUID 0x181A                   pvvx, atc1441              :mod:`drivers.ble.atc`
UUID 0xFEAA                   eddystone-uid/-url/-tlm    :mod:`drivers.ble.beacons`
company 0x0499 (Ruuvi)        ruuvi-rawv2                :mod:`drivers.ble.ruuvi`
company 0x004C (Apple)        ibeacon                    :mod:`drivers.ble.beacons`
============================  =========================  ==========================================

Why Roost's own decoders and not Home Assistant's parser libraries (bthome-ble 3.25.0, xiaomi-ble
1.21.2, ruuvitag-ble 0.4.0), measured by ``bench/ble.py`` in fresh Python 3.11 processes on the
2-core development machine: importing bthome-ble adds 27.6 MB of RSS, ruuvitag-ble 27.6 MB,
xiaomi-ble 41.7 MB, the three together 42.2 MB, and still 31.2 MB after bleak (11.0 MB, which the
adapter needs anyway), because each pulls in habluetooth, bleak-retry-connector,
bluetooth-adapters, aiohttp, pycryptodomex and orjson. The whole BLE adapter's budget is 15 MB
over the base gateway, bleak included: they do not fit, by a factor of two before the adapter
does anything. They are fast enough (bthome-ble 37,000 plain and 28,000 encrypted adverts/s,
ruuvitag-ble 25,000/s on one core) but Roost's decoders are three to five times faster (81,000 to
170,000/s with the AD-structure parsing), and xiaomi-ble does not read the pvvx or atc1441 formats
at all. Roost's decoders add 2.0 MB over a gateway that has loaded cryptography for its key pair
(7.7 MB when it has not: AES-CCM's import is 6.2 MB of that, made only when an encrypted
advertisement arrives).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping

from drivers.ble import atc, beacons, bthome, ruuvi
from drivers.ble.advertisement import Advertisement, parse_ad_structures
from drivers.ble.errors import (
    AddressRequired,
    BadMic,
    BindKeyRequired,
    BleDecodeError,
    MalformedAdvertisement,
    NotEncrypted,
    ReplayedCounter,
    SecurityError,
    UnsupportedFormat,
)
from drivers.ble.result import BleResult
from drivers.measurement import Measurement

__all__ = [
    "FORMATS",
    "AddressRequired",
    "Advertisement",
    "BadMic",
    "BindKeyRequired",
    "BleDecodeError",
    "BleResult",
    "MalformedAdvertisement",
    "NotEncrypted",
    "ReplayState",
    "ReplayedCounter",
    "SecurityError",
    "UnsupportedFormat",
    "decode",
    "parse_ad_structures",
]

FORMATS = (
    bthome.FORMAT,
    bthome.FORMAT_ENCRYPTED,
    ruuvi.FORMAT,
    atc.FORMAT_PVVX,
    atc.FORMAT_ATC1441,
    beacons.FORMAT_IBEACON,
    beacons.FORMAT_UID,
    beacons.FORMAT_URL,
    beacons.FORMAT_TLM,
)
BEACON_FORMATS = frozenset((beacons.FORMAT_IBEACON, beacons.FORMAT_UID, beacons.FORMAT_URL, beacons.FORMAT_TLM))


class ReplayState:
    """The last encryption counter seen per MAC, for up to ``max_devices`` MACs (least recently seen dropped).

    A counter must be greater than the last one accepted from the same MAC; only advertisements
    whose MIC verified update it, so a forged one cannot move it. Start it from what the adapter
    saved (``initial``) so a recording cannot be replayed across a gateway restart. A device whose
    counter restarts (battery change, reflash) is refused until its entry is :meth:`forget`-ten.
    """

    def __init__(self, initial: Mapping[str, int] | None = None, *, max_devices: int = 1024) -> None:
        if max_devices < 1:
            raise ValueError("max_devices must be at least 1")
        self.max_devices = max_devices
        self._last: OrderedDict[str, int] = OrderedDict()
        for address, counter in (initial or {}).items():
            self._store(address, counter)

    def _store(self, address: str, counter: int) -> None:
        self._last[address] = counter
        self._last.move_to_end(address)
        while len(self._last) > self.max_devices:
            self._last.popitem(last=False)

    def last(self, address: str) -> int | None:
        """The last accepted counter of ``address``, or None."""
        return self._last.get(address)

    def check(self, address: str, counter: int, *, format: str | None = None) -> None:
        """Accept ``counter`` for ``address`` if it is greater than the last one, else raise ReplayedCounter."""
        last = self._last.get(address)
        if last is not None and counter <= last:
            raise ReplayedCounter(
                f"encryption counter {counter} is not greater than the last one seen from {address} ({last}): "
                "a replayed advertisement, or the device restarted its counter",
                address=address,
                counter=counter,
                last=last,
                format=format,
            )
        self._store(address, counter)

    def forget(self, address: str) -> None:
        """Drop what is known of ``address`` (after a device was reset or re-paired)."""
        self._last.pop(address, None)

    def snapshot(self) -> dict[str, int]:
        """The counters to save, oldest first."""
        return dict(self._last)

    def __len__(self) -> int:
        return len(self._last)


ServiceDecoder = Callable[[Advertisement, bytes, "bytes | None"], BleResult]
ManufacturerDecoder = Callable[[Advertisement, bytes], "BleResult | None"]


def _bthome(adv: Advertisement, data: bytes, key: bytes | None) -> BleResult:
    return bthome.decode_bthome(adv, data, key=key)


def _atc(adv: Advertisement, data: bytes, _key: bytes | None) -> BleResult:
    return atc.decode_env_sensing(adv, data)


def _eddystone(adv: Advertisement, data: bytes, _key: bytes | None) -> BleResult:
    return beacons.decode_eddystone(adv, data)


SERVICE_DECODERS: dict[str, ServiceDecoder] = {
    bthome.UUID: _bthome,
    atc.UUID: _atc,
    beacons.EDDYSTONE_UUID: _eddystone,
}
MANUFACTURER_DECODERS: dict[int, ManufacturerDecoder] = {
    ruuvi.COMPANY_ID: ruuvi.decode_ruuvi,
    beacons.APPLE: beacons.decode_ibeacon,
}


def _decode(adv: Advertisement, key: bytes | None) -> BleResult | None:
    if adv.service_data:
        for uuid, data in adv.service_data.items():
            service = SERVICE_DECODERS.get(uuid)
            if service is not None:
                return service(adv, data, key)
    if adv.manufacturer_data:
        for company, data in adv.manufacturer_data.items():
            maker = MANUFACTURER_DECODERS.get(company)
            if maker is not None:
                found = maker(adv, data)
                if found is not None:
                    return found
    return None


def decode(
    adv: Advertisement,
    *,
    key: bytes | None = None,
    state: ReplayState | None = None,
    sensor_rssi: bool = False,
) -> BleResult | None:
    """Decode ``adv``: a BleResult, None when no decoder recognises it, or a BleDecodeError.

    ``key`` is the device's 16-byte bind key (BTHome): given, the advertisement must be encrypted
    (a plain one raises NotEncrypted). ``state`` checks and updates the encryption counter per MAC
    (ReplayedCounter when it did not increase); without it no replay check is made. Beacons always
    carry an ``rssi`` measurement when the radio reported one; sensors only with ``sensor_rssi``.
    """
    try:
        result = _decode(adv, key)
    except BleDecodeError:
        raise
    except (ValueError, IndexError, TypeError, OverflowError) as exc:  # a decoder bug must not kill the receiver
        raise MalformedAdvertisement(f"cannot decode: {exc}", address=adv.address) from exc
    if result is None:
        return None
    if result.counter is not None and state is not None:
        state.check(result.sensor, result.counter, format=result.format)
    if sensor_rssi and adv.rssi is not None and result.format not in BEACON_FORMATS:
        result = BleResult(
            result.format,
            result.sensor,
            [*result.measurements, Measurement("rssi", adv.rssi, "dBm")],
            result.packet_id,
            result.encrypted,
            result.counter,
        )
    return result
