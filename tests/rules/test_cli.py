"""``roost rules check`` and ``roost rules run`` as an operator runs them (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "rules"


def roost(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT, input=stdin
    )


def test_check_accepts_every_example() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.toml"))
    out = roost("rules", "check", *files)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(": OK (") == len(files)


def test_check_refuses_a_bad_rule_naming_it_and_its_line(tmp_path: Path) -> None:
    text = (
        (EXAMPLES / "freezer.toml")
        .read_text()
        .replace('name = "freezer-silent"', 'name = "renamed"\nno_such_field = 1')
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    out = roost("rules", "check", str(bad))
    assert out.returncode == 1
    line = text.splitlines().index("no_such_field = 1") + 1
    assert f"bad.toml:{line}: rule 'renamed': no_such_field: unknown field" in out.stderr


def test_run_replays_the_sample_readings() -> None:
    files = [
        str(EXAMPLES / n) for n in ("freezer.toml", "occupancy-plug.toml", "cellular-shaping.toml", "derived.toml")
    ]
    out = roost("rules", "run", *files, "--input", str(EXAMPLES / "readings.jsonl"), "--until", "+30m")
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    alerts = {(d["key"], d["state"]) for d in docs if d["type"] == "alert"}
    assert {("freezer-warm/freezer-1", "raised"), ("freezer-warm/freezer-1", "cleared")} <= alerts
    assert ("freezer-silent/freezer-2", "raised") in alerts and ("power-spike/meter-1", "raised") in alerts
    assert [(d["target"], d["action"]) for d in docs if d["type"] == "command"] == [
        ("plug-living", "on"), ("plug-living", "off")
    ]  # fmt: skip
    assert any(d["type"] == "derived" and d["metric"] == "temperature_avg_1h" for d in docs)
    assert any(d["type"] == "annotation" and d["rule"] == "freezer-door-then-warm" for d in docs)
    assert "uplink keeps" in out.stderr


def test_run_reports_bad_lines_by_number_and_goes_on(tmp_path: Path) -> None:
    rules = EXAMPLES / "freezer.toml"
    lines = [
        '{"ts": 1000, "sensor": "freezer-1", "metric": "temperature", "value": -10, "unit": "Cel"}',
        "not json",
        '{"ts": "2025-01-15T08:00:00Z", "sensor": "/dev/x", "metric": "temperature", "value": 1}',
        '{"ts": 1400, "sensor": "freezer-1", "metric": "temperature", "value": -10, "unit": "Cel"}',
    ]
    out = roost("rules", "run", str(rules), "--input", "-", stdin="\n".join(lines) + "\n")
    assert out.returncode == 1
    assert "-:2: not JSON" in out.stderr and "-:3: sensor id '/dev/x' is not valid" in out.stderr
    assert [json.loads(x)["state"] for x in out.stdout.splitlines()] == ["raised"]  # the good lines went through
