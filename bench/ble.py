"""BLE benchmark: advertisements decoded per second on one core, and the memory the BLE code adds.

Section 1, decoders: for each format, advertisements built by drivers.ble.emulator (distinct bytes,
encrypted BTHome with increasing counters through a ReplayState) go through parse_ad_structures and
decode, as the adapter's path does, timed with time.process_time. Printed next to the targets: at
least 20,000 advertisements/s on one core; a busy site hears about 1,000 a second, so the column
"busy site" is the share of one core that 1,000/s of that format costs.

Section 2, memory: the RSS that importing Roost's decoders and decoding one advertisement of every
format (cryptography included, for encrypted BTHome) adds to a fresh Python process; and, when an
interpreter that has them is given with ``--ha-python`` (a venv with bthome-ble, xiaomi-ble and
ruuvitag-ble), what Home Assistant's parser libraries add and how fast they decode, for comparison.
Section 3, adapter: in a fresh process with the base gateway imported (gateway.daemon, a buffer and
a hub open), the RSS that importing bleak and the BLE adapter adds, and what the adapter adds while
it runs six emulated devices (drivers.ble.BleFleet, replayed through bleak's BleakScanner with
ReplayScannerBackend) into a real DurableBuffer; target: under 15 MB. Then the same path flooded
(a replay without timing): advertisements/s through the whole adapter into the buffer.

Usage: python bench/ble.py [--adverts 20000] [--ha-python /path/to/venv/bin/python] [--section adapter]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.ble import emulator as emu  # noqa: E402
from drivers.ble.advertisement import parse_ad_structures  # noqa: E402
from drivers.ble.decode import ReplayState, decode  # noqa: E402

TARGET_PER_S = 20_000
BUSY_SITE_PER_S = 1_000
BUDGET_MB = 15.0
MAC = "54:48:E6:8F:80:A5"
KEY = emu.DEMO_BIND_KEY

Advert = tuple[bytes, str, int]  # raw, address, rssi


def _adverts(fmt: str, n: int) -> list[Advert]:
    """``n`` distinct advertisements of one format."""
    out: list[Advert] = []
    for i in range(n):
        t = round(15 + (i % 1000) / 100, 2)
        h = round(30 + (i % 500) / 20, 2)
        if fmt == "bthome":
            raw = emu.bthome_advert([(0x01, 90), (0x02, t), (0x03, h)], packet_id=i & 0xFF)
        elif fmt == "bthome-encrypted":
            raw = emu.bthome_advert([(0x02, t), (0x03, h)], key=KEY, address=MAC, counter=i + 1)
        elif fmt == "ruuvi-rawv2":
            raw = emu.ruuvi_rawv2(mac="CB:B8:33:4C:88:4F", temperature=t, humidity=h, sequence=i % 65535)
        elif fmt == "pvvx":
            raw = emu.pvvx(mac=MAC, temperature=t, humidity=h, battery=80, battery_voltage=2.9, counter=i)
        elif fmt == "atc1441":
            raw = emu.atc1441(mac=MAC, temperature=round(t, 1), humidity=40, battery=80, battery_voltage=2.9, counter=i)
        elif fmt == "ibeacon":
            raw = emu.ibeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, i % 65536)
        elif fmt == "eddystone-uid":
            raw = emu.eddystone_uid("8b0ca750095477cb3e77", f"{i:012x}")
        elif fmt == "eddystone-tlm":
            raw = emu.eddystone_tlm(battery_voltage=3.0, temperature=t, advertisement_count=i, uptime=i / 10)
        else:  # a phone nobody paired: what most of a busy site's traffic is
            raw = emu.FLAGS + emu.ad_structure(0xFF, b"\x4c\x00\x10\x05\x03\x1c" + i.to_bytes(4, "little"))
        out.append((raw, MAC, -60 - i % 30))
    return out


FORMATS = (
    "bthome",
    "bthome-encrypted",
    "ruuvi-rawv2",
    "pvvx",
    "atc1441",
    "ibeacon",
    "eddystone-uid",
    "eddystone-tlm",
    "foreign",
)


def bench_format(fmt: str, n: int) -> float:
    """CPU seconds per advertisement for parse_ad_structures + decode of one format."""
    adverts = _adverts(fmt, n)
    key = KEY if fmt == "bthome-encrypted" else None
    state = ReplayState()
    decoded = 0
    c0 = time.process_time()
    for raw, address, rssi in adverts:
        if decode(parse_ad_structures(raw, address=address, rssi=rssi), key=key, state=state) is not None:
            decoded += 1
    cpu = time.process_time() - c0
    assert decoded == (0 if fmt == "foreign" else n), (fmt, decoded)
    return cpu / n


def section_decoders(n: int) -> None:
    """Section 1: advertisements per second per format on one core."""
    print(f"BLE decoders: parse_ad_structures + decode, {n:,} distinct advertisements per format, one core")
    print(f"target: at least {TARGET_PER_S:,}/s; a busy site hears about {BUSY_SITE_PER_S:,}/s\n")
    print(f"{'format':<18} {'adverts/s':>11} {'µs each':>8} {'busy site':>10}  target")
    worst = float("inf")
    for fmt in FORMATS:
        per = bench_format(fmt, n)
        rate = 1 / per
        worst = min(worst, rate)
        share = BUSY_SITE_PER_S * per * 100
        ok = "ok" if rate >= TARGET_PER_S else "BELOW"
        print(f"{fmt:<18} {rate:>11,.0f} {per * 1e6:>8.1f} {share:>9.2f}%  {ok}")
    print(f"\nslowest format: {worst:,.0f}/s ({worst / TARGET_PER_S:.1f}x the target)")


_RSS_PROBE = """
import json, sys, time
def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
base = rss()
t0 = time.perf_counter()
exec(sys.argv[1])
took = time.perf_counter() - t0
print(json.dumps({'base': base, 'after': rss(), 'seconds': took}))
"""

_OURS_IMPORT = "import drivers.ble.decode, drivers.ble.advertisement"


def _ours_all() -> str:
    """Code that imports Roost's decoders and decodes one advertisement of every format (built here, not there)."""
    fleet = emu.BleFleet(seed=1)
    adverts = [(a.raw.hex(), a.address, a.rssi) for a in fleet.adverts() + emu.BleFleet(seed=2).adverts()[-1:]]
    return f"""{_OURS_IMPORT}
from drivers.ble.decode import decode, ReplayState
from drivers.ble.advertisement import parse_ad_structures as p
st = ReplayState()
keys = {{{fleet.encrypted_mac!r}: bytes.fromhex({fleet.bind_key.hex()!r})}}
for raw, mac, rssi in {adverts!r}:
    assert decode(p(bytes.fromhex(raw), address=mac, rssi=rssi), key=keys.get(mac), state=st) is not None
"""


_CRYPTO = "import cryptography.hazmat.primitives.ciphers.aead"
_GATEWAY = "import gateway.daemon"
_GW_CRYPTO = f"{_GATEWAY}; {_CRYPTO}; import cryptography.hazmat.primitives.asymmetric.ec"


def rss_added(code: str, python: str = sys.executable, before: str = "") -> tuple[float, float]:
    """MB of RSS that running ``code`` adds to a fresh process (after ``before``), and the seconds it took."""
    probe = _RSS_PROBE.replace("base = rss()", f"{before}\nbase = rss()")
    out = subprocess.run(
        [python, "-c", probe, code], capture_output=True, text=True, timeout=120, cwd=ROOT, check=True
    ).stdout
    doc = json.loads(out)
    return doc["after"] - doc["base"], doc["seconds"]


def _row(label: str, mb: float, seconds: float) -> None:
    print(f"{label:<62} {mb:>6.1f} MB  {seconds * 1000:>5.0f} ms")


_HA_THROUGHPUT = """
import time
from bleak.backends.device import BLEDevice
from habluetooth import BluetoothServiceInfoBleak
from bthome_ble import BTHomeBluetoothDeviceData
from ruuvitag_ble import RuuvitagBluetoothDeviceData
def info(sd, md, mac):
    return BluetoothServiceInfoBleak("x", mac, -60, md, sd, [], "local", BLEDevice(mac, "x", None), None, False,
                                     time.monotonic(), None)
cases = {
    "bthome": (BTHomeBluetoothDeviceData, {},
               info({"0000fcd2-0000-1000-8000-00805f9b34fb": bytes.fromhex("4002c40903bf13")}, {}, MAC)),
    "bthome-encrypted": (BTHomeBluetoothDeviceData, {"bindkey": bytes.fromhex(KEY)},
               info({"0000fcd2-0000-1000-8000-00805f9b34fb": bytes.fromhex("41e445f3c9962b33221100" "6c7c4519")},
                    {}, MAC)),
    "ruuvi-rawv2": (RuuvitagBluetoothDeviceData, {},
               info({}, {0x0499: bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")}, MAC)),
}
for name, (cls, kw, si) in cases.items():
    parser = cls(**kw)
    assert parser.update(si).entity_values
    n = 5000
    c0 = time.process_time()
    for _ in range(n):
        parser.update(si)
    per = (time.process_time() - c0) / n
    print(f"{name} {1 / per:.0f} {per * 1e6:.1f}")
"""


def section_memory(ha_python: str | None) -> None:
    """Section 2: the RSS Roost's decoders (and, if given, Home Assistant's parsers) add to a fresh process."""
    print("\nBLE decoders' memory: RSS added to a fresh Python process (Linux VmRSS)")
    _row("import drivers.ble (decode, advertisement) in a bare interpreter", *rss_added(_OURS_IMPORT))
    _row("... and decode every format once (cryptography loaded)", *rss_added(_ours_all()))
    print("over the base gateway (after `import gateway.daemon`):")
    _row("  import drivers.ble and decode every format once", *rss_added(_ours_all(), before=_GATEWAY))
    _row("  the same when cryptography is loaded (the gateway's key pair)", *rss_added(_ours_all(), before=_GW_CRYPTO))
    _row("  cryptography's AES-CCM alone", *rss_added(_CRYPTO, before=_GATEWAY))
    print(f"budget for the whole BLE adapter: {BUDGET_MB:.0f} MB over the base gateway")
    if ha_python is None:
        print("\nHome Assistant's parsers: not measured (pass --ha-python with a venv that has them)")
        return
    print(f"\nHome Assistant's parser libraries, for comparison ({ha_python})")
    for label, code in (
        ("import bleak (the adapter needs it anyway)", "import bleak"),
        ("import bthome_ble", "import bthome_ble"),
        ("import ruuvitag_ble", "import ruuvitag_ble"),
        ("import xiaomi_ble", "import xiaomi_ble"),
        ("import the three", "import bthome_ble, ruuvitag_ble, xiaomi_ble"),
        ("import the three, after bleak (their cost to the adapter)", "import bthome_ble, ruuvitag_ble, xiaomi_ble"),
        ("import habluetooth (scanner management)", "import habluetooth"),
    ):
        before = "import bleak" if "after bleak" in label else ""
        _row(label, *rss_added(code, ha_python, before=before))
    script = f"MAC = {MAC!r}\nKEY = {KEY.hex()!r}\n" + _HA_THROUGHPUT
    out = subprocess.run([ha_python, "-c", script], capture_output=True, text=True, timeout=300, check=True).stdout
    print(f"\n{'HA parser, format':<18} {'adverts/s':>11} {'µs each':>8}  (update() on a BluetoothServiceInfoBleak)")
    for line in out.split("\n"):
        if line.strip():
            name, rate, us = line.split()
            print(f"{name:<18} {float(rate):>11,.0f} {float(us):>8.1f}")


# --- Section 3: the adapter (bleak, the scanner, decode, pairing, the hub, a real buffer) ----------------

_ADAPTER_CHILD = r"""
import asyncio, gc, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
rounds, rate = int(sys.argv[2]), float(sys.argv[3])

def rss():
    gc.collect()
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024

import gateway.daemon  # the base gateway: config, buffer, hub, uplink, identity (cryptography), reactivex
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection
from gateway.hub import Hub
from gateway.pairing import Pairing
from drivers.ble.emulator import BleFleet
from drivers.ble.advertisement import parse_ad_structures

def records(n_rounds, step):
    from gateway.adapters.ble.scanner import RecordedAdvert
    fleet, out = BleFleet(seed=7), []
    for r in range(n_rounds):
        for i, a in enumerate(fleet.adverts()):
            advert = parse_ad_structures(a.raw, address=a.address, rssi=a.rssi)
            out.append(RecordedAdvert(r * step + i * step / 6, advert))
    return out, fleet

async def main():
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with DurableBuffer.from_config(Path(tmp) / "b.sqlite", BufferSection()) as buffer:
            hub = Hub(buffer)
            await hub.publish([])
            out["base"] = rss()
            out["crypto_at_base"] = "cryptography.hazmat.primitives.ciphers.aead" in sys.modules
            import bleak
            out["bleak"] = rss()
            # What a Pi loads on top when the scanner starts without a replay backend (dbus-fast).
            import bleak.backends.bluezdbus.scanner, bleak.backends.bluezdbus.client
            out["bluez"] = rss()
            from gateway.adapters.ble.adapter import BleAdapter
            from gateway.adapters.ble.config import BleDeviceSection, BleSection
            from gateway.adapters.ble.scanner import ReplayScannerBackend, ReplaySource
            out["adapter_import"] = rss()

            async def run(recs, fleet, speed, until, queue_size=100_000):
                keys = fleet.keys
                devices = tuple(BleDeviceSection(address=m, bind_key=keys.get(m, b"").hex()) for m in fleet.addresses)
                cfg = BleSection(enabled=True, accept="any", devices=devices, queue_size=queue_size, watchdog_s=0)
                source = ReplaySource(recs, speed=speed)
                adapter = BleAdapter(cfg, hub, Pairing([]), scanner_backend=ReplayScannerBackend,
                                     scanner_kwargs={"replay": source})
                task = asyncio.create_task(adapter.run())
                t0, c0 = time.perf_counter(), time.process_time()
                deadline = t0 + until
                while time.perf_counter() < deadline:
                    if source.finished.is_set() and adapter._queue.empty():
                        break
                    await asyncio.sleep(0.005)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                while await buffer.take(100_000) is not None:
                    pass
                return adapter, wall, cpu

            # 1) a site in real time: six devices, one advertisement each every 1/rate s, for rounds/rate s
            recs, fleet = records(rounds, 1 / rate)
            adapter, wall, cpu = await run(recs, fleet, 1.0, rounds / rate + 5)
            out["running"] = rss()
            out["site"] = {"adverts": adapter.adverts, "readings": adapter.accepted, "wall": wall, "cpu": cpu,
                           "rejected": dict(adapter.rejected), "foreign": adapter.foreign}
            # 2) as fast as the path goes: replay without timing into the buffer
            recs, fleet = records(5000, 0.0)
            adapter, wall, cpu = await run(recs, fleet, 0.0, 120)
            out["flood"] = {"adverts": adapter.adverts, "readings": adapter.accepted, "wall": wall, "cpu": cpu,
                            "rejected": dict(adapter.rejected), "duplicates": adapter.duplicates}
            del recs, adapter  # the harness's 30,000 pre-built advertisements are not the adapter's
            out["after_flood"] = rss()
    print(json.dumps(out))

asyncio.run(main())
"""


def section_adapter(rounds: int, rate: float) -> None:
    """Section 3: the RSS the BLE adapter adds to the gateway process, and advertisements/s through it."""
    out = subprocess.run(
        [sys.executable, "-c", _ADAPTER_CHILD, str(ROOT), str(rounds), str(rate)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
    ).stdout
    doc = json.loads(out)
    base = doc["base"]
    print(
        "\nBLE adapter: RSS added to a fresh gateway process (base: gateway.daemon imported, a buffer and a hub open)"
    )
    print(f"{'base gateway':<58} {base:>7.1f} MB")
    print(f"{'+ import bleak':<58} {doc['bleak'] - base:>+7.1f} MB")
    print(f"{'+ bleak BlueZ backend (dbus-fast), as on a Pi':<58} {doc['bluez'] - base:>+7.1f} MB")
    print(f"{'+ import the BLE adapter (scanner, GATT, decoders)':<58} {doc['adapter_import'] - base:>+7.1f} MB")
    site = doc["site"]
    label = f"+ adapter running: 6 replayed devices, {site['adverts']} adverts in {site['wall']:.0f} s"
    added = doc["running"] - base
    print(f"{label:<58} {added:>+7.1f} MB  (budget {BUDGET_MB:.0f} MB: {'ok' if added < BUDGET_MB else 'OVER'})")
    print(
        f"{'+ after the flood below (its 30,000 test adverts freed)':<58} {doc['after_flood'] - base:>+7.1f} MB"
        "  (queue_size 100,000 for it; the default 1,024 drops instead)"
    )
    print(f"  cryptography's AES-CCM already loaded by the base gateway: {'yes' if doc['crypto_at_base'] else 'no'}")
    print(
        f"  the site run: {site['readings']} readings, CPU {site['cpu'] / site['wall'] * 100:.1f} % of a core, "
        f"rejected {site['rejected'] or 'none'}"
    )
    flood = doc["flood"]
    print(
        f"\nBLE adapter throughput: {flood['adverts']:,} replayed advertisements (BleFleet: 6 formats, 1 encrypted), "
        "no timing,\nthrough BleakScanner's callback, decode, pairing and de-duplication into a real DurableBuffer"
    )
    print(
        f"  {flood['adverts'] / flood['wall']:,.0f} adverts/s, {flood['readings'] / flood['wall']:,.0f} readings/s "
        f"(wall {flood['wall']:.2f} s, CPU {flood['cpu']:.2f} s; rejected {flood['rejected'] or 'none'}, "
        f"duplicates {flood['duplicates']})"
    )
    print(
        f"  a busy site hears about {BUSY_SITE_PER_S:,}/s: "
        f"{BUSY_SITE_PER_S / (flood['adverts'] / flood['cpu']) * 100:.1f} % of a core at that rate"
    )


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "decoders": lambda a: section_decoders(a.adverts),
    "memory": lambda a: section_memory(a.ha_python),
    "adapter": lambda a: section_adapter(a.rounds, a.rate),
}


def main() -> None:
    """Run the sections asked for (all by default)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adverts", type=int, default=20_000, help="advertisements per format (default 20,000)")
    p.add_argument("--ha-python", default=None, help="a Python that has bthome-ble, xiaomi-ble and ruuvitag-ble")
    p.add_argument("--rounds", type=int, default=50, help="adapter section: fleet rounds replayed in real time")
    p.add_argument("--rate", type=float, default=10.0, help="adapter section: fleet rounds per second (default 10)")
    p.add_argument("--section", choices=sorted(SECTIONS), action="append", help="run only this section (repeatable)")
    args = p.parse_args()
    for name in args.section or list(SECTIONS):
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
