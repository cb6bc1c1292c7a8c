"""``roost gateway update|boot-check|update-status``: software updates on the gateway itself (docs/ota.md).

``update`` installs a bundle (a URL or a file, e.g. from a USB stick) into the inactive slot and switches;
the service must then be restarted. ``boot-check`` is what the service runs before each start
(``ExecStartPre``): it ends interrupted updates and rolls back a new version that did not confirm itself.
All three read the ``[update]`` table of gateway.toml.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parsers(gateway_actions: Any) -> None:
    """Add the update actions under ``roost gateway``."""
    up = gateway_actions.add_parser("update", help="install a signed bundle into the inactive slot and switch to it")
    up.add_argument("source", help="the bundle: an http(s) URL or a file")
    up.add_argument("--config", "-c", required=True, help="gateway.toml")
    up.add_argument("--sha256", default=None, help="the bundle file's SHA-256, when known")
    up.add_argument("--force", action="store_true", help="install a lower or the same version too")
    up.set_defaults(func=update_command)
    bc = gateway_actions.add_parser("boot-check", help="before a start: end interrupted updates, roll back if due")
    bc.add_argument("--config", "-c", required=True, help="gateway.toml")
    bc.set_defaults(func=boot_check_command)
    st = gateway_actions.add_parser("update-status", help="the slots, the current version and the last update")
    st.add_argument("--config", "-c", required=True, help="gateway.toml")
    st.set_defaults(func=status_command)


def _update_config(path: str) -> Any:
    from gateway import config as gwconfig
    from gateway.errors import ConfigError

    try:
        cfg = gwconfig.load(Path(path))
    except ConfigError as exc:
        print(f"roost: {exc}", file=sys.stderr)
        return None
    if cfg.update.root is None:
        print(f"roost: {path}: software updates are off (no [update] root)", file=sys.stderr)
        return None
    return cfg


def update_command(args: argparse.Namespace) -> int:
    """``roost gateway update``."""
    from gateway.dm.ota.__main__ import main as ota_main

    cfg = _update_config(args.config)
    if cfg is None:
        return 2
    u = cfg.update
    argv = [
        "update", "--root", str(u.root), "--public-key", str(u.public_key_file), "--hardware", u.machine(),
        "--confirm-deadline-s", str(u.confirm_deadline_s), "--install-timeout-s", str(u.timeout_s),
    ]  # fmt: skip
    if args.sha256:
        argv += ["--sha256", args.sha256]
    if args.force:
        argv.append("--force")
    if cfg.cloud.ca_file is not None:
        argv += ["--ca-file", str(cfg.cloud.ca_file)]
    return ota_main([*argv, args.source])


def boot_check_command(args: argparse.Namespace) -> int:
    """``roost gateway boot-check``."""
    from gateway.dm.ota import slots

    cfg = _update_config(args.config)
    if cfg is None:
        return 2
    try:
        out = slots.boot_check(cfg.update.root, max_boots=cfg.update.max_boots)
    except (slots.SlotError, OSError) as exc:
        print(f"roost: boot check: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


def status_command(args: argparse.Namespace) -> int:
    """``roost gateway update-status``."""
    from gateway.dm.ota import slots

    cfg = _update_config(args.config)
    if cfg is None:
        return 2
    print(json.dumps(slots.status(cfg.update.root), indent=1, sort_keys=True))
    return 0
