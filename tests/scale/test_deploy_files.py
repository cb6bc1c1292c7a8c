"""The scale-out deployment's files, checked by the real tools: systemd-analyze, haproxy -c, the cloud's loader.

- the worker units (``roost-cloud-api@.service``, ``roost-cloud-ingest@.service``, their target) pass
  ``systemd-analyze verify`` in a temporary root, as tests/systemd/test_units.py does for the other units;
- ``deploy/haproxy.cfg`` passes ``haproxy -c`` with its addresses from the environment;
- every cloud.toml of docs/deploy.md loads with ``cloud.config``, and says the role its heading names.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cloud.config import loads
from cloud.errors import ConfigError
from tests.systemd.test_units import HOST_UNITS, UNITS, needs_analyze, verify

ROOT = Path(__file__).resolve().parents[2]
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
WORKER_UNITS = ["roost-cloud-api@1.service", "roost-cloud-ingest@2.service", "roost-cloud-workers.target"]


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A root with the host's units, Roost's units and a stub at the path the units start."""
    if not HOST_UNITS.is_dir():
        pytest.skip(f"no {HOST_UNITS} on this machine to stand in for a server's units")
    root = tmp_path / "root"
    units = root / "usr/lib/systemd/system"
    shutil.copytree(HOST_UNITS, units, symlinks=True)
    for unit in [*UNITS.glob("*.service"), *UNITS.glob("*.target")]:
        shutil.copy(unit, units / unit.name)
    stub = root / "opt/roost/current/bin/roost"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    return root


@needs_analyze
@pytest.mark.parametrize("unit", WORKER_UNITS)
def test_worker_units_pass_systemd_analyze_verify(unit_root: Path, unit: str) -> None:
    done = verify(unit_root, unit)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


def test_worker_units_read_their_own_config_and_share_one_user() -> None:
    for kind in ("api", "ingest"):
        text = (UNITS / f"roost-cloud-{kind}@.service").read_text()
        assert f"--config /etc/roost/cloud-{kind}-%i.toml" in text
        assert "User=roost-cloud" in text and "DynamicUser=yes" in text and "StateDirectory=roost-cloud" in text


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (make deps installs it)")
def test_shipped_haproxy_config_is_valid(tmp_path: Path) -> None:
    assert HAPROXY is not None
    env = dict(
        os.environ, ROOST_HTTP_BIND="127.0.0.1:18080", ROOST_API_1="127.0.0.1:18081", ROOST_API_2="127.0.0.1:18082"
    )
    cfg = ROOT / "deploy/haproxy.cfg"
    done = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    # Without the environment it names what is missing rather than starting with no address.
    bare = {k: v for k, v in env.items() if not k.startswith("ROOST_")}
    done = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], env=bare, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0


_TOML_BLOCK = re.compile(r"^#+ `(cloud[^`]*\.toml)`\n+```toml\n(.*?)```", re.MULTILINE | re.DOTALL)


def test_every_cloud_toml_in_docs_deploy_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs/deploy.md").read_text()
    blocks = _TOML_BLOCK.findall(text)
    names = [name for name, _ in blocks]
    assert {"cloud.toml", "cloud-api-1.toml", "cloud-ingest-1.toml"} <= set(names), names
    (tmp_path / "amqp-password").write_text("secret\n")
    (tmp_path / "pg-dsn").write_text("postgresql://roost:secret@127.0.0.1/roost\n")
    for name, body in blocks:
        text = body.replace("/etc/roost/amqp-password", str(tmp_path / "amqp-password"))
        text = text.replace("/etc/roost/pg-dsn", str(tmp_path / "pg-dsn"))
        config = loads(text, base_dir=tmp_path, name=name)
        role = "api" if "-api-" in name else "ingest" if "-ingest-" in name else "all"
        assert config.server.role == role, name


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ('[server]\nrole = "api"\n', "server.role", "needs broker.kind = 'rabbitmq'"),
        ('[server]\nrole = "worker"\n', "server.role", "is not allowed"),
        ('[broker]\nkind = "rabbitmq"\n', "broker.amqp_urls", "needs at least one AMQP URL"),
        ('[broker]\nkind = "rabbitmq"\namqp_urls = ["http://mq1:5672"]\n', "broker.amqp_urls[0]", "amqp://"),
        ("[broker]\namqp_prefetch = 0\n", "broker.amqp_prefetch", "between 1 and 65535"),
    ],
)
def test_roles_and_the_rabbitmq_broker_are_checked_when_loading(tmp_path: Path, text: str, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(text, base_dir=tmp_path, name="cloud.toml")
    assert caught.value.key_path == key and says in caught.value.problem, str(caught.value)
