"""The DM agent's ``update`` and ``update-status`` commands.

``update`` ``{"url": "https://…/bundle.tar", "sha256": "<hex, optional>", "force": false}`` runs the updater
in a process of its own (``python -m gateway.dm.ota update``), answers what it did (or why the bundle was
refused: ``bad-signature``, ``hash-mismatch``, ``lower-version``, ``wrong-hardware``, ...), then restarts
the gateway ``restart_delay_s`` later so the new version starts on probation. ``update-status`` answers
the slots, the current version and where the last update stands.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.dm.commands import CommandFailed, Dispatcher, InvalidArguments
from gateway.dm.ota import slots
from gateway.dm.ota.config import UpdateSection

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _restart() -> None:
    """End the daemon cleanly; the service manager starts it again from the new ``current``."""
    os.kill(os.getpid(), signal.SIGTERM)


def worker_argv(cfg: UpdateSection, source: str, *, sha256: str | None, force: bool, ca_file: Path | None) -> list[str]:
    """The updater process's command line."""
    assert cfg.root is not None and cfg.public_key_file is not None
    argv = [
        sys.executable, "-m", "gateway.dm.ota", "update", "--json",
        "--root", str(cfg.root), "--public-key", str(cfg.public_key_file), "--hardware", cfg.machine(),
        "--confirm-deadline-s", str(cfg.confirm_deadline_s), "--install-timeout-s", str(cfg.timeout_s),
    ]  # fmt: skip
    if sha256:
        argv += ["--sha256", sha256]
    if force:
        argv.append("--force")
    if ca_file is not None:
        argv += ["--ca-file", str(ca_file)]
    return [*argv, source]


async def run_worker(argv: list[str], timeout_s: float) -> dict[str, Any]:
    """Run the updater process; its last stdout line is the JSON outcome. Killed when this is cancelled."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except BaseException:  # timeout, or the daemon stopping: the boot check ends what the kill interrupted
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        outcome = json.loads(lines[-1]) if lines else None
    except ValueError:
        outcome = None
    if not isinstance(outcome, dict):
        tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-3:])
        raise CommandFailed(f"the updater ended with exit {proc.returncode} and no outcome: {tail}")
    return outcome


def register(
    agent: Dispatcher,
    cfg: UpdateSection,
    *,
    ca_file: Path | None = None,
    restart: Callable[[], None] = _restart,
) -> None:
    """Offer ``update`` and ``update-status`` on ``agent``."""
    background: set[asyncio.Handle] = set()

    def root() -> Path:
        if cfg.root is None:
            raise CommandFailed("software updates are off on this gateway (gateway.toml has no [update] root)")
        return cfg.root

    async def update(args: dict[str, Any]) -> dict[str, Any]:
        where = root()
        url, sha256, force = args.get("url"), args.get("sha256"), args.get("force", False)
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidArguments("'url' must be the bundle's http:// or https:// URL")
        if sha256 is not None and (not isinstance(sha256, str) or not _HEX64.fullmatch(sha256)):
            raise InvalidArguments("'sha256' must be the bundle file's SHA-256 in 64 hex digits")
        if not isinstance(force, bool):
            raise InvalidArguments("'force' must be true or false")
        argv = worker_argv(cfg, url, sha256=sha256, force=force, ca_file=ca_file)
        outcome = await run_worker(argv, cfg.timeout_s)
        if not outcome.get("ok"):
            raise CommandFailed(f"{outcome.get('reason', 'failed')}: {outcome.get('error', 'no reason given')}")
        result = dict(outcome.get("result") or {})
        result["restarting_in_s"] = cfg.restart_delay_s
        background.add(asyncio.get_running_loop().call_later(cfg.restart_delay_s, restart))
        result["root"] = str(where)
        return result

    async def update_status(args: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(slots.status, root())

    agent.register("update", update, timeout_s=cfg.timeout_s + 30)
    agent.register("update-status", update_status)
