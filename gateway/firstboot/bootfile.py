"""Taking the secrets off the boot partition once applied: roost.toml becomes roost.toml.applied.

The Wi-Fi password, the claim token, the PIN and BLE bind keys are replaced by ``"(applied, removed)"``
in place, so the installer's comments and layout stay; the copy is written (and synced) before the
original is deleted, so a power cut leaves one or the other, never neither.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from gateway.firstboot import paths
from gateway.firstboot.problems import key_lines
from gateway.firstboot.tomlwrite import dumps
from gateway.firstboot.validate import REMOVED, SECRETS

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def secret_keys(data: dict[str, Any]) -> list[str]:
    """The secret keys present in parsed roost.toml ``data`` (``wifi.psk``, ``sensors[2].bind_key``, ...)."""
    found = [key for key in SECRETS if _get(data, key) is not None]
    sensors = data.get("sensors")
    if isinstance(sensors, list):
        found += [f"sensors[{i}].bind_key" for i, s in enumerate(sensors) if isinstance(s, dict) and "bind_key" in s]
    return found


def _get(data: dict[str, Any], key: str) -> Any:
    value: Any = data
    for part in re.findall(r"[A-Za-z_]+|\d+", key):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _set(data: dict[str, Any], key: str, new: Any) -> None:
    parts = re.findall(r"[A-Za-z_]+|\d+", key)
    value: Any = data
    for part in parts[:-1]:
        value = value[int(part)] if isinstance(value, list) else value[part]
    value[parts[-1]] = new


def redacted(text: str) -> str:
    """``text`` with every secret's value replaced by "(applied, removed)"; comments kept where possible."""
    data = tomllib.loads(text)
    keys = secret_keys(data)
    where = key_lines(text)
    lines = text.splitlines(keepends=True)
    for key in keys:
        number = where.get(key)
        if number is not None:
            lines[number - 1] = _replace_value(lines[number - 1])
    out = "".join(lines)
    if _clean(out, keys):
        return out
    for key in keys:  # a form the line edit does not handle (a multi-line string, an inline table): rewrite it
        _set(data, key, REMOVED)
    out = dumps(data, "roost.toml as first boot applied it (its secrets removed; comments could not be kept).")
    if not _clean(out, keys):  # pragma: no cover - dumps always writes what it was given
        raise ValueError("the secrets could not be taken out of roost.toml")
    return out


def _replace_value(line: str) -> str:
    eq = line.find("=")
    head, rest = line[: eq + 1], line[eq + 1 :]
    stripped = rest.lstrip()
    lead = rest[: len(rest) - len(stripped)]
    m = _STRING.match(stripped)
    if m and not stripped.startswith(('"""', "'''")):
        tail = stripped[m.end() :]
    else:  # a number or a bare value: up to a comment
        cut = stripped.find("#")
        value_end = len(stripped.rstrip("\r\n")) if cut < 0 else cut
        tail = stripped[value_end:]
        if cut >= 0:
            tail = " " + tail.lstrip()
    return f'{head}{lead}"{REMOVED}"{tail}'


def _clean(text: str, keys: list[str]) -> bool:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return all(_get(data, key) == REMOVED for key in keys)


def take_secrets_off(boot_dir: Path) -> str:
    """Write roost.toml.applied without the secrets, then delete roost.toml; the line for the report."""
    source = boot_dir / paths.BOOT_FILE
    text = source.read_bytes().decode("utf-8-sig")
    paths.write_atomic(boot_dir / paths.APPLIED_FILE, redacted(text), mode=None)
    paths.remove(source)
    return f"secrets removed from the boot partition: {paths.BOOT_FILE} is now {paths.APPLIED_FILE}"
