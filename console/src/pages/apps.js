// API clients and usage: the tenant's applications (OAuth2 clients with scopes and a plan), registering one
// (its secret shown once), rotating its secret, changing its plan, deleting it; calls per client and endpoint.
import { useState } from "preact/hooks";
import { enc, path, post, put, request } from "../api.js";
import { ErrorNote, Loading, html, useApi, when } from "../ui.js";

const SCOPES = [
  ["readings:read", "Read readings"],
  ["gateways:read", "Read gateways"],
  ["events:read", "Read events and alerts"],
  ["commands:write", "Send commands"],
  ["topics:read", "Subscribe to topics (MQTT)"],
];
const RANGES = [
  ["1h", "Last hour", 3600],
  ["1d", "Last day", 86400],
  ["7d", "Last 7 days", 7 * 86400],
];

function Secret({ app, onDone }) {
  return html`<div class="result" role="status" data-secret-for=${app.client_id}>
    <p><strong>Copy the secret of ${app.name} now: it is shown only this once.</strong></p>
    <dl class="facts"><div><dt>client_id</dt><dd><code>${app.client_id}</code></dd></div>
      <div><dt>client_secret</dt><dd><code data-secret>${app.client_secret}</code></dd></div>
      <div><dt>Token endpoint</dt><dd><code>${app.token_endpoint}</code></dd></div></dl>
    <button type="button" class="secondary" onClick=${onDone}>I have copied it</button>
  </div>`;
}

function Register({ plans, onRegistered }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const f = new FormData(event.target);
    const scopes = f.getAll("scope");
    if (!scopes.length) {
      setError(new Error("Choose at least one thing the application may do."));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body = { name: String(f.get("name")).trim(), scopes };
      if (f.get("plan")) body.plan = f.get("plan");
      onRegistered(await post("/api/v1/applications", body));
      event.target.reset();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return html`<form class="stack" onSubmit=${submit}>
      <label for="app-name">Name</label>
      <input id="app-name" name="name" required maxlength="80" autocomplete="off" />
      <fieldset><legend>What it may do</legend>
        ${SCOPES.map(([s, label]) => html`<div><input type="checkbox" id=${`scope-${s}`} name="scope" value=${s} /> <label for=${`scope-${s}`}>${label} (${s})</label></div>`)}
      </fieldset>
      <label for="app-plan">Plan</label>
      <select id="app-plan" name="plan"><option value="">the default plan</option>${plans.map((p) => html`<option value=${p.name}>${p.name}: ${p.description || `${p.rate_per_s}/s`}</option>`)}</select>
      <button type="submit" disabled=${busy}>${busy ? "Registering…" : "Register the application"}</button>
    </form>
    <${ErrorNote} error=${error} />`;
}

function AppRow({ app, plans, onChanged, onSecret }) {
  const [error, setError] = useState(null);
  async function act(fn) {
    setError(null);
    try {
      await fn();
      onChanged();
    } catch (err) {
      setError(err);
    }
  }
  const id = enc(app.id);
  return html`<tr data-app=${app.name}>
    <th scope="row">${app.name}<br /><code class="muted">${app.client_id}</code></th>
    <td>${app.scopes.join(", ")}</td>
    <td><label class="sr-only" for=${`plan-${app.id}`}>Plan of ${app.name}</label>
      <select id=${`plan-${app.id}`} value=${app.plan} onChange=${(e) => act(() => put(`/api/v1/applications/${id}/plan`, { plan: e.target.value }))}>
        ${plans.map((p) => html`<option value=${p.name}>${p.name}</option>`)}</select></td>
    <td>${app.owner}</td>
    <td>${when(app.created)}${app.secret_rotated ? html`<br />secret ${when(app.secret_rotated)}` : null}</td>
    <td><div class="buttons">
      <button type="button" class="secondary" aria-label=${`Rotate the secret of ${app.name}`} onClick=${() => act(async () => onSecret(await post(`/api/v1/applications/${id}/rotate-secret`)))}>Rotate secret</button>
      <button type="button" class="secondary" aria-label=${`Delete ${app.name}`} onClick=${() => confirm(`Delete ${app.name}? Its tokens stop working at once.`) && act(() => request("DELETE", `/api/v1/applications/${id}`))}>Delete</button>
    </div><${ErrorNote} error=${error} /></td>
  </tr>`;
}

function Usage() {
  const [range, setRange] = useState("1d");
  const seconds = RANGES.find((r) => r[0] === range)[2];
  const [since] = useState(() => Math.floor(Date.now() / 1000));
  const usage = useApi(path("/api/v1/usage", { since: since - seconds }), 15_000);
  const items = usage.data?.items || [];
  return html`<div class="toolbar" role="group" aria-label="Usage range">
      ${RANGES.map(([key, label]) => html`<button type="button" aria-pressed=${range === key ? "true" : "false"} onClick=${() => setRange(key)}>${label}</button>`)}
      <a class="download" href=${path("/api/v1/usage", { since: since - seconds, format: "csv" })} download="usage.csv">Download as CSV</a>
    </div>
    <${ErrorNote} error=${usage.error} />
    ${usage.loading && !usage.data ? html`<${Loading} what="the usage" />` : null}
    ${usage.data && !items.length ? html`<p>No call in this range.</p>` : null}
    ${items.length ? html`<div class="scroll" tabindex="0"><table class="list" aria-label="Calls per client and endpoint">
      <thead><tr><th scope="col">Client</th><th scope="col">Endpoint</th><th scope="col">Calls</th><th scope="col">4xx</th><th scope="col">5xx</th><th scope="col">Throttled</th><th scope="col">p50 ms</th><th scope="col">p95 ms</th><th scope="col">Last</th></tr></thead>
      <tbody>${items.map((u) => html`<tr data-usage=${u.endpoint}><th scope="row">${u.client}</th><td><code>${u.endpoint}</code></td><td>${u.calls}</td><td>${u.errors_4xx}</td><td>${u.errors_5xx}</td><td>${u.throttled}</td><td>${u.latency_p50_ms ?? "–"}</td><td>${u.latency_p95_ms ?? "–"}</td><td>${when(u.last)}</td></tr>`)}</tbody>
    </table></div>` : null}`;
}

export function AppsPage() {
  const apps = useApi("/api/v1/applications?limit=1000");
  const plans = useApi("/api/v1/plans");
  const [secret, setSecret] = useState(null);
  const planItems = plans.data?.items || [];
  const items = apps.data?.items || [];
  const shown = (app) => {
    setSecret(app);
    apps.reload();
  };
  return html`<h1>API clients</h1>
    <p>Applications call the API with their own credentials (OAuth2 client credentials at <code>/oauth/token</code>), within the scopes and the plan given here.</p>
    <${ErrorNote} error=${apps.error || plans.error} />
    ${secret ? html`<${Secret} app=${secret} onDone=${() => setSecret(null)} />` : null}
    <section aria-labelledby="h-apps"><h2 id="h-apps">Applications</h2>
      ${apps.loading && !apps.data ? html`<${Loading} what="the applications" />` : null}
      ${apps.data && !items.length ? html`<p>No application yet.</p>` : null}
      ${items.length ? html`<div class="scroll" tabindex="0"><table class="list" aria-label="Applications">
        <thead><tr><th scope="col">Application</th><th scope="col">Scopes</th><th scope="col">Plan</th><th scope="col">Owner</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>${items.map((a) => html`<${AppRow} key=${a.id} app=${a} plans=${planItems} onChanged=${apps.reload} onSecret=${shown} />`)}</tbody>
      </table></div>` : null}
    </section>
    <section aria-labelledby="h-register"><h2 id="h-register">Register an application</h2>
      <${Register} plans=${planItems} onRegistered=${shown} />
    </section>
    <section aria-labelledby="h-usage"><h2 id="h-usage">Usage</h2><${Usage} /></section>`;
}
