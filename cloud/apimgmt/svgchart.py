"""A small bar chart of calls and errors per minute, drawn as inline SVG on the server (no script, no fonts)."""

from __future__ import annotations

import time
from html import escape

WIDTH = 640
HEIGHT = 180
_MARGIN_LEFT = 40
_MARGIN_BOTTOM = 24


def _label(minute: int) -> str:
    return time.strftime("%H:%M", time.gmtime(minute * 60))


def usage_chart(minutes: list[tuple[int, int, int]], *, title: str) -> str:
    """Bars of calls per minute with the errors drawn over them; an accessible ``<svg role="img">``."""
    if not minutes:
        return f'<p class="empty">{escape(title)}: no calls yet.</p>'
    first, last = minutes[0][0], minutes[-1][0]
    span = max(1, last - first + 1)
    by_minute = {m: (c, e) for m, c, e in minutes}
    top = max(c for _, c, _ in minutes) or 1
    plot_w, plot_h = WIDTH - _MARGIN_LEFT - 8, HEIGHT - _MARGIN_BOTTOM - 8
    bar_w = plot_w / span
    total_calls = sum(c for _, c, _ in minutes)
    total_errors = sum(e for _, _, e in minutes)
    summary = f"{title}: {total_calls} calls and {total_errors} errors from {_label(first)} to {_label(last)} UTC"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">',
        f'<title id="chart-title">{escape(summary)}</title>',
        f'<line class="axis" x1="{_MARGIN_LEFT}" y1="{8 + plot_h}" x2="{WIDTH - 8}" y2="{8 + plot_h}"/>',
        f'<text class="tick" x="{_MARGIN_LEFT - 4}" y="14" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{_MARGIN_LEFT - 4}" y="{8 + plot_h}" text-anchor="end">0</text>',
    ]
    for i in range(span):
        minute = first + i
        calls, errors = by_minute.get(minute, (0, 0))
        if calls == 0:
            continue
        x = _MARGIN_LEFT + i * bar_w
        h = plot_h * calls / top
        eh = plot_h * errors / top
        w = max(1.0, bar_w - 1)
        parts.append(
            f'<rect class="calls" x="{x:.1f}" y="{8 + plot_h - h:.1f}" width="{w:.1f}" height="{h:.1f}">'
            f"<title>{_label(minute)}: {calls} calls, {errors} errors</title></rect>"
        )
        if errors:
            parts.append(
                f'<rect class="errors" x="{x:.1f}" y="{8 + plot_h - eh:.1f}" width="{w:.1f}" height="{eh:.1f}"/>'
            )
    parts.append(f'<text class="tick" x="{_MARGIN_LEFT}" y="{HEIGHT - 6}">{_label(first)}</text>')
    parts.append(f'<text class="tick" x="{WIDTH - 8}" y="{HEIGHT - 6}" text-anchor="end">{_label(last)} UTC</text>')
    parts.append("</svg>")
    return "".join(parts)
