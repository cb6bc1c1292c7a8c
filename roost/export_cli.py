"""``roost cloud export`` and ``roost cloud report``: readings as CSV or Parquet, and a tenant's daily report.

    roost cloud export -c cloud.toml --tenant acme --since 2026-11-18T00:00:00Z --until 2026-11-19T00:00:00Z \\
        --format parquet -o acme.parquet          # from the store the config names (SQLite or PostgreSQL)
    roost cloud export --url https://cloud.example --token-file token --tenant acme ... -o acme.csv   # via the API
    roost cloud report -c cloud.toml --tenant acme --day 2026-11-18 [--out DIR]
    roost cloud report --url https://cloud.example --token-file token --tenant acme --day 2026-11-18 --out DIR

The export goes to ``-o FILE`` (``-`` for stdout); the report's files go to ``--out`` (default: the config's
``[reports] folder``). A one-line JSON summary goes to stdout (stderr when the export itself goes to stdout);
errors go to stderr with exit code 1. docs/reports.md tells what the columns and figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

_TIMEOUT_S = 300.0


def _store(config: Any) -> Any:
    """The store the config names, for reading only (not opened: opening also marks every gateway offline)."""
    from cloud.stores import make_store

    if config.store.backend == "sqlite" and not config.store.path.exists():
        raise ValueError(f"{config.store.path}: no store there yet (has the cloud run with this config?)")
    return make_store(config)


def _time_us(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    from cloud.api import parse_time
    from cloud.errors import ApiError

    try:
        return parse_time(name, text)
    except ApiError as exc:
        raise ValueError(str(exc)) from None


def _request(args: argparse.Namespace) -> Any:
    from cloud.export_request import ExportRequest

    return ExportRequest(
        tenant=args.tenant,
        format=args.format,
        gateway=args.gateway,
        sensor=args.sensor,
        metric=args.metric,
        since_us=_time_us("--since", args.since),
        until_us=_time_us("--until", args.until),
        resolution=args.resolution,
    )


def _token(args: argparse.Namespace) -> dict[str, str]:
    if not args.token_file:
        return {}
    return {"Authorization": f"Bearer {Path(args.token_file).read_text(encoding='utf-8').strip()}"}


def _problem(resp: Any) -> str:
    try:
        body = json.loads(resp.read() if hasattr(resp, "read") else resp.content)
        detail = body.get("detail") or body.get("message")
    except (ValueError, AttributeError):
        detail = None
    return f"the cloud answered {resp.status_code}: {detail or resp.reason_phrase}"


async def _export_local(args: argparse.Namespace, out: Any) -> int:
    from cloud import config as cloud_config
    from cloud.export import export_chunks

    req = _request(args)
    store = _store(cloud_config.load(Path(args.config)))
    size = 0
    try:
        async for chunk in export_chunks(store, req):
            await asyncio.to_thread(out.write, chunk)
            size += len(chunk)
    finally:
        await store.close()
    return size


async def _export_remote(args: argparse.Namespace, out: Any) -> int:
    import httpx

    _request(args)  # the same checks as the cloud's, before asking it
    params = {
        k: v
        for k, v in {
            "format": args.format, "tenant": args.tenant, "gateway": args.gateway, "sensor": args.sensor,
            "metric": args.metric, "since": args.since, "until": args.until, "resolution": args.resolution,
        }.items()
        if v is not None
    }  # fmt: skip
    size = 0
    async with (
        httpx.AsyncClient(base_url=args.url.rstrip("/"), headers=_token(args), timeout=_TIMEOUT_S) as client,
        client.stream("GET", "/api/v1/export", params=params) as resp,
    ):
        if resp.status_code != 200:
            await resp.aread()
            raise ValueError(_problem(resp))
        async for chunk in resp.aiter_bytes():
            await asyncio.to_thread(out.write, chunk)
            size += len(chunk)
    return size


def run_export(args: argparse.Namespace) -> int:
    """``roost cloud export``: 0 when the file is written, 1 on an error (said on stderr)."""
    import httpx

    from cloud.errors import CloudError
    from cloud.export_request import ExportInvalid

    if (args.config is None) == (args.url is None):
        print("roost cloud export: give either --config (read the store) or --url (ask the API)", file=sys.stderr)
        return 1
    to_stdout = args.output == "-"
    target = Path(args.output)
    part = target.with_name(target.name + ".part")
    try:
        with contextlib.nullcontext(sys.stdout.buffer) if to_stdout else part.open("wb") as out:
            fetch = _export_remote if args.url else _export_local
            size = asyncio.run(fetch(args, out))
        if not to_stdout:
            part.replace(target)
    except (CloudError, ExportInvalid, ValueError, OSError, httpx.HTTPError) as exc:
        print(f"roost cloud export: {exc}", file=sys.stderr)
        return 1
    finally:
        if not to_stdout:
            part.unlink(missing_ok=True)
    summary = {"file": str(target) if not to_stdout else "-", "format": args.format, "bytes": size}
    print(json.dumps(summary), file=sys.stderr if to_stdout else sys.stdout)
    return 0


async def _report_local(args: argparse.Namespace) -> dict[str, Any]:
    from cloud import config as cloud_config
    from cloud.fleet.registry import FleetRegistry
    from cloud.reports.build import make_report, parse_day
    from cloud.reports.service import registry_sites, traffic_path
    from cloud.reports.traffic import Traffic

    day = parse_day(args.day)
    cfg = cloud_config.load(Path(args.config))
    folder = Path(args.out) if args.out else cfg.reports.folder / args.tenant / day.isoformat()
    store = _store(cfg)
    registry = FleetRegistry(cfg.store.path.parent / "fleet.sqlite")
    await registry.open()
    try:
        report = await make_report(
            store, Traffic(traffic_path(cfg)), await registry_sites(registry)(args.tenant),
            tenant=args.tenant, day=day, folder=folder,
        )  # fmt: skip
    finally:
        await registry.close()
        await store.close()
    return {"id": report["id"], "folder": str(folder), "files": report["files"], "sites": report["sites"]}


async def _report_remote(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from cloud.reports.build import parse_day

    parse_day(args.day)
    if not args.out:
        raise ValueError("--url needs --out DIR (where to put the report's files)")
    folder = Path(args.out)
    async with httpx.AsyncClient(base_url=args.url.rstrip("/"), headers=_token(args), timeout=_TIMEOUT_S) as client:
        resp = await client.post("/api/v1/reports", json={"tenant": args.tenant, "day": args.day})
        if resp.status_code not in (200, 201):
            raise ValueError(_problem(resp))
        made = resp.json()
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        for name, href in made["files"].items():
            got = await client.get(href)
            if got.status_code != 200:
                raise ValueError(f"{name}: {_problem(got)}")
            await asyncio.to_thread((folder / name).write_bytes, got.content)
        figures = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return {"id": made["id"], "folder": str(folder), "files": list(made["files"]), "sites": figures["sites"]}


def run_report(args: argparse.Namespace) -> int:
    """``roost cloud report``: 0 when the report is written, 1 on an error (said on stderr)."""
    import httpx

    from cloud.errors import CloudError
    from wire.names import check_tenant

    if (args.config is None) == (args.url is None):
        print("roost cloud report: give either --config (read the store) or --url (ask the API)", file=sys.stderr)
        return 1
    try:
        check_tenant(args.tenant)
        summary = asyncio.run(_report_remote(args) if args.url else _report_local(args))
    except (CloudError, ValueError, OSError, KeyError, httpx.HTTPError) as exc:
        print(f"roost cloud report: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


def _source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="cloud.toml: read the store it names (on the cloud's host)")
    p.add_argument("--url", help="the cloud's base URL: ask its API instead (https://cloud.example)")
    p.add_argument("--token-file", help="with --url: a file holding the bearer token (roost cloud admin token)")
    p.add_argument("--tenant", required=True, help="the tenant")


def add_parsers(cloud_actions: Any) -> None:
    """Add ``export`` and ``report`` under ``roost cloud``."""
    e = cloud_actions.add_parser("export", help="readings of a range as CSV or Parquet (docs/reports.md)")
    _source(e)
    e.add_argument("--since", help="start, inclusive: RFC 3339 (2026-11-18T00:00:00Z) or epoch seconds")
    e.add_argument("--until", help="end, exclusive: RFC 3339 or epoch seconds")
    e.add_argument("--gateway", help="only this gateway")
    e.add_argument("--sensor", help="only this sensor")
    e.add_argument("--metric", help="only this metric")
    e.add_argument("--resolution", default="raw", choices=["raw", "1m", "1h"], help="raw readings or rollups")
    e.add_argument("--format", default="csv", choices=["csv", "parquet"], help="file format (default csv)")
    e.add_argument("-o", "--output", required=True, help="the file to write, - for stdout")
    e.set_defaults(func=run_export)
    r = cloud_actions.add_parser("report", help="a tenant's daily report per site: HTML and CSV (docs/reports.md)")
    _source(r)
    r.add_argument("--day", required=True, help="the UTC day, YYYY-MM-DD")
    r.add_argument("--out", help="folder for the report's files (default: [reports] folder/tenant/day)")
    r.set_defaults(func=run_report)
