"""Typed TOML tables into frozen dataclasses, with errors that name the file and the key path.

Shared by the gateway's and the cloud's config files (and the rule files later): each config is
a tree of frozen dataclasses whose fields carry a one-line ``doc`` in their metadata, so the
documented defaults and the loader can never disagree. Unknown keys are refused.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


class ConfigValueError(ValueError):
    """A value that does not fit its field; ``key_path`` says where (``adapters.coap.port``)."""

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(f"{key_path}: {problem}" if key_path else problem)
        self.key_path = key_path
        self.problem = problem


def doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field with a documented default: ``port: int = doc("UDP port", default=5683)``."""
    metadata = {"doc": text}
    return dataclasses.field(metadata=metadata, **kwargs)


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", Path: "a path"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(tp: Any, value: Any, key_path: str, base_dir: Path | None) -> Any:
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        errors = []
        for a in args:
            try:
                return _convert(a, value, key_path, base_dir)
            except ConfigValueError as exc:
                errors.append(exc.problem)
        raise ConfigValueError(key_path, "; or ".join(errors))
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigValueError(key_path, f"{value!r} is not allowed: must be {_type_name(tp)}")
        return value
    if origin in (list, tuple):
        (inner, *_rest) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigValueError(key_path, f"must be a list, not {type(value).__name__}")
        return tuple(_convert(inner, v, _join(key_path, i), base_dir) for i, v in enumerate(value))
    if origin is dict:
        _k, inner = get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigValueError(key_path, f"must be a table, not {type(value).__name__}")
        return {k: _convert(inner, v, _join(key_path, k), base_dir) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build(tp, value, key_path=key_path, base_dir=base_dir)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigValueError(key_path, f"must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigValueError(key_path, f"must be an integer, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigValueError(key_path, f"must be a number, not {value!r}")
        if not math.isfinite(value):  # TOML has inf and nan; no option means either
            raise ConfigValueError(key_path, f"must be a finite number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigValueError(key_path, f"must be a string, not {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigValueError(key_path, f"must be a path (a non-empty string), not {value!r}")
        p = Path(value).expanduser()
        # Relative paths are resolved against the config file's folder.
        return (base_dir / p) if (base_dir is not None and not p.is_absolute()) else p
    raise ConfigValueError(key_path, f"unsupported field type {tp!r}")  # pragma: no cover - programming error


def build(cls: type[T], data: Any, *, key_path: str = "", base_dir: Path | None = None) -> T:
    """Build dataclass ``cls`` from a TOML table, refusing unknown keys and wrong types."""
    if not isinstance(data, Mapping):
        raise ConfigValueError(key_path, f"must be a table, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields)) or "none"
        raise ConfigValueError(_join(key_path, unknown[0]), f"unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, _join(key_path, name), base_dir)
    for name, f in fields.items():
        if name in kwargs:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigValueError(_join(key_path, name), "is required")
        if base_dir is None:
            continue
        if isinstance(f.default, Path) and not f.default.is_absolute():
            kwargs[name] = base_dir / f.default  # default paths, too, are relative to the config file
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
            if dataclasses.is_dataclass(default) and not isinstance(default, type):
                kwargs[name] = _rebase(default, base_dir)  # ... also those of a sub-table left out
    try:
        return cls(**kwargs)
    except ConfigValueError as exc:
        # __post_init__ checks raise with a key relative to their own table
        raise ConfigValueError(_join(key_path, exc.key_path) if exc.key_path else key_path, exc.problem) from exc
    except (ValueError, TypeError) as exc:
        raise ConfigValueError(key_path, str(exc)) from exc


def _rebase(obj: Any, base_dir: Path) -> Any:
    """``obj`` (a dataclass instance) with its relative paths, and those of its sub-tables, under ``base_dir``."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, Path) and not value.is_absolute():
            changes[f.name] = base_dir / value
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            rebased = _rebase(value, base_dir)
            if rebased is not value:
                changes[f.name] = rebased
    return dataclasses.replace(obj, **changes) if changes else obj


def load(cls: type[T], path: Path) -> T:
    """Load ``path`` as TOML into ``cls``; raise ConfigValueError (``key_path``) or OSError/TOMLDecodeError."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return build(cls, data, base_dir=path.parent.resolve())


def loads(cls: type[T], text: str, *, base_dir: Path | None = None) -> T:
    """Like :func:`load`, from a string (for embedded defaults)."""
    return build(cls, tomllib.loads(text), base_dir=base_dir)


def as_toml(value: Any) -> str:
    """A default as it would be written in the TOML file."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(as_toml(v) for v in value) + "]"
    return repr(value)


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message names the file, the key path and the problem."""

    def __init__(self, path: Path | str, key_path: str, problem: str) -> None:
        super().__init__(f"{path}: {key_path}: {problem}" if key_path else f"{path}: {problem}")
        self.path = str(path)
        self.key_path = key_path
        self.problem = problem


def load_file(cls: type[T], path: Path, check: Callable[[T], None] | None = None) -> T:
    """Load ``path`` into ``cls`` (then ``check`` it); every failure is a ConfigFileError naming file and key."""
    try:
        config = load(cls, path)
        if check is not None:
            check(config)
        return config
    except FileNotFoundError as exc:
        raise ConfigFileError(path, "", "no such file") from exc
    except OSError as exc:
        raise ConfigFileError(path, "", f"cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(path, "", f"is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:  # tomllib.load decodes the bytes itself and lets this through
        raise ConfigFileError(path, "", f"is not valid TOML: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except ConfigValueError as exc:
        raise ConfigFileError(path, exc.key_path, exc.problem) from exc


def load_text(
    cls: type[T], text: str, *, base_dir: Path, name: str = "<embedded>", check: Callable[[T], None] | None = None
) -> T:
    """Like :func:`load_file`, from a string named ``name`` in messages."""
    try:
        config = loads(cls, text, base_dir=base_dir)
        if check is not None:
            check(config)
        return config
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(name, "", f"is not valid TOML: {exc}") from exc
    except ConfigValueError as exc:
        raise ConfigFileError(name, exc.key_path, exc.problem) from exc


def describe(cls: type[Any], prefix: str = "") -> list[tuple[str, str, str]]:
    """(key path, default, doc) for every field of ``cls`` and its sub-tables: the documented defaults."""
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = _join(prefix, f.name)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            rows.extend(describe(tp, path))
            continue
        item = _table_list_item(tp)
        if item is not None:  # an array of tables, e.g. [[adapters.serial]]: document the keys of one entry
            rows.append((path, "[]", str(f.metadata.get("doc", ""))))
            rows.extend(describe(item, f"{path}[]"))
            continue
        if f.default is not dataclasses.MISSING:
            default = as_toml(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = as_toml(f.default_factory())
        else:
            default = "(required)"
        rows.append((path, default, str(f.metadata.get("doc", ""))))
    return rows


def _table_list_item(tp: Any) -> type[Any] | None:
    """The dataclass of ``tuple[Section, ...]`` (a TOML array of tables), else None."""
    if get_origin(tp) not in (list, tuple):
        return None
    args = get_args(tp)
    inner = args[0] if args else None
    return inner if dataclasses.is_dataclass(inner) and isinstance(inner, type) else None
