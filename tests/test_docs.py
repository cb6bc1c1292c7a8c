"""The documented config references are the ones the code loads (they are generated from it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("which", "doc"), [("gateway", "docs/gateway-config.md"), ("cloud", "docs/cloud-config.md")])
def test_config_reference_docs_are_current(which: str, doc: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "roost.cli", which, "config-reference"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "| `" in out.stdout
    assert (ROOT / doc).read_text() == out.stdout, (
        f"{doc} is out of date: regenerate it with `roost {which} config-reference > {doc}`"
    )


def test_every_option_has_a_meaning() -> None:
    for doc in ("docs/gateway-config.md", "docs/cloud-config.md"):
        rows = [line for line in (ROOT / doc).read_text().splitlines() if line.startswith("| `")]
        assert rows
        for row in rows:
            meaning = row.rstrip("|").rsplit("|", 1)[1].strip()
            assert meaning, f"{doc}: {row} has no meaning"


def test_readme_starts_with_the_two_commands() -> None:
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "make demo" in head and "make test" in head


def test_readme_config_examples_load(tmp_path: Path) -> None:
    from cloud import config as cloud_config
    from gateway import config as gateway_config

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        if "[server]" in block:
            # The example names files an installer would have; here they are empty stand-ins.
            for name in ("cloud.crt", "cloud.key"):
                (tmp_path / name).write_text("")
            cfg = cloud_config.loads(block.replace("/etc/roost/", f"{tmp_path}/"), base_dir=ROOT)
            assert cfg.server.certfile is not None
        elif "[[adapters." in block:  # the technician's wired devices
            gw = gateway_config.loads(block, base_dir=ROOT, name="README.md")
            assert gw.adapters.i2c and gw.adapters.serial
        else:
            gw = gateway_config.loads(block, base_dir=ROOT, name="README.md")
            assert gw.paired and gw.adapters.coap.accept == "paired"
            assert gw.identity.claim_token_file is not None


def test_the_wired_guide_examples_load() -> None:
    from gateway import config as gateway_config

    text = (ROOT / "docs" / "wired.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    assert blocks
    for block in blocks:
        cfg = gateway_config.loads(block, base_dir=ROOT, name="docs/wired.md")
        assert cfg.adapters.i2c or cfg.adapters.spi
