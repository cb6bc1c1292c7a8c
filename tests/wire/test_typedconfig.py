"""wire.typedconfig: typed TOML tables into frozen dataclasses, errors naming the key path."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from wire.typedconfig import ConfigValueError, build, describe, doc, load, loads


@dataclass(frozen=True, slots=True, kw_only=True)
class Coap:
    port: int = doc("UDP port", default=5683)
    mode: Literal["paired", "any"] = doc("Who may send", default="paired")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigValueError("port", "must be between 0 and 65535")


@dataclass(frozen=True, slots=True, kw_only=True)
class Adapters:
    coap: Coap = doc("CoAP", default_factory=Coap)
    store: Path = doc("Adapter state", default=Path("adapters"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    ratio: float = doc("A ratio", default=0.5)

    def __post_init__(self) -> None:
        if self.ratio > 1:
            raise ValueError("ratio must be at most 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Root:
    name: str = doc("A required name")
    enabled: bool = doc("On or off", default=True)
    count: int = doc("How many", default=3)
    ratio: float = doc("A number", default=1.0)
    state_dir: Path = doc("State folder", default=Path("state"))
    ca_file: Path | None = doc("Optional file", default=None)
    tags: tuple[str, ...] = doc("Tags", default=())
    level: Literal["DEBUG", "INFO"] = doc("Log level", default="INFO")
    extra: dict[str, int] = doc("Named numbers", default_factory=dict)
    adapters: Adapters = doc("Adapters", default_factory=Adapters)
    limits: Limits = doc("Limits", default_factory=Limits)


def _error(text: str, *, base_dir: Path | None = None) -> ConfigValueError:
    with pytest.raises(ConfigValueError) as caught:
        loads(Root, text, base_dir=base_dir)
    return caught.value


def test_a_full_file() -> None:
    cfg = loads(
        Root,
        """
name = "x"
enabled = false
count = 7
ratio = 2
state_dir = "/var/lib/roost"
ca_file = "/etc/ca.pem"
tags = ["a", "b"]
level = "DEBUG"
extra = { one = 1 }
[adapters]
store = "/srv/a"
[adapters.coap]
port = 1
mode = "any"
[limits]
ratio = 0.25
""",
    )
    assert cfg == Root(
        name="x",
        enabled=False,
        count=7,
        ratio=2.0,
        state_dir=Path("/var/lib/roost"),
        ca_file=Path("/etc/ca.pem"),
        tags=("a", "b"),
        level="DEBUG",
        extra={"one": 1},
        adapters=Adapters(coap=Coap(port=1, mode="any"), store=Path("/srv/a")),
        limits=Limits(ratio=0.25),
    )
    assert isinstance(cfg.ratio, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.count = 1  # type: ignore[misc]


def test_defaults() -> None:
    cfg = loads(Root, 'name = "x"')
    assert cfg == Root(name="x")
    assert cfg.state_dir == Path("state")  # no base folder given: left as it is


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ('name = "x"\ncolour = "red"', "colour"),
        ('name = "x"\n[adapters]\nzigbee = {}', "adapters.zigbee"),
        ('name = "x"\n[adapters.coap]\nprot = 5683', "adapters.coap.prot"),
        ('name = "x"\n[limits]\nratio = 0.5\nratios = 1', "limits.ratios"),
    ],
)
def test_unknown_key_is_named_with_its_full_path(text: str, key_path: str) -> None:
    exc = _error(text)
    assert exc.key_path == key_path
    assert str(exc).startswith(f"{key_path}: unknown key (known keys here: ")
    assert "(known keys here: " in exc.problem


def test_unknown_key_lists_the_known_ones() -> None:
    exc = _error('name = "x"\n[adapters.coap]\nprot = 5683')
    assert exc.problem == "unknown key (known keys here: mode, port)"


@pytest.mark.parametrize(
    ("text", "key_path", "problem"),
    [
        ("name = 1", "name", "must be a string, not 1"),
        ('name = "x"\nenabled = "yes"', "enabled", "must be true or false, not 'yes'"),
        ('name = "x"\ncount = "3"', "count", "must be an integer, not '3'"),
        ('name = "x"\ncount = 3.0', "count", "must be an integer, not 3.0"),
        ('name = "x"\ncount = true', "count", "must be an integer, not True"),
        ('name = "x"\nratio = "1"', "ratio", "must be a number, not '1'"),
        ('name = "x"\nratio = false', "ratio", "must be a number, not False"),
        ('name = "x"\nratio = nan', "ratio", "must be a finite number, not nan"),
        ('name = "x"\nratio = inf', "ratio", "must be a finite number, not inf"),
        ('name = "x"\nstate_dir = 5', "state_dir", "must be a path (a non-empty string), not 5"),
        ('name = "x"\nstate_dir = ""', "state_dir", "must be a path (a non-empty string), not ''"),
        ('name = "x"\nca_file = 5', "ca_file", "must be a path (a non-empty string), not 5"),
        ('name = "x"\ntags = "a"', "tags", "must be a list, not str"),
        ('name = "x"\ntags = ["a", 2]', "tags[1]", "must be a string, not 2"),
        ('name = "x"\nextra = 1', "extra", "must be a table, not int"),
        ('name = "x"\nextra = { one = "1" }', "extra.one", "must be an integer, not '1'"),
        ('name = "x"\nadapters = 1', "adapters", "must be a table, not int"),
        ('name = "x"\nadapters = { coap = [] }', "adapters.coap", "must be a table, not list"),
        ('name = "x"\n[adapters.coap]\nport = "5683"', "adapters.coap.port", "must be an integer, not '5683'"),
    ],
)
def test_wrong_types_name_the_key_and_what_is_allowed(text: str, key_path: str, problem: str) -> None:
    exc = _error(text)
    assert (exc.key_path, exc.problem) == (key_path, problem)
    assert str(exc) == f"{key_path}: {problem}"


def test_literal_choices_are_listed() -> None:
    exc = _error('name = "x"\nlevel = "TRACE"')
    assert exc.key_path == "level"
    assert exc.problem == "'TRACE' is not allowed: must be one of 'DEBUG', 'INFO'"
    exc = _error('name = "x"\n[adapters.coap]\nmode = "some"')
    assert str(exc) == "adapters.coap.mode: 'some' is not allowed: must be one of 'paired', 'any'"


def test_required_field() -> None:
    exc = _error("count = 1")
    assert str(exc) == "name: is required"
    with pytest.raises(ConfigValueError) as caught:
        build(Root, {"adapters": {"coap": {}}})
    assert (caught.value.key_path, caught.value.problem) == ("name", "is required")


def test_post_init_errors_get_the_tables_key_path() -> None:
    exc = _error('name = "x"\n[adapters.coap]\nport = 70000')
    assert (exc.key_path, exc.problem) == ("adapters.coap.port", "must be between 0 and 65535")
    assert str(exc) == "adapters.coap.port: must be between 0 and 65535"
    # A plain ValueError from __post_init__ is named by its table.
    exc = _error('name = "x"\n[limits]\nratio = 1.5')
    assert str(exc) == "limits: ratio must be at most 1"
    # At the top level a ConfigValueError keeps its own key.
    with pytest.raises(ConfigValueError) as caught:
        build(Coap, {"port": -1})
    assert str(caught.value) == "port: must be between 0 and 65535"


def test_relative_paths_are_resolved_against_the_config_files_folder(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "roost.toml"
    path.write_text('name = "x"\nca_file = "certs/ca.pem"\n[adapters]\nstore = "../var/adapters"\n')
    cfg = load(Root, path)
    folder = (tmp_path / "etc").resolve()
    assert cfg.ca_file == folder / "certs/ca.pem"
    assert cfg.adapters.store == folder / "../var/adapters"
    assert cfg.state_dir == folder / "state"  # a default path, too


def test_default_paths_of_left_out_tables_are_resolved_too(tmp_path: Path) -> None:
    path = tmp_path / "roost.toml"
    path.write_text('name = "x"\n')
    cfg = load(Root, path)
    assert cfg.state_dir == tmp_path.resolve() / "state"
    assert cfg.adapters.store == tmp_path.resolve() / "adapters"  # [adapters] is not in the file at all
    assert cfg.adapters.coap == Coap()


def test_absolute_and_home_paths_are_kept(tmp_path: Path) -> None:
    cfg = loads(Root, 'name = "x"\nstate_dir = "/srv/state"\nca_file = "~/ca.pem"', base_dir=tmp_path)
    assert cfg.state_dir == Path("/srv/state")
    assert cfg.ca_file == Path("~/ca.pem").expanduser()


def test_load_lets_file_and_toml_errors_through(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(Root, tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(tomllib.TOMLDecodeError):
        load(Root, bad)


def test_build_refuses_a_non_table() -> None:
    with pytest.raises(ConfigValueError) as caught:
        build(Root, ["name"])
    assert (caught.value.key_path, caught.value.problem) == ("", "must be a table, not list")
    assert str(caught.value) == "must be a table, not list"


def test_config_value_error_is_a_value_error() -> None:
    exc = ConfigValueError("a.b", "bad")
    assert isinstance(exc, ValueError)
    assert (str(exc), exc.key_path, exc.problem) == ("a.b: bad", "a.b", "bad")


def test_describe_lists_every_option_with_its_default_and_doc() -> None:
    rows = describe(Root)
    assert [key for key, _, _ in rows] == [
        "name",
        "enabled",
        "count",
        "ratio",
        "state_dir",
        "ca_file",
        "tags",
        "level",
        "extra",
        "adapters.coap.port",
        "adapters.coap.mode",
        "adapters.store",
        "limits.ratio",
    ]
    by_key = {key: (default, text) for key, default, text in rows}
    assert by_key["name"] == ("(required)", "A required name")
    assert by_key["count"] == ("3", "How many")
    assert by_key["extra"] == ("{}", "Named numbers")
    assert by_key["adapters.coap.port"] == ("5683", "UDP port")
    assert by_key["state_dir"] == ('"state"', "State folder")  # as written in TOML
    assert all(text for _, _, text in rows)


def test_doc_keeps_the_text_in_the_fields_metadata() -> None:
    fields = {f.name: f for f in dataclasses.fields(Coap)}
    assert fields["port"].metadata["doc"] == "UDP port"
    assert fields["port"].default == 5683


@dataclass(frozen=True, slots=True, kw_only=True)
class Many:
    coaps: tuple[Coap, ...] = doc("Several CoAP listeners ([[coaps]] tables)", default=())


def test_arrays_of_tables_name_the_index() -> None:
    cfg = loads(Many, "[[coaps]]\nport = 1\n[[coaps]]\nmode = 'any'\n")
    assert cfg.coaps == (Coap(port=1), Coap(mode="any"))
    with pytest.raises(ConfigValueError) as caught:
        loads(Many, "[[coaps]]\nport = 1\n[[coaps]]\nport = 65536\n")
    assert str(caught.value) == "coaps[1].port: must be between 0 and 65535"
    with pytest.raises(ConfigValueError) as caught:
        loads(Many, "[[coaps]]\nport = 1\n[[coaps]]\nhost = 'x'\n")
    assert caught.value.key_path == "coaps[1].host"


@dataclass(frozen=True, slots=True, kw_only=True)
class Port:
    path: Path = doc("Device path")
    baud: int = doc("Baud rate", default=9600)


@dataclass(frozen=True, slots=True, kw_only=True)
class WithPorts:
    ports: tuple[Port, ...] = doc("Serial ports, one [[ports]] table each", default=())


def test_an_array_of_tables_is_documented_entry_by_entry_and_loads_with_indexed_errors(tmp_path: Path) -> None:
    rows = describe(WithPorts)
    assert rows == [
        ("ports", "[]", "Serial ports, one [[ports]] table each"),
        ("ports[].path", "(required)", "Device path"),
        ("ports[].baud", "9600", "Baud rate"),
    ]
    cfg = loads(
        WithPorts, '[[ports]]\npath = "/dev/ttyS0"\n[[ports]]\npath = "tty1"\nbaud = 115200\n', base_dir=tmp_path
    )
    assert cfg.ports == (Port(path=Path("/dev/ttyS0")), Port(path=tmp_path / "tty1", baud=115200))
    with pytest.raises(ConfigValueError) as caught:
        loads(WithPorts, '[[ports]]\npath = "a"\n[[ports]]\npath = "b"\nbaud = "fast"\n')
    assert caught.value.key_path == "ports[1].baud"
