"""The daily report as one self-contained HTML page: tables per site, uptime and completeness bars, hourly charts."""

from __future__ import annotations

from html import escape
from typing import Any

from cloud.reports.svg import hourly_band, share_bars

MAX_CHARTS = 200
"""Hourly charts drawn at most (the figures of every series are in the tables and sensors.csv)."""

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; color: #1b1f24; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ccd; }
h3 { font-size: 1rem; margin-bottom: .25rem; }
table { border-collapse: collapse; margin: .5rem 0; } th, td { padding: .2rem .6rem; border-bottom: 1px solid #e3e6ea; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } th { text-align: left; }
svg.chart { width: 100%; max-width: 640px; height: auto; display: block; }
.axis { stroke: #667; } .tick, .label, .value { font-size: 11px; fill: #334; }
.band { fill: #9ec5fe; stroke: none; } .range { stroke: #9ec5fe; stroke-width: 4; }
polyline.avg { stroke: #0b5ed7; stroke-width: 2; } circle.avg { fill: #0b5ed7; }
.track { fill: #eef0f3; } .bar { fill: #198754; } .empty, .note { color: #667; }
"""


def _pct(share: Any) -> str:
    return "n/a" if share is None else f"{share * 100:.1f} %"


def _n(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(headers: list[str], rows: list[list[str]], numeric_from: int) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(c)}</td>' if i >= numeric_from else f"<td>{escape(c)}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(report: dict[str, Any], hourly: dict[tuple[str, str, str], list[dict[str, Any]]]) -> str:
    """The report page; ``hourly``: per (gateway, sensor, metric), the hours with min/avg/max."""
    tenant, day = report["tenant"], report["day"]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Roost daily report: {escape(tenant)}, {escape(day)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Daily report of tenant {escape(tenant)} for {escape(day)} (UTC)</h1>",
        f'<p class="note">Made {escape(report["generated_at"])}. Completeness: readings received against those '
        "expected at each sensor's own typical interval that day. Uptime: share of the day's five-minute "
        "periods in which the gateway was heard from. The figures are also in sites.csv, gateways.csv and "
        "sensors.csv beside this page.</p>",
        "<h2>Sites</h2>",
        _table(
            ["Site", "Gateways", "Series", "Readings", "Completeness", "Uptime", "Bytes received", "Alerts raised"],
            [
                [
                    s["site"],
                    _n(s["gateways"]),
                    _n(s["series"]),
                    _n(s["readings"]),
                    _pct(s["completeness"]),
                    _pct(s["uptime"]),
                    _n(s["bytes"]),
                    _n(s["alerts_raised"]),
                ]
                for s in report["sites"]
            ],
            1,
        ),
    ]
    charts = 0
    for site in report["sites"]:
        name = site["site"]
        gateways = [g for g in report["gateways"] if g["site"] == name]
        sensors = [s for s in report["sensors"] if s["site"] == name]
        parts.append(f"<h2>Site {escape(name)}</h2>")
        parts.append(
            _table(
                [
                    "Gateway",
                    "Series",
                    "Readings",
                    "Completeness",
                    "Uptime",
                    "Messages",
                    "Bytes received",
                    "Alerts raised",
                    "Alerts cleared",
                ],
                [
                    [
                        g["gateway"],
                        _n(g["series"]),
                        _n(g["readings"]),
                        _pct(g["completeness"]),
                        _pct(g["uptime"]),
                        _n(g["messages"]),
                        _n(g["bytes"]),
                        _n(g["alerts_raised"]),
                        _n(g["alerts_cleared"]),
                    ]
                    for g in gateways
                ],
                1,
            )
        )
        parts.append(share_bars([(g["gateway"], g["uptime"]) for g in gateways], title=f"Gateway uptime at {name}"))
        if sensors:
            parts.append("<h3>Sensors</h3>")
            parts.append(
                _table(
                    [
                        "Gateway",
                        "Sensor",
                        "Metric",
                        "Unit",
                        "Readings",
                        "Min",
                        "Max",
                        "Average",
                        "Interval (s)",
                        "Expected",
                        "Completeness",
                    ],
                    [
                        [
                            s["gateway"],
                            s["sensor"],
                            s["metric"],
                            s["unit"] or "",
                            _n(s["readings"]),
                            _n(s["min"]),
                            _n(s["max"]),
                            _n(s["avg"]),
                            _n(s["interval_s"]),
                            _n(s["expected"]),
                            _pct(s["completeness"]),
                        ]
                        for s in sensors
                    ],
                    4,
                )
            )
            parts.append(
                share_bars(
                    [(f"{s['gateway']} {s['sensor']}:{s['metric']}", s["completeness"]) for s in sensors],
                    title=f"Data completeness at {name}",
                )
            )
        for s in sensors:
            hours = hourly.get((s["gateway"], s["sensor"], s["metric"]))
            if not hours:
                continue
            if charts == MAX_CHARTS:
                parts.append(f'<p class="note">More series than the {MAX_CHARTS} charts drawn: see sensors.csv.</p>')
                charts += 1
            if charts > MAX_CHARTS:
                continue
            charts += 1
            label = f"{s['sensor']}:{s['metric']} on {s['gateway']}"
            parts.append(f"<h3>{escape(label)}: min, average and max by hour</h3>")
            parts.append(hourly_band(hours, title=label, unit=s["unit"]))
    parts.append("</body></html>")
    return "\n".join(parts)
