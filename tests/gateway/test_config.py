"""The gateway config file: defaults, errors that name the file and key path, every option documented."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from gateway import config
from gateway.config import GatewayConfig
from gateway.errors import ConfigError, GatewayError
from wire.typedconfig import as_toml, describe


def _write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: ")
    return caught.value


def test_an_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, ""))
    folder = tmp_path.resolve()
    assert cfg.gateway.id == ""
    assert cfg.gateway.tenant == "default"
    assert cfg.gateway.state_dir == folder / "state"  # a default path is relative to the file, too
    assert cfg.buffer_path == folder / "state" / "buffer.sqlite"
    assert cfg.cloud.url == "http://127.0.0.1:8080"
    assert cfg.cloud.transport == "auto"
    assert cfg.cloud.ca_file is None and cfg.cloud.password_file is None
    assert cfg.uplink.encoding == "cbor" and cfg.uplink.compress == "auto"
    assert cfg.buffer.policy == "drop-oldest"
    assert cfg.adapters.coap.port == 5683 and cfg.adapters.coap.accept == "paired"
    assert cfg.paired == ()


def test_the_demos_config_loads(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """# Written by roost demo.
[gateway]
id = "demo-gw"
tenant = "default"
state_dir = "gateway"

[cloud]
url = "http://127.0.0.1:18080"
password_file = "gateway.password"
backoff_max_s = 5.0

[uplink]
batch_max_delay_ms = 100
health_interval_s = 10.0

[adapters.coap]
host = "127.0.0.1"
port = 15683
accept = "any"
""",
    )
    cfg = config.load(path)
    folder = tmp_path.resolve()
    assert cfg.gateway.id == "demo-gw"
    assert cfg.gateway.state_dir == folder / "gateway"
    assert cfg.cloud.password_file == folder / "gateway.password"
    assert cfg.cloud.backoff_max_s == 5.0
    assert cfg.uplink.batch_max_delay_ms == 100
    assert cfg.adapters.coap == config.CoapSection(host="127.0.0.1", port=15683, accept="any")
    assert cfg.buffer_path == folder / "gateway" / "buffer.sqlite"


def test_every_option_set(tmp_path: Path) -> None:
    cfg = config.load(
        _write(
            tmp_path,
            """
paired = ["A4:C1:38:00:11:22", "00:12:4b:00:1c:a1:b2:c3"]
[gateway]
id = "rpi4.kitchen"
tenant = "acme-corp"
state_dir = "/var/lib/roost"
log_level = "DEBUG"
shutdown_timeout_s = 2
[cloud]
url = "https://cloud.example:8443"
mqtt_url = "wss://cloud.example/mqtt"
transport = "wss"
ca_file = "certs/ca.pem"
username = "gw"
password_file = "/etc/roost/password"
keepalive_s = 60
connect_timeout_s = 5
backoff_initial_s = 1
backoff_max_s = 60
[uplink]
batch_max_readings = 500
batch_max_delay_ms = 0
inflight = 4
encoding = "json"
compress = "zlib"
ack_timeout_s = 10
health_interval_s = 60
[buffer]
path = "buf/readings.sqlite"
max_bytes = 4096
max_age_s = 0
policy = "refuse"
commit_interval_ms = 0
[adapters.coap]
enabled = false
host = "0.0.0.0"
port = 0
accept = "any"
max_payload = 16
max_records = 1
""",
        )
    )
    folder = tmp_path.resolve()
    assert cfg.paired == ("A4:C1:38:00:11:22", "00:12:4b:00:1c:a1:b2:c3")
    assert cfg.gateway.shutdown_timeout_s == 2.0 and isinstance(cfg.gateway.shutdown_timeout_s, float)
    assert cfg.gateway.state_dir == Path("/var/lib/roost")
    assert cfg.cloud.ca_file == folder / "certs" / "ca.pem"
    assert cfg.cloud.password_file == Path("/etc/roost/password")
    assert cfg.buffer_path == folder / "buf" / "readings.sqlite"
    assert cfg.buffer.policy == "refuse" and cfg.uplink.compress == "zlib"
    assert cfg.adapters.coap.enabled is False and cfg.adapters.coap.port == 0


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            '[buffer]\npolicy = "drop-random"',
            "gateway.toml: buffer.policy: 'drop-random' is not allowed: must be one of "
            "'drop-oldest', 'drop-newest', 'refuse'",
        ),
        (
            '[cloud]\ntransport = "udp"',
            "gateway.toml: cloud.transport: 'udp' is not allowed: must be one of 'auto', 'wss', 'ws', 'tcp', 'tls'",
        ),
        (
            '[gateway]\nlog_level = "TRACE"',
            "gateway.toml: gateway.log_level: 'TRACE' is not allowed: must be one of 'DEBUG', 'INFO', 'WARNING', "
            "'ERROR'",
        ),
        (
            '[uplink]\nencoding = "xml"',
            "gateway.toml: uplink.encoding: 'xml' is not allowed: must be one of 'cbor', 'json'",
        ),
        ('[adapters.coap]\naccept = "all"', "gateway.toml: adapters.coap.accept: 'all' is not allowed"),
        (
            "[adapters.coap]\nprot = 5683",
            "gateway.toml: adapters.coap.prot: unknown key (known keys here: "
            "accept, duplicate_cache, enabled, host, max_payload, max_records, port)",
        ),
        (
            "[adapters.lora]\nenabled = true",
            "gateway.toml: adapters.lora: unknown key "
            "(known keys here: ble, coap, i2c, modbus, polling, serial, spi, zigbee)",
        ),
        (
            '[gatway]\nid = "x"',
            "gateway.toml: gatway: unknown key (known keys here: "
            "adapters, buffer, cloud, dm, gateway, identity, local, metrics, node_firmware, paired, rules, update, "
            "uplink)",
        ),
        ('[adapters.coap]\nport = "5683"', "gateway.toml: adapters.coap.port: must be an integer, not '5683'"),
        ("[adapters.coap]\nport = 70000", "gateway.toml: adapters.coap.port: must be between 0 and 65535"),
        ("[adapters.coap]\nport = -1", "gateway.toml: adapters.coap.port: must be between 0 and 65535"),
        ("[adapters.coap]\nmax_payload = 8", "gateway.toml: adapters.coap.max_payload: must be between 16 and"),
        ("[adapters.coap]\nmax_records = 0", "gateway.toml: adapters.coap.max_records: must be at least 1"),
        ("[adapters.coap]\nenabled = 1", "gateway.toml: adapters.coap.enabled: must be true or false, not 1"),
        ('paired = "A4:C1:38:00:11:22"', "gateway.toml: paired: must be a list, not str"),
        ("paired = [1]", "gateway.toml: paired[0]: must be a string, not 1"),
        ('[gateway]\nid = "gw/1"', "gateway.toml: gateway.id: gateway id 'gw/1' is not valid"),
        ('[gateway]\nid = "+"', "gateway.toml: gateway.id: gateway id '+' is not valid"),
        ('[gateway]\ntenant = "Acme"', "gateway.toml: gateway.tenant: tenant id 'Acme' is not valid"),
        ('[gateway]\ntenant = ""', "gateway.toml: gateway.tenant: tenant id '' is not valid: it is empty"),
        ('[gateway]\nstate_dir = ""', "gateway.toml: gateway.state_dir: must be a path (a non-empty string)"),
        ("[gateway]\nshutdown_timeout_s = 0", "gateway.toml: gateway.shutdown_timeout_s: must be greater than 0"),
        ("[gateway]\nshutdown_timeout_s = nan", "gateway.toml: gateway.shutdown_timeout_s: must be a finite number"),
        (
            '[cloud]\nurl = "ftp://cloud.example"',
            "gateway.toml: cloud.url: 'ftp://cloud.example' must start with http:// or https://",
        ),
        ('[cloud]\nurl = "cloud.example:8080"', "gateway.toml: cloud.url: 'cloud.example:8080' must start with"),
        ('[cloud]\nurl = "http://"', "gateway.toml: cloud.url: 'http://' names no host"),
        (
            '[cloud]\nurl = "http://127.0.0.1:99999"',
            "gateway.toml: cloud.url: 'http://127.0.0.1:99999' is not a valid URL: Port out of range 0-65535",
        ),
        (
            '[cloud]\nurl = "http://127.0.0.1:http"',
            "gateway.toml: cloud.url: 'http://127.0.0.1:http' is not a valid URL",
        ),
        (
            '[cloud]\nurl = "https://cloud.example:0"',
            "gateway.toml: cloud.url: 'https://cloud.example:0': port must be between 1 and 65535",
        ),
        (
            '[cloud]\nmqtt_url = "http://cloud.example/mqtt"',
            "gateway.toml: cloud.mqtt_url: 'http://cloud.example/mqtt' must start with ws://, wss://, mqtt:// or "
            "mqtts://",
        ),
        (
            '[cloud]\nmqtt_url = "tcp://cloud.example:1883"',
            "gateway.toml: cloud.mqtt_url: 'tcp://cloud.example:1883' must start with",
        ),
        (
            '[cloud]\nmqtt_url = "mqtt://cloud.example:65536"',
            "gateway.toml: cloud.mqtt_url: 'mqtt://cloud.example:65536' is not a valid URL: Port out of range 0-65535",
        ),
        ('[cloud]\nmqtt_url = "wss:///mqtt"', "gateway.toml: cloud.mqtt_url: 'wss:///mqtt' names no host"),
        ("[cloud]\nkeepalive_s = 4", "gateway.toml: cloud.keepalive_s: must be between 5 and 3600"),
        ("[cloud]\nkeepalive_s = 3601", "gateway.toml: cloud.keepalive_s: must be between 5 and 3600"),
        ("[cloud]\nconnect_timeout_s = 0", "gateway.toml: cloud.connect_timeout_s: must be greater than 0"),
        ("[cloud]\nbackoff_initial_s = 0", "gateway.toml: cloud.backoff_initial_s: must be greater than 0"),
        (
            "[cloud]\nbackoff_initial_s = 10\nbackoff_max_s = 5",
            "gateway.toml: cloud.backoff_max_s: must be at least backoff_initial_s",
        ),
        ("[cloud]\nbackoff_max_s = inf", "gateway.toml: cloud.backoff_max_s: must be a finite number, not inf"),
        ("[cloud]\nca_file = 1", "gateway.toml: cloud.ca_file: must be a path (a non-empty string), not 1"),
        ("[uplink]\nbatch_max_readings = 0", "gateway.toml: uplink.batch_max_readings: must be between 1 and 50000"),
        ("[uplink]\nbatch_max_delay_ms = -1", "gateway.toml: uplink.batch_max_delay_ms: must be between 0 and 60000"),
        ("[uplink]\ninflight = 0", "gateway.toml: uplink.inflight: must be between 1 and 1000"),
        ("[uplink]\nack_timeout_s = 0", "gateway.toml: uplink.ack_timeout_s: must be greater than 0"),
        ("[uplink]\nhealth_interval_s = -1", "gateway.toml: uplink.health_interval_s: must be greater than 0"),
        ("[buffer]\nmax_bytes = 4095", "gateway.toml: buffer.max_bytes: must be at least 4096"),
        ("[buffer]\nmax_age_s = -1", "gateway.toml: buffer.max_age_s: must be 0 (no limit) or more"),
        ("[buffer]\ncommit_interval_ms = 1001", "gateway.toml: buffer.commit_interval_ms: must be between 0 and 1000"),
        ("buffer = 5", "gateway.toml: buffer: must be a table, not int"),
    ],
)
def test_errors_name_the_file_the_key_path_and_what_is_allowed(tmp_path: Path, text: str, where: str) -> None:
    exc = _error(tmp_path, text)
    assert where in str(exc)
    key_path = where.split(": ")[1]
    assert exc.key_path == key_path
    assert isinstance(exc, GatewayError)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value) == f"{path}: no such file"
    assert caught.value.key_path == ""


def test_a_folder_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cannot be read: ")


@pytest.mark.parametrize(
    "text",
    [
        "[gateway\nid = 'x'",
        "[gateway]\nid = ",
        "[gateway]\nid = 'a'\nid = 'b'",
        "[gateway]\n[gateway]",
        "= 1",
    ],
)
def test_invalid_toml(tmp_path: Path, text: str) -> None:
    exc = _error(tmp_path, text)
    assert "gateway.toml: is not valid TOML: " in str(exc)
    assert exc.key_path == ""


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_bytes(b'[gateway]\nid = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value).startswith(f"{path}: is not valid TOML: not UTF-8")


def test_loads_names_the_embedded_source(tmp_path: Path) -> None:
    cfg = config.loads('[gateway]\nid = "gw-1"', base_dir=tmp_path)
    assert cfg.gateway.id == "gw-1"
    assert cfg.gateway.state_dir == tmp_path / "state"
    with pytest.raises(ConfigError, match=r"^<embedded>: buffer\.policy: 'x' is not allowed"):
        config.loads('[buffer]\npolicy = "x"', base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^defaults\.toml: is not valid TOML: "):
        config.loads("[buffer", base_dir=tmp_path, name="defaults.toml")


def _all_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field[object], object]]:
    """(key path, field, type) of every field of ``cls`` and its sub-tables, tables included."""
    out: list[tuple[str, dataclasses.Field[object], object]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        out.append((key, f, tp))
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            out.extend(_all_fields(tp, key + "."))
        item = _table_list_item(tp)
        if item is not None:  # an array of tables ([[adapters.serial]]): the keys of one entry
            out.extend(_all_fields(item, key + "[]."))
    return out


def _table_list_item(tp: object) -> type | None:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and args and dataclasses.is_dataclass(args[0]) and isinstance(args[0], type):
        return args[0]
    return None


def _is_table(tp: object) -> bool:
    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def test_every_field_has_a_doc_string() -> None:
    fields = _all_fields(GatewayConfig)
    tables = {key for key, _, tp in fields if _is_table(tp)}
    assert tables == {
        "gateway",
        "cloud",
        "uplink",
        "buffer",
        "adapters",
        "adapters.coap",
        "adapters.polling",
        "adapters.ble",
        "adapters.zigbee",
        "identity",
        "update",
        "node_firmware",
        "rules",
        "dm",
        "local",
        "metrics",
    }
    assert len(fields) >= 40
    undocumented = [key for key, f, _ in fields if not str(f.metadata.get("doc", "")).strip()]
    assert undocumented == []


def test_describe_lists_every_option() -> None:
    rows = describe(GatewayConfig)
    keys = [key for key, _, _ in rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == {key for key, _, tp in _all_fields(GatewayConfig) if not _is_table(tp)}
    by_key = {key: (default, text) for key, default, text in rows}
    assert by_key["buffer.policy"] == ('"drop-oldest"', "What to do when full: drop-oldest, drop-newest or refuse")
    assert by_key["adapters.coap.port"][0] == "5683"
    assert by_key["paired"][0] == "[]"
    assert all(text.strip() for _, _, text in rows)
    # a config file may be empty: only keys of an entry in an array of tables can be required
    assert all(default != "(required)" for key, default, _ in rows if "[]." not in key)


def test_every_documented_default_is_what_an_empty_file_gives(tmp_path: Path) -> None:
    cfg = config.loads("", base_dir=tmp_path)
    documented = {key: default for key, default, _ in describe(GatewayConfig)}
    checked = 0
    for key, f, tp in _all_fields(GatewayConfig):
        if _is_table(tp) or "[]." in key:  # an empty file has no entries in its arrays of tables
            continue
        value: object = cfg
        for part in key.split("."):
            value = getattr(value, part)
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        assert documented[key] == as_toml(default)  # written as it would be in TOML
        if isinstance(default, Path):
            assert value == tmp_path / default, key  # a default path is relative to the config file
        else:
            assert value == default, key
        checked += 1
    assert checked == len([key for key in documented if "[]." not in key])
