"""The report's charts as inline SVG, drawn here (no script, no web fonts, nothing fetched)."""

from __future__ import annotations

from html import escape

WIDTH = 640
_LEFT = 56
_RIGHT = 8
_TOP = 8
_BOTTOM = 22


def _num(x: float) -> str:
    return f"{x:.1f}"


def _tick(v: float) -> str:
    return f"{v:.4g}"


def _runs(hours: list[dict[str, float]]) -> list[list[dict[str, float]]]:
    """The hours cut into runs of consecutive hours."""
    runs: list[list[dict[str, float]]] = []
    for h in hours:
        if runs and h["hour"] == runs[-1][-1]["hour"] + 1:
            runs[-1].append(h)
        else:
            runs.append([h])
    return runs


def hourly_band(hours: list[dict[str, float]], *, title: str, unit: str | None = None) -> str:
    """Min-to-max band and average line per hour (0-23) of one series; ``hours`` items have hour/min/avg/max."""
    height = 160
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    if not hours:
        return f'<p class="empty">{escape(title)}: no numbers this day.</p>'
    lo = min(h["min"] for h in hours)
    hi = max(h["max"] for h in hours)
    span = (hi - lo) or 1.0

    def x(hour: float) -> float:
        return _LEFT + (hour + 0.5) * plot_w / 24

    def y(v: float) -> float:
        return _TOP + plot_h - (v - lo) / span * plot_h

    suffix = f" {unit}" if unit else ""
    summary = f"{title}: from {_tick(lo)} to {_tick(hi)}{suffix} over {len(hours)} hours"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(summary)}</title>",
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - _RIGHT}" y2="{_TOP + plot_h}"/>',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}"/>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + 10}" text-anchor="end">{escape(_tick(hi))}</text>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + plot_h}" text-anchor="end">{escape(_tick(lo))}</text>',
    ]
    for hour in (0, 6, 12, 18, 23):
        parts.append(f'<text class="tick" x="{_num(x(hour))}" y="{height - 6}" text-anchor="middle">{hour:02d}h</text>')
    for run in _runs(hours):  # an hour without numbers breaks the band and the line
        if len(run) == 1:
            h = run[0]
            parts.append(
                f'<line class="range" x1="{_num(x(h["hour"]))}" y1="{_num(y(h["max"]))}" '
                f'x2="{_num(x(h["hour"]))}" y2="{_num(y(h["min"]))}"/>'
            )
            continue
        top = " ".join(f"{_num(x(h['hour']))},{_num(y(h['max']))}" for h in run)
        bottom = " ".join(f"{_num(x(h['hour']))},{_num(y(h['min']))}" for h in reversed(run))
        avg = " ".join(f"{_num(x(h['hour']))},{_num(y(h['avg']))}" for h in run)
        parts.append(f'<polygon class="band" points="{top} {bottom}"/>')
        parts.append(f'<polyline class="avg" fill="none" points="{avg}"/>')
    for h in hours:
        parts.append(f'<circle class="avg" cx="{_num(x(h["hour"]))}" cy="{_num(y(h["avg"]))}" r="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def share_bars(items: list[tuple[str, float | None]], *, title: str) -> str:
    """Horizontal bars of shares (0-1) with their labels; None is drawn as "n/a"."""
    if not items:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    row = 18
    label_w = 220
    height = _TOP + row * len(items) + 4
    bar_w = WIDTH - label_w - 60
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {WIDTH} {height}" role="img" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, share) in enumerate(items):
        top = _TOP + i * row
        text = "n/a" if share is None else f"{share * 100:.1f} %"
        width = 0.0 if share is None else max(0.0, min(1.0, share)) * bar_w
        parts.append(
            f'<text class="label" x="{label_w - 6}" y="{top + 12}" text-anchor="end">{escape(label[:40])}</text>'
            f'<rect class="track" x="{label_w}" y="{top + 2}" width="{bar_w}" height="{row - 6}"/>'
            f'<rect class="bar" x="{label_w}" y="{top + 2}" width="{_num(width)}" height="{row - 6}"/>'
            f'<text class="value" x="{label_w + bar_w + 6}" y="{top + 12}">{text}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
