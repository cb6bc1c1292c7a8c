"""Which worker runs the cloud rules: the single process, or the rules worker, never an ingest worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import ConfigError, loads
from cloud.server import CloudServer

RABBIT = '[broker]\nkind = "rabbitmq"\namqp_urls = ["amqp://u:p@127.0.0.1:5672/roost"]\n'


def _server(tmp_path: Path, role: str, rules: bool = True) -> CloudServer:
    text = f'[server]\nrole = "{role}"\n' + (RABBIT if role != "all" else "")
    text += "[identity]\nenabled = false\n" + ("[rules]\nenabled = true\n" if rules else "")
    return CloudServer(loads(text, base_dir=tmp_path))


def test_only_the_single_process_and_the_rules_worker_run_rules(tmp_path: Path) -> None:
    single = _server(tmp_path / "all", "all")
    assert single.cloud_rules is not None and single.rules_feed is None
    assert single.ingest.listener is single.cloud_rules
    ingest = _server(tmp_path / "ingest", "ingest")
    assert ingest.cloud_rules is None and ingest.ingest.listener is None  # it sees only its share of the stream
    worker = _server(tmp_path / "rules", "rules")
    assert worker.cloud_rules is not None and worker.rules_feed is not None
    settings = worker.broker._settings  # type: ignore[attr-defined]
    assert settings.queue == "roost.rules"
    assert set(settings.bindings) == {"roost.*.*.telemetry", "roost.*.*.telemetry.*", "roost.*.*.status"}
    assert _server(tmp_path / "api", "api").cloud_rules is None


def test_a_rules_worker_without_rules_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rules\.enabled"):
        _server(tmp_path, "rules", rules=False)
