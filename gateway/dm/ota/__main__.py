"""``python -m gateway.dm.ota update|boot-check|confirm|status``: the updater process and the slot tools.

The DM agent's ``update`` command runs ``update --json`` and reads the outcome from the last line of
stdout: ``{"ok": true, "result": {...}}`` or ``{"ok": false, "reason": "bad-signature", "error": "..."}``.
Exit status: 0 done, 3 refused or failed (nothing switched), 1 could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from gateway.dm.ota import slots
from gateway.dm.ota.updater import UpdateError, UpdateRequest, run_update

EXIT_REFUSED = 3


def build_parser() -> argparse.ArgumentParser:
    """The updater's command line."""
    p = argparse.ArgumentParser(prog="python -m gateway.dm.ota")
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser("update", help="download, verify, install into the inactive slot and switch")
    up.add_argument("source", help="the bundle's http(s) URL or a local file")
    up.add_argument("--root", required=True, type=Path)
    up.add_argument("--public-key", required=True, type=Path)
    up.add_argument("--hardware", required=True)
    up.add_argument("--sha256", default=None)
    up.add_argument("--force", action="store_true")
    up.add_argument("--ca-file", type=Path, default=None)
    up.add_argument("--confirm-deadline-s", type=float, default=300.0)
    up.add_argument("--install-timeout-s", type=float, default=900.0)
    up.add_argument("--json", action="store_true", help="print the outcome as one JSON line")
    for name in ("boot-check", "confirm", "status"):
        sp = sub.add_parser(name)
        sp.add_argument("--root", required=True, type=Path)
        sp.add_argument("--max-boots", type=int, default=slots.DEFAULT_MAX_BOOTS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one action; see the module's docstring."""
    args = build_parser().parse_args(argv)
    if args.action != "update":
        return slots.main(["--root", str(args.root), "--max-boots", str(args.max_boots), args.action])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    req = UpdateRequest(
        source=args.source,
        public_key_file=args.public_key,
        hardware=args.hardware,
        sha256=args.sha256,
        force=args.force,
        ca_file=args.ca_file,
        confirm_deadline_s=args.confirm_deadline_s,
        install_timeout_s=args.install_timeout_s,
    )
    try:
        result = run_update(args.root, req, progress=lambda msg: print(f"update: {msg}", file=sys.stderr))
    except UpdateError as exc:
        out = {"ok": False, "reason": exc.reason, "error": str(exc).removeprefix(exc.reason + ": ")}
        print(json.dumps(out) if args.json else f"update refused: {exc}", file=sys.stdout if args.json else sys.stderr)
        return EXIT_REFUSED
    except (slots.SlotError, OSError) as exc:
        out = {"ok": False, "reason": "error", "error": str(exc)}
        print(json.dumps(out) if args.json else f"update failed: {exc}", file=sys.stdout if args.json else sys.stderr)
        return 1
    print(json.dumps({"ok": True, "result": result}) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
