"""Write TOML: the few value types a generated gateway.toml holds (tables, arrays of tables, scalars, lists)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any


def dumps(data: Mapping[str, Any], header: str = "") -> str:
    """``data`` as TOML text, tables after the plain keys, ``header`` as comment lines on top."""
    out: list[str] = [f"# {line}".rstrip() for line in header.splitlines()]
    _table(out, "", data)
    return "\n".join(out).lstrip("\n") + "\n"


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(out: list[str], prefix: str, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if not isinstance(value, Mapping) and not _is_table_list(value):
            out.append(f"{_key(key)} = {value_text(value)}")
    for key, value in data.items():
        path = f"{prefix}.{_key(key)}" if prefix else _key(key)
        if isinstance(value, Mapping):
            scalars = [k for k, v in value.items() if not isinstance(v, Mapping) and not _is_table_list(v)]
            if scalars or not value:
                out.extend(["", f"[{path}]"])
            _table(out, path, value)
        elif _is_table_list(value):
            for item in value:
                out.extend(["", f"[[{path}]]"])
                _table(out, path, item)


def _key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) and key.isascii() else json.dumps(key)


def value_text(value: Any) -> str:
    """One TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no TOML form here")
        return repr(value)
    if isinstance(value, str | PurePath):
        return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} has no TOML form here")


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    return value_text(value)
