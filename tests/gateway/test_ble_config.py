"""``[adapters.ble]``: validation with key paths, the footprint rule, and the daemon running a replay from config."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import config
from gateway.adapters.ble.adapter import BleAdapter
from gateway.daemon import _build_adapters
from gateway.errors import ConfigError
from gateway.hub import Hub
from gateway.pairing import Pairing
from tests.gateway import ble_rig
from tests.gateway.ble_rig import KEY, buffered, run_until

ROOT = Path(__file__).resolve().parents[2]
MAC = "A4:C1:38:0A:1B:2C"


def test_a_full_ble_table_loads(tmp_path: Path) -> None:
    cfg = config.loads(
        textwrap.dedent(
            f"""
            [adapters.ble]
            enabled = true
            adapter = "hci1"
            scanning_mode = "passive"
            replay_file = "adverts.jsonl"

            [[adapters.ble.devices]]
            address = "a4-c1-38-0a-1b-2c"
            name = "kitchen-th"
            bind_key = "{KEY.hex().upper()}"
            expected_interval_s = 120

            [[adapters.ble.devices.gatt]]
            characteristic = "2A6E"
            metric = "temperature"
            scale = 0.01
            unit = "Cel"
            """
        ),
        base_dir=tmp_path,
    )
    ble = cfg.adapters.ble
    (dev,) = ble.devices
    assert dev.address == MAC and dev.key == KEY
    assert dev.gatt[0].characteristic == "00002a6e-0000-1000-8000-00805f9b34fb"
    assert ble.replay_file == tmp_path / "adverts.jsonl"
    assert ble.expected_interval(dev) == 120 and config.GatewayConfig().adapters.ble.enabled is False
    assert KEY.hex() not in repr(cfg) and KEY.hex().upper() not in repr(cfg)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[adapters.ble.devices]]\naddress = "A4:C1:38"', r"adapters\.ble\.devices\[0\]\.address: 'A4:C1:38' is not"),
        (
            f'[[adapters.ble.devices]]\naddress = "{MAC}"\nbind_key = "231d39c1"',
            r"adapters\.ble\.devices\[0\]\.bind_key: must be 32 hex characters \(16 bytes\), got 8",
        ),
        (
            f'[[adapters.ble.devices]]\naddress = "{MAC}"\nbind_key = "{"zz" * 16}"',
            r"devices\[0\]\.bind_key: must be 32 hex characters",
        ),
        (
            f'[[adapters.ble.devices]]\naddress = "{MAC}"\n[[adapters.ble.devices]]\naddress = "{MAC.lower()}"',
            r"adapters\.ble\.devices\[1\]\.address: A4:C1:38:0A:1B:2C is already devices\[0\]",
        ),
        (
            f'[[adapters.ble.devices]]\naddress = "{MAC}"\n[[adapters.ble.devices.gatt]]\n'
            'characteristic = "temp"\nmetric = "temperature"',
            r"devices\[0\]\.gatt\[0\]\.characteristic: 'temp' is not a UUID",
        ),
        ('[adapters.ble]\nscanning_mode = "loud"', r"adapters\.ble\.scanning_mode: 'loud' is not allowed"),
        ("[adapters.ble]\nmax_connections = 0", r"adapters\.ble\.max_connections: must be between 1 and 10"),
        ("[adapters.ble]\nwatchdog_s = 0.5", r"adapters\.ble\.watchdog_s: must be 0"),
        ('[adapters.ble]\nadapter = "/dev/hci0"', r"adapters\.ble\.adapter: '/dev/hci0' must be a controller name"),
    ],
)
def test_bad_values_are_named_by_key_path(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        config.loads(toml, base_dir=tmp_path, name="gateway.toml")
    assert "zz" * 16 not in str(info.value)


_FOOTPRINT = """
import sys
from pathlib import Path
from gateway import config
from gateway.daemon import _build_adapters
from gateway.hub import Hub
from gateway.pairing import Pairing
cfg = config.loads(sys.argv[1], base_dir=Path("."))
adapters = _build_adapters(cfg, Hub(None), Pairing([]))
print(",".join(a.name for a in adapters), "bleak" in sys.modules)
"""


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[adapters.coap]\nenabled = true", "coap False"),
        ("[adapters.ble]\nenabled = false\n[[adapters.ble.devices]]\naddress = 'A4:C1:38:0A:1B:2C'", "coap False"),
        ("[adapters.ble]\nenabled = true", "coap,ble True"),
    ],
)
def test_bleak_is_imported_only_when_ble_is_enabled(toml: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FOOTPRINT, toml], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async for h in ble_rig.hub_at(tmp_path / "buf.sqlite"):
        yield h


async def test_the_daemon_builds_a_replaying_adapter_from_config(tmp_path: Path, hub: Hub) -> None:
    from gateway.adapters.ble.scanner import record_line

    replay = tmp_path / "adverts.jsonl"
    replay.write_text(record_line(0.0, ble_rig.bthome(MAC, 20.5, packet_id=1, key=KEY, counter=3)) + "\n")
    cfg = config.loads(
        f'[adapters.coap]\nenabled = false\n[adapters.ble]\nenabled = true\nreplay_file = "adverts.jsonl"\n'
        f'[[adapters.ble.devices]]\naddress = "{MAC}"\nname = "porch"\nbind_key = "{KEY.hex()}"\n',
        base_dir=tmp_path,
    )
    (adapter,) = _build_adapters(cfg, hub, Pairing([]))
    assert isinstance(adapter, BleAdapter)
    assert adapter.counters_file == cfg.gateway.state_dir / "ble-counters.json"
    cfg.gateway.state_dir.mkdir()
    t0 = time.time()
    await run_until(adapter, lambda: adapter.accepted >= 1)
    (reading,) = await buffered(hub)
    assert (reading.sensor, reading.metric, reading.value) == ("porch", "temperature", 20.5)
    assert reading.ts >= t0
    assert (cfg.gateway.state_dir / "ble-counters.json").exists()


def test_the_ble_guide_examples_load() -> None:
    import re

    text = (ROOT / "docs" / "ble.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 3
    for block in blocks:
        cfg = config.loads(block, base_dir=ROOT, name="docs/ble.md")
        assert cfg.adapters.ble.devices or cfg.paired
