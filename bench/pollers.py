"""What the I2C/SPI poller costs the gateway: RSS it adds, and CPU per chip read.

Runs in a fresh child process: first the parts every gateway has (asyncio, the hub, the durable
buffer, reactivex), RSS measured; then the chip adapter with a BME280, an SHT3x and an ADS1115 on
I2C and an MCP3008 (4 inputs) on SPI, polled every 50 ms for a few seconds through the real
drivers into a real buffer, RSS measured again. The chips are the register-level emulators (this
machine has no I2C bus), so the figure includes the emulators' code, which a Pi with real chips
does not load: it is an upper bound. Ceiling (issue 4): the poller adds under 2 MB of RSS.

Usage: python bench/pollers.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CEILING_MB = 2.0

CHILD = r"""
import asyncio, gc, json, sys, tempfile, time
from pathlib import Path
import psutil
sys.path.insert(0, sys.argv[1])
seconds = float(sys.argv[2])
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection, loads
from gateway.hub import Hub
import reactivex  # every gateway has it (the hub)
proc = psutil.Process()

async def main():
    with tempfile.TemporaryDirectory() as tmp:
        async with DurableBuffer.from_config(Path(tmp) / "b.sqlite", BufferSection()) as buffer:
            hub = Hub(buffer)
            await hub.publish([])
            gc.collect()
            before = proc.memory_info().rss
            from gateway.adapters.chips.adapter import ChipAdapter
            cfg = loads('''
[[adapters.i2c]]
chip = "bme280"
emulated = true
interval_s = 0.05
[[adapters.i2c]]
chip = "sht3x"
emulated = true
interval_s = 0.05
[[adapters.i2c]]
chip = "ads1115"
inputs = ["AIN0", "AIN1", "AIN2", "AIN3"]
emulated = true
interval_s = 0.05
[[adapters.spi]]
chip = "mcp3008"
inputs = ["ch0", "ch1", "ch2", "ch3"]
emulated = true
interval_s = 0.05
''', base_dir=Path(tmp))
            a = cfg.adapters
            adapter = ChipAdapter(a.i2c, a.spi, a.polling, hub)
            c0 = time.process_time()
            task = asyncio.create_task(adapter.run())
            await asyncio.sleep(seconds)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            cpu = time.process_time() - c0
            gc.collect()
            after = proc.memory_info().rss
            polls = sum(s.polls for s in adapter.states.values())
            print(json.dumps({"before": before, "after": after, "polls": polls, "cpu": cpu,
                              "readings": adapter.accepted, "failed": adapter.rejected_total}))

asyncio.run(main())
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), str(args.seconds)], capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    added = (r["after"] - r["before"]) / 1e6
    ok = "meets" if added < CEILING_MB else "MISSES"
    print("I2C/SPI poller (BME280, SHT3x, ADS1115 x4 inputs, MCP3008 x4 inputs; emulated chips, every 50 ms)")
    print(f"  RSS before:     {r['before'] / 1e6:8.1f} MB (asyncio, hub, buffer, reactivex)")
    print(f"  RSS after:      {r['after'] / 1e6:8.1f} MB after {r['polls']:,} polls, {r['readings']:,} readings")
    print(f"  added:          {added:8.2f} MB (ceiling {CEILING_MB:.1f} MB: {ok}; includes the emulators' code)")
    print(f"  CPU per poll:   {r['cpu'] / max(1, r['polls']) * 1e6:8.0f} µs (driver, emulated bus, buffer commit)")
    print(f"  failed polls:   {r['failed']:8d}")


if __name__ == "__main__":
    main()
