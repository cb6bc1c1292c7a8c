"""Serial decoding benchmark: Roost protocol frames and NMEA sentences decoded per second on one core.

Prints, for each protocol, frames (sentences) decoded per second and CPU µs per frame, measured with
time.process_time over a stream fed in 1 KB chunks as the serial transport delivers it; then the line
rate's ceiling next to it: 115200 baud 8N1 carries 11,520 bytes/s per port, so at the measured wire
size a port delivers at most N frames/s, and eight ports at full line rate cost the gateway M % of a
core. Target: at least 50,000 frames/s on one core (eight ports at full line rate under 5 % of a core).

Roost: ANNOUNCE-less stream of READINGS frames (three readings each, like the climate node's) through
the deframer, the message decoder and the SenML resolver (Readings built). NMEA: GGA, RMC, GSA and VTG
sentences of a 1 Hz receiver through drivers.nmea (line splitting, checksum, fields, Readings built).
Usage: python bench/serial.py [--frames 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.roostserial import messages as m  # noqa: E402
from drivers.roostserial.frame import Deframer, Frame  # noqa: E402
from wire.reading import Reading  # noqa: E402

BAUD = 115200
BYTES_PER_S = BAUD // 10  # 8N1: a start bit, 8 data bits, a stop bit
PORTS = 8
TARGET_FRAMES_S = 50_000
TARGET_SHARE = 0.05
CHUNK = 1024  # what serial_asyncio_fast reads at once


def roost_stream(n: int) -> bytes:
    frames = []
    for i in range(n):
        records = [
            {0: "temperature", 1: "Cel", 2: 21.0 + (i % 100) / 100, -3: -0.5},
            {0: "humidity", 1: "%RH", 2: 40.0 + (i % 50) / 10},
            {0: "pressure", 1: "hPa", 2: 1013.0 + (i % 30) / 10},
        ]
        frames.append(m.encode_message(m.encode_readings(records), i & 0xFF))
    return b"".join(frames)


def bench_roost(n: int) -> tuple[float, float, float]:
    data = roost_stream(n)
    deframer = Deframer()
    now = time.time()
    got = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(data), CHUNK):
        for item in deframer.feed(data[i : i + CHUNK]):
            if type(item) is Frame:
                msg = m.decode_message(item)
                if type(msg) is m.Readings:
                    got += len(m.decode_readings(msg.pack, sensor="node-1", now=now))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert got == 3 * n and not deframer.errors, (got, deframer.errors)
    return n / wall, cpu / n * 1e6, len(data) / n


def nmea_stream(n: int) -> bytes:
    from drivers import nmea_talker as t

    lines: list[str] = []
    start = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)
    lat, lon = 52.52, 13.405
    while len(lines) < n:
        k = len(lines) // 4
        when = start + timedelta(seconds=k)
        pos = ",".join((*t.lat_field(lat), *t.lon_field(lon)))
        lines.append(t.frame(f"GPGGA,{when:%H%M%S}.00,{pos},1,09,0.9,34.2,M,46.9,M,,"))
        lines.append(t.frame(f"GPRMC,{when:%H%M%S}.00,A,{pos},27.02,72.50,{when:%d%m%y},,,A"))
        lines.append(t.frame("GPGSA,A,3,02,05,12,13,15,18,20,25,29,,,,1.6,0.9,1.3"))
        lines.append(t.frame("GPVTG,72.50,T,,M,27.019,N,50.040,K,A"))
        lat += 0.00001
    return ("\r\n".join(lines[:n]) + "\r\n").encode()


def bench_nmea(n: int) -> tuple[float, float, float]:
    from drivers import nmea

    data = nmea_stream(n)
    stream = nmea.NmeaStream()
    now = time.time()
    got = 0
    buf = b""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(data), CHUNK):
        *lines, buf = (buf + data[i : i + CHUNK]).split(b"\n")
        for raw in lines:
            result = stream.decode(raw.decode("ascii"))
            got += len([Reading("gps", x.metric, x.value, now, x.unit) for x in result.measurements])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert got > n
    return n / wall, cpu / n * 1e6, len(data) / n


def report(name: str, rate: float, us: float, size: float) -> None:
    per_port = BYTES_PER_S / size
    share = PORTS * per_port * us / 1e6
    ok = "meets" if rate >= TARGET_FRAMES_S and share < TARGET_SHARE else "MISSES"
    print(f"{name}")
    print(f"  decoded:        {rate:10,.0f} frames/s on one core, {us:6.2f} µs CPU per frame")
    print(f"  wire size:      {size:10.1f} bytes per frame")
    print(f"  line ceiling:   {per_port:10,.0f} frames/s per port at {BAUD} baud ({BYTES_PER_S:,} B/s), "
          f"{PORTS * per_port:,.0f} frames/s on {PORTS} ports")  # fmt: skip
    print(f"  {PORTS} full ports:   {share * 100:10.2f} % of a core")
    print(f"  target:         {TARGET_FRAMES_S:10,} frames/s and under {TARGET_SHARE * 100:.0f} % of a core: {ok}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100_000)
    args = p.parse_args()
    bench_roost(1000)  # warm up
    report("Roost serial protocol v1 (READINGS, 3 readings each)", *bench_roost(args.frames))
    report("NMEA 0183 (GGA, RMC, GSA, VTG)", *bench_nmea(args.frames))


if __name__ == "__main__":
    main()
