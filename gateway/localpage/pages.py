"""The page's HTML, rendered on the gateway: no template engine, every value escaped, no inline script or style.

Each function returns a whole document (``layout``) or a fragment of one. The only script is
``/static/app.js`` (live updates); the only style sheet ``/static/style.css``.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

NAV = (("/", "Status"), ("/pairing", "Pairing"), ("/wired", "Wired"), ("/live", "Live readings"),
       ("/sensors", "Sensors"))  # fmt: skip


def e(value: object) -> str:
    """Escaped text."""
    return html.escape("" if value is None else str(value), quote=True)


def when(ts: object) -> str:
    """A timestamp as local-independent UTC text (the technician's phone may be in another zone)."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "-"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ts: object) -> str:
    """``12 s ago``."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "-"
    s = max(0, int(time.time() - float(ts)))
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago" if s < 7200 else f"{s // 3600} h ago"


def value_text(value: object, unit: object) -> str:
    """A reading's value and unit for people."""
    if isinstance(value, float):
        value = f"{value:.6g}"
    return f"{value} {unit}".strip() if unit else str(value)


def layout(title: str, body: str, *, host: str, csrf: str | None = None, flash: Sequence[tuple[str, str]] = (),
           current: str = "", live: bool = False) -> str:  # fmt: skip
    """A whole page; ``csrf`` given means signed in (navigation and sign-out shown)."""
    nav = ""
    if csrf is not None:
        mark = ' aria-current="page"'
        links = "".join(f'<a href="{href}"{mark if href == current else ""}>{e(text)}</a>' for href, text in NAV)
        nav = (
            f'<nav aria-label="Pages">{links}</nav>'
            f'<form method="post" action="/signout" class="signout">{csrf_field(csrf)}'
            '<button type="submit" class="secondary">Sign out</button></form>'
        )
    messages = "".join(
        f'<p class="flash {e(kind)}" role="{"alert" if kind == "error" else "status"}">{e(text)}</p>'
        for kind, text in flash
    )
    script = '<script src="/static/app.js" defer></script>' if live else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · {e(host)}</title>"
        f'<link rel="stylesheet" href="/static/style.css"><link rel="icon" href="/static/icon.svg">{script}</head>'
        f'<body><header><p class="brand">Roost <span>{e(host)}</span></p>{nav}</header>'
        f"<main><h1>{e(title)}</h1>{messages}{body}</main></body></html>"
    )


def csrf_field(token: str) -> str:
    """The hidden form field every state-changing form carries."""
    return f'<input type="hidden" name="csrf" value="{e(token)}">'


def no_pin(host: str) -> str:
    """The only page shown while no setup PIN is set."""
    body = (
        "<p>This gateway has no setup PIN yet, so its local page is locked.</p>"
        "<p>To set one, put these lines in <code>roost.toml</code> on the SD card's boot partition "
        "(the FAT partition a computer shows when you insert the card), then power the gateway on:</p>"
        '<pre>[local]\npin = "your PIN, 4 to 64 characters"</pre>'
        "<p>Then reload this page and sign in with that PIN.</p>"
    )
    return layout("Set a setup PIN first", body, host=host)


def turned_off(host: str) -> str:
    """What the page shows while device management has it off."""
    body = (
        "<p>The local page is turned off on this gateway: its operator disabled it, or locked the gateway, "
        "from the cloud.</p><p>Ask the operator to turn it on again (device management: "
        "<code>enable local-page</code>, or <code>unlock</code>).</p>"
    )
    return layout("Local page turned off", body, host=host)


def signin(host: str, form_token: str, *, error: str = "", wait_s: float = 0.0) -> str:
    """The sign-in form."""
    flash = [("error", error)] if error else []
    disabled = " disabled" if wait_s > 0 else ""
    body = (
        '<form method="post" action="/signin" class="card">'
        f'<input type="hidden" name="csrf" value="{e(form_token)}">'
        '<label for="pin">Setup PIN</label>'
        '<input id="pin" name="pin" type="password" autocomplete="current-password" required autofocus'
        f' minlength="4" maxlength="64"{disabled}>'
        f'<button type="submit"{disabled}>Sign in</button></form>'
        '<p class="hint">The setup PIN is the one the installer put in roost.toml\'s [local] section.</p>'
    )
    return layout("Sign in", body, host=host, flash=flash)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "") -> str:
    """A table whose cells are already-escaped HTML."""
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td data-label="{e(h)}">{c}</td>' for h, c in zip(headers, r, strict=True))
                   + "</tr>" for r in rows)  # fmt: skip
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def status_body(st: Mapping[str, Any]) -> str:
    """The status page's sections."""
    gw, cloud, buf = st["gateway"], st["cloud"], st["buffer"]
    parts: list[str] = []
    fb = st.get("firstboot")
    if fb and fb.get("errors"):
        items = "".join(f"<li><code>{e(x['key'])}</code>: {e(x['message'])}</li>" for x in fb["errors"])
        parts.append(f'<section class="card problem" id="firstboot"><h2>First boot found problems</h2>'
                     f"<p>In roost.toml (fix them on the boot partition and power the gateway on again):</p>"
                     f"<ul>{items}</ul></section>")  # fmt: skip
    state = "connected" if cloud["connected"] else "not connected"
    parts.append(
        '<section class="card" id="cloud"><h2>Cloud</h2>'
        f'<p class="big {"good" if cloud["connected"] else "bad"}">{e(state)}</p>'
        f"<dl><dt>Cloud address</dt><dd>{e(cloud['url'])}</dd><dt>Packs sent</dt><dd>{e(cloud['sent'])}</dd>"
        f"<dt>Reconnects</dt><dd>{e(cloud['reconnects'])}</dd></dl></section>"
    )
    enr = st.get("enrollment")
    if enr:
        code = ""
        if enr.get("user_code") and enr.get("state") not in ("enrolled", "denied"):
            code = (f'<p>Enrollment code: <strong class="code">{e(enr["user_code"])}</strong></p>'
                    f"<p>Approve it at <code>{e(enr.get('verification_uri', ''))}</code></p>")  # fmt: skip
        parts.append(f'<section class="card" id="enrollment"><h2>Enrollment</h2>'
                     f"<p>State: <strong>{e(enr.get('state', 'unknown'))}</strong></p>{code}</section>")  # fmt: skip
    full = 100.0 * buf["bytes"] / buf["max_bytes"] if buf["max_bytes"] else 0.0
    parts.append(
        '<section class="card" id="buffer"><h2>Buffer</h2>'
        f"<dl><dt>Readings waiting</dt><dd>{e(buf['readings'])}</dd><dt>Size</dt>"
        f"<dd>{buf['bytes'] / 1024:.0f} KiB ({full:.1f}% of the limit)</dd>"
        f"<dt>Events waiting</dt><dd>{e(buf['events'])}</dd><dt>Dropped</dt><dd>{e(buf['dropped'])}</dd></dl>"
        "</section>"
    )
    rows = [(e(a["name"]), f'<span class="state {e(a["state"])}">{e(a["state"])}</span>', e(a["detail"]),
             e(a["accepted"]), e(", ".join(f"{k} {v}" for k, v in a["rejected"].items()) or "0"))
            for a in st["adapters"]]  # fmt: skip
    adapters = _table(["Adapter", "State", "Detail", "Readings", "Refused"], rows) if rows else "<p>No adapter.</p>"
    parts.append(f'<section class="card" id="adapters"><h2>Adapters</h2>{adapters}</section>')
    page = st["local_page"]
    parts.append(
        '<section class="card" id="gateway"><h2>Gateway</h2>'
        f"<dl><dt>Gateway id</dt><dd><code>{e(gw['id'])}</code></dd><dt>Tenant</dt><dd>{e(gw['tenant'])}</dd>"
        f"<dt>Software</dt><dd>{e(gw['version'])}</dd><dt>Running for</dt><dd>{int(gw['uptime_s'])} s</dd>"
        f"<dt>This page</dt><dd><code>{e(page['url'])}</code></dd>"
        f'<dt>Certificate SHA-256</dt><dd><code class="wrap">{e(page["fingerprint"])}</code></dd></dl></section>'
    )
    return "".join(parts)


def zigbee_section(csrf: str, running: bool, recent: Sequence[Mapping[str, Any]]) -> str:
    """Permit-join and the devices joining now (filled live by app.js from the event stream)."""
    if not running:
        return ('<section class="card" id="zigbee"><h2>Zigbee</h2><p>Zigbee is not enabled: set '
                "<code>[adapters.zigbee] enabled = true</code> in gateway.toml.</p></section>")  # fmt: skip
    items = "".join(f"<li>{e(when(ev.get('ts')))}: {e(ev.get('message'))}</li>" for ev in recent)
    items = items or '<li class="none">No device has joined yet.</li>'
    return (
        '<section class="card" id="zigbee"><h2>Zigbee</h2>'
        f'<form method="post" action="/pairing/zigbee">{csrf_field(csrf)}'
        '<label for="zb-seconds">Allow joining for (seconds, 1-254)</label>'
        '<input id="zb-seconds" name="seconds" type="number" inputmode="numeric" min="1" max="254" value="120">'
        '<label for="zb-name">Name for the device that joins</label><input id="zb-name" name="name" maxlength="64">'
        '<label for="zb-location">Where it is</label><input id="zb-location" name="location" maxlength="64">'
        '<button type="submit">Allow joining</button></form>'
        '<h3>Joining now</h3><ul id="joining" class="events" aria-live="polite">'
        f"{items}</ul></section>"
    )


def ble_section(csrf: str, running: bool, devices: Sequence[Mapping[str, Any]]) -> str:
    """Nearby devices heard but not paired, each with its decoded preview and an "add" form."""
    if not running:
        intro = ('<p>BLE is not enabled (<code>[adapters.ble] enabled = true</code> in gateway.toml); a device '
                 "added here is recorded and taken when it is.</p>")  # fmt: skip
    else:
        intro = '<p>Wake a sensor (press its button) and <a href="/pairing">reload</a> to see it here.</p>'
    cards: list[str] = []
    for i, d in enumerate(devices):
        mac = str(d.get("id", ""))
        preview = ", ".join(f"{p['metric']} {value_text(p['value'], p['unit'])}" for p in d.get("preview") or [])
        status = "encrypted: needs its bind key" if d.get("status") == "needs-key" else "heard, not paired"
        key_hint = "" if d.get("status") == "needs-key" else ", if any"
        cards.append(
            f'<li class="device" data-mac="{e(mac)}"><p><strong>{e(mac)}</strong> <span class="fmt">{e(d.get("model"))}'
            f"</span></p><p>{e(status)} · heard {e(d.get('heard'))} times · last {e(ago(d.get('last_seen')))}</p>"
            f'<p class="preview">{e(preview) or "no values to show before pairing"}</p>'
            f'<form method="post" action="/pairing/ble">{csrf_field(csrf)}'
            f'<input type="hidden" name="mac" value="{e(mac)}">'
            f'<label for="key-{i}">Bind key (32 hex characters{key_hint})</label>'
            f'<input id="key-{i}" name="key" autocomplete="off" autocapitalize="off" spellcheck="false" maxlength="64">'
            f'<label for="name-{i}">Name</label><input id="name-{i}" name="name" maxlength="64">'
            f'<label for="loc-{i}">Where it is</label><input id="loc-{i}" name="location" maxlength="64">'
            f'<button type="submit">Add {e(mac)}</button></form></li>'
        )  # fmt: skip
    listing = f'<ul class="devices" id="nearby">{"".join(cards)}</ul>' if cards else (
        '<p id="nearby" class="none">No unpaired device heard yet.</p>')  # fmt: skip
    manual = (
        f'<details><summary>Add a device by its address</summary><form method="post" action="/pairing/ble">'
        f'{csrf_field(csrf)}<label for="m-mac">Bluetooth address</label>'
        '<input id="m-mac" name="mac" placeholder="A4:C1:38:0A:1B:2C" autocapitalize="characters" maxlength="32">'
        '<label for="m-key">Bind key (32 hex characters, if any)</label>'
        '<input id="m-key" name="key" autocomplete="off" autocapitalize="off" spellcheck="false" maxlength="64">'
        '<label for="m-name">Name</label><input id="m-name" name="name" maxlength="64">'
        '<label for="m-loc">Where it is</label><input id="m-loc" name="location" maxlength="64">'
        '<button type="submit">Add</button></form></details>'
    )
    note = ('<p id="nearby-new" class="notice" role="status" hidden><span></span>'
            '<a href="/pairing">reload the list</a></p>')  # fmt: skip
    return f'<section class="card" id="ble"><h2>Bluetooth (BLE) nearby</h2>{intro}{note}{listing}{manual}</section>'


def i2c_section(csrf: str, result: Mapping[str, Any] | None) -> str:
    """The I2C bus scan form and the last scan's result."""
    out = ""
    if result is not None:
        rows = [(e(f["address"]), e(f.get("chip") or "unknown"), e(", ".join(f.get("measures") or []) or "-"),
                 e(f.get("detail"))) for f in result["devices"]]  # fmt: skip
        found = _table(["Address", "Chip", "Measures", "Identified by"], rows) if rows else (
            "<p>Nothing answered: check the wiring (SDA, SCL, GND, power) and the pull-up resistors.</p>")  # fmt: skip
        out = f'<div id="i2c-result"><h3>Bus {e(result["bus"])}: {len(rows)} device(s) answered</h3>{found}</div>'
    return (
        '<section class="card" id="i2c"><h2>I2C bus scan</h2>'
        f'<form method="post" action="/pairing/i2c">{csrf_field(csrf)}'
        '<label for="i2c-bus">Bus number (/dev/i2c-N; 1 on a Raspberry Pi)</label>'
        '<input id="i2c-bus" name="bus" type="number" inputmode="numeric" min="0" max="99" value="1">'
        '<label class="check"><input type="checkbox" name="emulated" value="1"> the demo\'s emulated bus '
        "(no hardware)</label>"
        f'<button type="submit">Scan</button></form>{out}</section>'
    )


def wired_body(csrf: str, settings: Mapping[str, Any], result: Mapping[str, Any] | None) -> str:
    """Serial ports and Modbus units as configured, with a test read per Modbus unit."""
    serial_rows = [(f"<code>{e(p['path'])}</code>", e(p["protocol"]), e(p["baud"]), e(p["settings"]),
                    e(p["state"]) + (f"<br><small>{e(p['problem'])}</small>" if p["problem"] else ""))
                   for p in settings["serial"]]  # fmt: skip
    serial = _table(["Port", "Protocol", "Baud", "Bits", "State"], serial_rows) if serial_rows else (
        "<p>No serial port is configured ([[adapters.serial]] in gateway.toml).</p>")  # fmt: skip
    serial += (
        (
            '<p class="hint">Serial devices send on their own: there is nothing to ask them. '
            'Their readings appear on <a href="/live">Live readings</a> as they arrive.</p>'
        )
        if serial_rows
        else ""
    )
    units: list[tuple[str, ...]] = []
    for u in settings["modbus"]:
        sensor = e(u["sensor"])
        form = (f'<form method="post" action="/wired/test">{csrf_field(csrf)}<input type="hidden" name="sensor" '
                f'value="{sensor}"><button type="submit">Test read {sensor}</button></form>')  # fmt: skip
        state = e(u["state"]) + (f"<br><small>{e(u['problem'])}</small>" if u["problem"] else "")
        units.append((sensor, f"<code>{e(u['path'])}</code> unit {e(u['unit'])}",
                      f"{e(u['baud'])} {e(u['settings'])}", e(", ".join(u["registers"])), state, form))  # fmt: skip
    modbus = _table(["Sensor", "Port and unit", "Line", "Registers", "State", ""], units) if units else (
        "<p>No Modbus unit is configured ([[adapters.modbus]] in gateway.toml).</p>")  # fmt: skip
    out = ""
    if result is not None:
        rows = [(e(v["metric"]), e(value_text(v["value"], v["unit"]))) for v in result["values"]]
        out = (f'<div id="test-result"><h3>Test read of {e(result["sensor"])}</h3>'
               f"{_table(['Register', 'Value'], rows)}</div>")  # fmt: skip
    return (f'<section class="card" id="serial"><h2>Serial ports</h2>{serial}</section>'
            f'<section class="card" id="modbus"><h2>Modbus units</h2>{out}{modbus}</section>')  # fmt: skip


def live_body(latest: Iterable[Mapping[str, Any]]) -> str:
    """Latest value of every sensor's metrics; app.js keeps it current from the event stream."""
    rows = "".join(
        f'<tr data-key="{e(r["sensor"])}|{e(r["metric"])}"><td data-label="Sensor">{e(r["sensor"])}</td>'
        f'<td data-label="Metric">{e(r["metric"])}</td><td data-label="Value" class="value">'
        f'{e(value_text(r["value"], r["unit"]))}</td><td data-label="When" class="ts">{e(when(r["ts"]))}</td></tr>'
        for r in latest
    )
    return (
        '<p id="live-state" role="status" data-state="connecting">Connecting to the gateway…</p>'
        '<div class="scroll"><table id="readings"><thead><tr><th scope="col">Sensor</th><th scope="col">Metric</th>'
        f'<th scope="col">Value</th><th scope="col">When</th></tr></thead><tbody>{rows}</tbody></table></div>'
    )


def sensors_body(csrf: str, devices: Sequence[Mapping[str, Any]]) -> str:
    """Paired devices with a form to name and locate each."""
    items: list[str] = []
    for i, d in enumerate(devices):
        if d.get("status") in ("unpaired", "needs-key"):
            continue
        kind, did = str(d.get("kind", "")), str(d.get("id", ""))
        items.append(
            f'<li class="device"><p><strong>{e(d.get("name") or did)}</strong> <span class="fmt">{e(kind)} '
            f"{e(did)}</span></p><p>{e(d.get('model') or '')} {e(d.get('status') or '')}</p>"
            f'<form method="post" action="/sensors/label">{csrf_field(csrf)}'
            f'<input type="hidden" name="kind" value="{e(kind)}"><input type="hidden" name="id" value="{e(did)}">'
            f'<label for="n-{i}">Name</label><input id="n-{i}" name="name" maxlength="64" value="{e(d.get("name"))}">'
            f'<label for="l-{i}">Where it is</label>'
            f'<input id="l-{i}" name="location" maxlength="64" value="{e(d.get("location"))}">'
            f'<button type="submit">Save {e(d.get("name") or did)}</button></form></li>'
        )  # fmt: skip
    if not items:
        return '<p class="none">No paired device yet: pair one on <a href="/pairing">Pairing</a>.</p>'
    return f'<ul class="devices" id="sensors">{"".join(items)}</ul>'
