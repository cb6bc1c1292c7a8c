"""``roost rules check FILE...`` and ``roost rules run FILE... --input READINGS.jsonl``: test rules before deploying.

``check`` validates rule files: ``FILE: OK (...)`` per file on stdout, or every problem found
(file, line, rule, field) on stderr and exit 1.

``run`` replays recorded readings in event time through the rules: a reactivex HistoricalScheduler
is advanced to each reading's timestamp before the reading is pushed, so windows close, absences
fire and "for at least" conditions hold exactly as they would have on the gateway. Every alert,
annotation, command and derived reading is printed as one JSON object per line on stdout (with a
``type``); a summary goes to stderr. Input lines are JSON objects ``{"ts", "sensor", "metric",
"value", "unit"}`` (``ts``: seconds since the epoch or RFC 3339); a bad line is reported with its
line number and skipped, and the exit code is 1 at the end if there was any.

``--cloud`` runs rules as the cloud does (docs/rules.md, "Rules in the cloud"): each input line names its
``gateway`` (or is a gateway's ``status``, online or offline), and ``--gateways FILE.json`` gives the
gateways' sites and tags; ``check --cloud`` also refuses command targets that name no gateway.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from wire.errors import InvalidName
from wire.names import check_metric, check_sensor
from wire.reading import Reading


def add_parser(commands: Any) -> None:
    """Add ``rules check`` and ``rules run`` to the top-level subcommands."""
    p = commands.add_parser("rules", help="check rule files, replay recorded readings through them")
    sub = p.add_subparsers(dest="rules_action", required=True, metavar="ACTION")
    chk = sub.add_parser("check", help="validate rule files (exit 1 naming the file, line, rule and field)")
    chk.add_argument("files", nargs="+", metavar="FILE", help="rule files (TOML)")
    chk.add_argument("--cloud", action="store_true", help="rules for the cloud: commands must name their gateway")
    chk.set_defaults(func=check_command)
    run = sub.add_parser("run", help="replay readings (JSON lines) in event time; print outputs as JSON lines")
    run.add_argument("files", nargs="+", metavar="FILE", help="rule files (TOML)")
    run.add_argument("--input", "-i", required=True, help="readings, one JSON object per line (- for stdin)")
    run.add_argument(
        "--until",
        default=None,
        help="let time run on to TS after the last reading (epoch seconds, RFC 3339, or +DURATION such as +1h)",
    )
    run.add_argument("--uplink", action="store_true", help="also print the readings uplink shaping keeps")
    run.add_argument(
        "--cloud",
        action="store_true",
        help="run as the cloud does: input lines name their gateway (or are a gateway's online/offline status)",
    )
    run.add_argument("--gateways", metavar="JSON", help='with --cloud: {"gw": {"site": "...", "tags": [...]}}')
    run.set_defaults(func=run_command)


def check_command(args: argparse.Namespace) -> int:
    """Validate each file; 0 when all are fine, 1 otherwise."""
    from rules import RuleError, load_file

    bad = 0
    for f in args.files:
        try:
            rs = load_file(f)
        except RuleError as exc:
            bad += 1
            for e in exc.all():
                print(f"roost rules check: {e}", file=sys.stderr)
            continue
        if getattr(args, "cloud", False):
            from cloud.cloudrules.replay import cloud_problems

            problems = cloud_problems(rs)
            if problems:
                bad += 1
                for p in problems:
                    print(f"roost rules check: {p}", file=sys.stderr)
                continue
        shaping = sum(1 for r in rs.rules if r.is_shaping)
        names = ", ".join(r.name for r in rs.rules)
        print(f"{f}: OK ({len(rs.rules)} rules, {shaping} of them uplink shaping: {names})")
    return 1 if bad else 0


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be seconds since the epoch or an RFC 3339 time")
    if isinstance(value, int | float):
        t = float(value)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{what} {value!r} is not an RFC 3339 time") from exc
        if dt.tzinfo is None:
            raise ValueError(f"{what} {value!r} has no time zone (add Z for UTC)")
        t = dt.timestamp()
    else:
        raise ValueError(f"{what} must be seconds since the epoch or an RFC 3339 time")
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"{what} must be a time after 1970")
    return t


def parse_reading(line: str, *, cloud: bool = False) -> Reading:
    """One input line as a Reading; ValueError saying what is wrong.

    ``cloud``: the line names its gateway (or is a gateway's status), and the reading is the one cloud
    rules see (sensor ``{gateway}/{sensor}``, or the gateway's presence).
    """
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if cloud:
        from cloud.cloudrules.replay import split_line, to_cloud

        gateway, fields, online = split_line(obj)
        reading = None if fields is None else parse_reading(json.dumps(fields))
        return to_cloud(gateway, reading, online, _time(obj.get("ts"), "ts"))
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    unknown = set(obj) - {"ts", "sensor", "metric", "value", "unit"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}: a reading has ts, sensor, metric, value, unit")
    for key in ("ts", "sensor", "metric", "value"):
        if key not in obj:
            raise ValueError(f"{key!r} is missing")
    try:
        sensor, metric = check_sensor(obj["sensor"]), check_metric(obj["metric"])
    except InvalidName as exc:
        raise ValueError(str(exc)) from exc
    value = obj["value"]
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("value must be finite")
        value = float(value)
    elif not isinstance(value, bool | str):
        raise ValueError("value must be a number, true/false or a string")
    unit = obj.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise ValueError("unit must be a string")
    return Reading(sensor, metric, value, _time(obj["ts"], "ts"), unit)


def _lines(source: str) -> Iterator[tuple[int, str]]:
    fh: TextIO = sys.stdin if source == "-" else Path(source).open(encoding="utf-8")  # noqa: SIM115
    try:
        yield from enumerate(fh, start=1)
    finally:
        if fh is not sys.stdin:
            fh.close()


def _until(text: str, last: float) -> float:
    if text.startswith("+"):
        from rules.loader import parse_duration

        return last + parse_duration(text[1:])
    try:
        return _time(float(text), "--until")
    except ValueError:
        return _time(text, "--until")


def run_command(args: argparse.Namespace) -> int:
    """Replay and print; 0 when every input line was good, 1 otherwise (or when the rules are bad)."""
    from reactivex.scheduler import HistoricalScheduler

    from rules import Engine, Output, RuleError, as_json, load_files

    try:
        ruleset = load_files(args.files)
    except RuleError as exc:
        for e in exc.all():
            print(f"roost rules run: {e}", file=sys.stderr)
        return 1
    tag_source = None
    if args.cloud or args.gateways:
        from cloud.cloudrules.replay import load_gateways
        from cloud.cloudrules.replay import tag_source as cloud_tags

        if not args.cloud:
            print("roost rules run: --gateways goes with --cloud", file=sys.stderr)
            return 2
        try:
            tag_source = cloud_tags(load_gateways(args.gateways))
        except ValueError as exc:
            print(f"roost rules run: {exc}", file=sys.stderr)
            return 2
    out = sys.stdout
    kinds: Counter[str] = Counter()

    def sink(outputs: Sequence[Output]) -> None:
        for o in outputs:
            doc = as_json(o)
            kinds[doc["type"]] += 1
            out.write(json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n")

    # the virtual clock starts at the first reading (so an absence rule does not count from 1970)
    scheduler: HistoricalScheduler | None = None
    engine: Engine | None = None
    bad = total = kept = 0
    last = -math.inf
    try:
        for number, line in _lines(args.input):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                r = parse_reading(line, cloud=args.cloud)
            except ValueError as exc:
                bad += 1
                print(f"roost rules run: {args.input}:{number}: {exc}", file=sys.stderr)
                continue
            total += 1
            if scheduler is None or engine is None:
                scheduler = HistoricalScheduler(datetime.fromtimestamp(r.ts, UTC))
                engine = Engine(ruleset, scheduler=scheduler, sink=sink, tag_source=tag_source)
            if r.ts > last:
                last = r.ts
                scheduler.advance_to(datetime.fromtimestamp(r.ts, UTC))  # timers due before this reading fire first
            engine.push([r])
            for k in engine.shape([r]):
                kept += 1
                if args.uplink:
                    out.write(json.dumps({"type": "reading", **k._asdict()}, separators=(",", ":")) + "\n")
        if scheduler is None or engine is None:
            print("roost rules run: no readings in the input", file=sys.stderr)
            return 1
        if args.until is not None:
            try:
                until = _until(args.until, last)
            except ValueError as exc:
                print(f"roost rules run: {exc}", file=sys.stderr)
                return 2
            if until > last:
                scheduler.advance_to(datetime.fromtimestamp(until, UTC))
        engine.close()
    except OSError as exc:
        print(f"roost rules run: {args.input}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    out.flush()
    stats = engine.stats()
    errors = sum(s.errors for s in stats.values())
    late = sum(s.late for s in stats.values())
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no outputs"
    print(
        f"roost rules run: {total} readings ({bad} bad lines); {summary}; uplink keeps {kept} of {total}; "
        f"{late} late, {errors} rule errors",
        file=sys.stderr,
    )
    return 1 if bad else 0
