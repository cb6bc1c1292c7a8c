"""``roost rules run --cloud`` and ``roost rules check --cloud``: cloud rules tested on recorded input.

Input lines (JSON) are what the cloud sees, by gateway::

    {"ts": ..., "gateway": "gw-1", "sensor": "freezer-1", "metric": "temperature", "value": -18.5, "unit": "Cel"}
    {"ts": ..., "gateway": "gw-1", "status": "offline"}        # presence: sensor gw-1, metric online, false

The gateways' sites and tags come from a JSON file (``--gateways``), as the fleet registry holds them::

    {"gw-1": {"site": "shop-12", "tags": ["cold-chain", "region=north"]}, ...}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rules
from cloud.cloudrules.naming import cloud_readings, command_target, presence_reading, sensor_tags, tags_by_gateway
from rules.engine import TagSource
from rules.model import CommandAction
from wire.errors import InvalidName
from wire.names import check_gateway
from wire.reading import Reading

STATUS = {"online": True, "offline": False}


def split_line(obj: Any) -> tuple[str, dict[str, Any] | None, bool]:
    """``(gateway, reading fields or None, online)`` of one cloud input object; ValueError saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    gw = obj.get("gateway")
    if not isinstance(gw, str):
        raise ValueError("'gateway' is missing: with --cloud every line names its gateway")
    try:
        check_gateway(gw)
    except InvalidName as exc:
        raise ValueError(str(exc)) from exc
    rest = {k: v for k, v in obj.items() if k != "gateway"}
    if "status" in rest:
        unknown = set(rest) - {"ts", "status"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}: a status line has ts, gateway, status")
        if rest["status"] not in STATUS:
            raise ValueError("status must be 'online' or 'offline'")
        return gw, None, STATUS[rest["status"]]
    return gw, rest, True


def to_cloud(gateway: str, reading: Reading | None, online: bool, ts: float) -> Reading:
    """The reading cloud rules see: ``{gateway}/{sensor}``, or the gateway's presence."""
    if reading is None:
        return presence_reading(gateway, online, ts)
    return cloud_readings(gateway, [reading])[0]


def load_gateways(path: str | None) -> dict[str, dict[str, str]]:
    """``{gateway: tags}`` from a ``--gateways`` file; ValueError naming the file and what is wrong."""
    if path is None:
        return {}
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f'{path}: must be a JSON object {{"gateway": {{"site": ..., "tags": [...]}}}}')
    metas: dict[str, tuple[str | None, list[str]]] = {}
    for gw, entry in doc.items():
        site = entry.get("site") if isinstance(entry, dict) else None
        tags = entry.get("tags", []) if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not (site is None or isinstance(site, str)):
            raise ValueError(f"{path}: {gw}: must be an object with a site (a string) and tags (strings)")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError(f"{path}: {gw}: tags must be a list of strings")
        metas[gw] = (site, tags)
    return tags_by_gateway(metas)


def tag_source(by_gateway: Mapping[str, Mapping[str, str]]) -> TagSource:
    """The engine's ``tag_source`` for these gateways."""
    return lambda sensor: sensor_tags(sensor, by_gateway)


def cloud_problems(ruleset: rules.RuleSet) -> list[str]:
    """What the cloud would refuse in a rule set that loads: command targets that name no gateway."""
    out = []
    for r in ruleset.rules:
        for i, a in enumerate(r.actions):
            if isinstance(a, CommandAction) and "{" not in a.target:
                try:
                    command_target(a.target)
                except ValueError as exc:
                    out.append(f"{r.file}:{r.line}: rule {r.name!r}: action[{i}].target: {exc}")
    return out
