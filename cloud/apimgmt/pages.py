"""The developer portal's pages as HTML strings (everything escaped; no resource from outside the server)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from cloud.apimgmt.plans import Plan
from cloud.apimgmt.service import SCOPES, Application
from cloud.apimgmt.usage import UsageSummary


def layout(title: str, body: str, *, who: str | None = None, csrf: str = "") -> str:
    """A whole page: skip link, header navigation, the body in <main>."""
    nav = ""
    if who is not None:
        nav = (
            '<nav aria-label="Portal"><ul>'
            '<li><a href="/developers">Overview</a></li>'
            '<li><a href="/developers/reference">API reference</a></li>'
            '<li><a href="/developers/applications">My applications</a></li>'
            f'<li><form method="post" action="/developers/signout" class="inline">{hidden_csrf(csrf)}'
            f'<button type="submit">Sign out {escape(who)}</button></form></li></ul></nav>'
        )
    else:
        nav = (
            '<nav aria-label="Portal"><ul><li><a href="/developers/reference">API reference</a></li>'
            '<li><a href="/developers/signin">Sign in</a></li></ul></nav>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Roost developers</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/developers/static/portal.css"></head><body>'
        '<a class="skip" href="#main">Skip to the content</a>'
        f'<header><p class="brand"><a href="/developers">Roost developers</a></p>{nav}</header>'
        f'<main id="main" tabindex="-1">{body}</main></body></html>'
    )


def hidden_csrf(csrf: str) -> str:
    """The form field that carries the session's CSRF token."""
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def alert(message: str | None) -> str:
    """An error message announced to screen readers."""
    return f'<p class="alert" role="alert">{escape(message)}</p>' if message else ""


def signin_page(error: str | None = None) -> str:
    """The sign-in form (it posts to /auth/signin; a small script takes the answer and comes back here)."""
    body = (
        "<h1>Sign in</h1>"
        "<p>Sign in with your Roost operator account to register applications and read their usage.</p>"
        f"{alert(error)}"
        '<form id="signin" method="post" action="/auth/signin" class="stack">'
        '<label for="tenant">Tenant</label><input id="tenant" name="tenant" required autocomplete="organization">'
        '<label for="username">Username</label>'
        '<input id="username" name="username" required autocomplete="username">'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" required autocomplete="current-password">'
        '<button type="submit">Sign in</button>'
        '<p id="signin-status" role="status" aria-live="polite"></p></form>'
        '<script src="/developers/static/signin.js" defer></script>'
    )
    return layout("Sign in", body)


def overview_page(who: str, tenant: str, csrf: str, plans: Iterable[Plan]) -> str:
    """The portal's first page: what to do, and the plans."""
    rows = "".join(
        f'<tr><th scope="row">{escape(p.name)}</th>'
        f"<td>{'no limit' if p.unlimited else f'{p.rate_per_s:g} a second, {p.burst} at once'}</td>"
        f"<td>{escape(p.description)}</td></tr>"
        for p in plans
    )
    body = (
        f"<h1>Welcome, {escape(who)}</h1>"
        f"<p>You are signed in to tenant <strong>{escape(tenant)}</strong>.</p>"
        '<ol><li>Register an application under <a href="/developers/applications">My applications</a>: you get a '
        "client id and a secret (shown once).</li>"
        "<li>Exchange them for an access token: <code>POST /oauth/token</code> with "
        "<code>grant_type=client_credentials</code> and HTTP Basic authentication.</li>"
        "<li>Call the API with <code>Authorization: Bearer &lt;token&gt;</code>; see the "
        '<a href="/developers/reference">API reference</a>.</li></ol>'
        '<h2>Plans</h2><div class="scroll"><table><tr><th scope="col">Plan</th><th scope="col">Limit</th>'
        f'<th scope="col">For</th></tr>{rows}</table></div>'
        "<p>Every answer carries the <code>RateLimit-Policy</code> and <code>RateLimit</code> header fields; a "
        "request past the limit is answered <code>429</code> with <code>Retry-After</code>.</p>"
    )
    return layout("Overview", body, who=who, csrf=csrf)


def _plan_select(plans: Iterable[Plan], chosen: str, field_id: str) -> str:
    options = "".join(
        f'<option value="{escape(p.name)}"{" selected" if p.name == chosen else ""}>{escape(p.name)}'
        f"{'' if p.unlimited else f' ({p.rate_per_s:g}/s, {p.burst} at once)'}</option>"
        for p in plans
    )
    return f'<select id="{field_id}" name="plan">{options}</select>'


def secret_notice(app: Application, secret: str) -> str:
    """The secret, shown once."""
    return (
        '<section class="secret" aria-labelledby="secret-title"><h2 id="secret-title">Your client secret</h2>'
        "<p>Copy it now: it is shown only this once and stored only hashed. Lost it? Rotate it.</p>"
        f"<dl><dt>Client id</dt><dd><code>{escape(app.record.client_id)}</code></dd>"
        f'<dt>Client secret</dt><dd><code class="secret-value">{escape(secret)}</code></dd></dl></section>'
    )


def applications_page(
    who: str,
    csrf: str,
    apps: list[Application],
    plans: list[Plan],
    default_plan: str,
    *,
    notice: str = "",
    error: str | None = None,
) -> str:
    """My applications: each with its plan, rotate and delete; and the form to register one."""
    items = []
    for app in apps:
        cid = escape(app.record.client_id)
        fid = "".join(c if c.isalnum() else "-" for c in app.record.client_id)
        items.append(
            f'<li class="card"><h3>{escape(app.client.name)}</h3>'
            f"<dl><dt>Client id</dt><dd><code>{cid}</code></dd>"
            f"<dt>Scopes</dt><dd>{escape(', '.join(app.client.scopes))}</dd>"
            f"<dt>Registered by</dt><dd>{escape(app.record.owner)}</dd></dl>"
            f'<form method="post" action="/developers/applications/{cid}/plan" class="row">{hidden_csrf(csrf)}'
            f'<label for="plan-{fid}">Plan</label>{_plan_select(plans, app.record.plan, f"plan-{fid}")}'
            '<button type="submit">Change plan</button></form>'
            f'<div class="row"><a href="/developers/applications/{cid}/usage">Usage</a>'
            f'<form method="post" action="/developers/applications/{cid}/rotate" class="inline">{hidden_csrf(csrf)}'
            '<button type="submit">Rotate secret</button></form>'
            f'<form method="post" action="/developers/applications/{cid}/delete" class="inline">{hidden_csrf(csrf)}'
            f'<button type="submit" class="danger" aria-label="Delete {escape(app.client.name)}">Delete</button>'
            "</form></div></li>"
        )
    listing = f'<ul class="cards">{"".join(items)}</ul>' if items else "<p>No applications yet.</p>"
    scopes = "".join(
        f'<li><input type="checkbox" id="scope-{i}" name="scopes" value="{escape(s)}"{" checked" if i == 0 else ""}>'
        f' <label for="scope-{i}"><code>{escape(s)}</code>: {escape(text)}</label></li>'
        for i, (s, text) in enumerate(SCOPES.items())
    )
    form = (
        '<section aria-labelledby="new-title"><h2 id="new-title">Register an application</h2>'
        f'<form method="post" action="/developers/applications" class="stack">{hidden_csrf(csrf)}'
        '<label for="app-name">Name</label><input id="app-name" name="name" required maxlength="80">'
        f'<fieldset><legend>Scopes</legend><ul class="plain">{scopes}</ul></fieldset>'
        f'<label for="new-plan">Plan</label>{_plan_select(plans, default_plan, "new-plan")}'
        '<button type="submit">Register</button></form></section>'
    )
    body = f"<h1>My applications</h1>{alert(error)}{notice}{listing}{form}"
    return layout("My applications", body, who=who, csrf=csrf)


def usage_page(who: str, csrf: str, app: Application, items: list[UsageSummary], chart: str) -> str:
    """One application's usage: a chart per minute and a table per endpoint."""
    rows = "".join(
        f'<tr><th scope="row"><code>{escape(s.endpoint)}</code></th><td>{s.calls}</td><td>{s.errors_4xx}</td>'
        f"<td>{s.errors_5xx}</td><td>{s.throttled}</td><td>{'' if s.p50_ms is None else f'{s.p50_ms:g}'}</td>"
        f"<td>{'' if s.p95_ms is None else f'{s.p95_ms:g}'}</td></tr>"
        for s in items
    )
    cid = escape(app.record.client_id)
    table = (
        '<div class="scroll"><table><caption>Calls per endpoint</caption><tr><th scope="col">Endpoint</th>'
        '<th scope="col">Calls</th><th scope="col">4xx</th><th scope="col">5xx</th><th scope="col">Throttled</th>'
        f'<th scope="col">p50 ms</th><th scope="col">p95 ms</th></tr>{rows}</table></div>'
        if items
        else "<p>No calls yet.</p>"
    )
    body = (
        f"<h1>Usage of {escape(app.client.name)}</h1><p>Client id <code>{cid}</code>, plan "
        f"<strong>{escape(app.record.plan)}</strong>. Times are UTC.</p>{chart}{table}"
        f'<p><a href="/api/v1/usage?client={cid}&amp;format=csv" download>Download as CSV</a></p>'
    )
    return layout("Usage", body, who=who, csrf=csrf)


def reference_page(body: str, who: str | None, csrf: str) -> str:
    """The API reference inside the layout."""
    return layout("API reference", body, who=who, csrf=csrf)
