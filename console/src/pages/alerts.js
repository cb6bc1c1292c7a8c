// Alerts: open, acknowledged and cleared, with who acknowledged when; acknowledging one.
// Gateway alerts and cloud-rule alerts side by side; a cloud rule's alert says so in the Gateway column.
import { useState } from "preact/hooks";
import { enc, path, post } from "../api.js";
import { ErrorNote, Loading, html, show, useApi, when } from "../ui.js";

const FILTERS = [
  ["open", "Open"],
  ["acknowledged", "Acknowledged"],
  ["cleared", "Cleared"],
  ["all", "All"],
];

// Alerts of cloud rules (rules over several gateways, docs/rules.md) are stored under this gateway id.
const CLOUD = "cloud";

function stateOf(a) {
  if (a.state === "open" && a.acknowledged_by) return "acknowledged";
  return a.state;
}

export function AlertsPage() {
  const [filter, setFilter] = useState("open");
  const alerts = useApi("/api/v1/alerts?state=all", 10_000);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(null);
  const items = (alerts.data?.items || []).filter((a) => filter === "all" || stateOf(a) === filter);
  async function acknowledge(a) {
    setBusy(`${a.gateway}/${a.key}`);
    setError(null);
    try {
      await post(path(`/api/v1/alerts/${enc(a.key)}/acknowledge`, { gateway: a.gateway }));
      alerts.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  }
  return html`<h1>Alerts</h1>
    <div class="toolbar" role="group" aria-label="Which alerts">
      ${FILTERS.map(([key, label]) => html`<button type="button" aria-pressed=${filter === key ? "true" : "false"} onClick=${() => setFilter(key)}>${label}</button>`)}
    </div>
    <${ErrorNote} error=${alerts.error || error} />
    ${alerts.loading && !alerts.data ? html`<${Loading} what="the alerts" />` : null}
    ${alerts.data && !items.length ? html`<p>No ${filter === "all" ? "" : filter + " "}alert.</p>` : null}
    ${items.length
      ? html`<div class="scroll" tabindex="0"><table class="list" aria-label="Alerts">
        <thead><tr><th scope="col">Alert</th><th scope="col">Gateway</th><th scope="col">State</th><th scope="col">Severity</th><th scope="col">Message</th><th scope="col">Value</th><th scope="col">Raised</th><th scope="col">Acknowledged</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead>
        <tbody>${items.map((a) => html`<tr data-alert=${a.key} data-state=${stateOf(a)}>
          <th scope="row">${a.key}</th>
          <td>${a.gateway === CLOUD
            ? html`<span class="badge" data-cloud-rule title="Raised by a cloud rule, over the readings of several gateways">cloud rule</span>`
            : html`<a href=${`#/gateways/${enc(a.gateway)}`}>${a.gateway}</a>`}</td>
          <td><span class=${`badge ${a.state === "open" ? (a.acknowledged_by ? "warn" : "bad") : "ok"}`}>${stateOf(a)}</span></td>
          <td>${a.severity || "–"}</td>
          <td>${a.message || "–"}</td>
          <td>${a.sensor ? `${a.sensor}:${a.metric} = ${show(a.value)}` : "–"}</td>
          <td>${when(a.first_raised)}${a.raises > 1 ? ` (${a.raises}×)` : ""}</td>
          <td>${a.acknowledged_by ? `${a.acknowledged_by}, ${when(a.acknowledged_at)}` : "–"}</td>
          <td>${a.state === "open" && !a.acknowledged_by
            ? html`<button type="button" disabled=${busy === `${a.gateway}/${a.key}`} onClick=${() => acknowledge(a)} aria-label=${`Acknowledge ${a.key} on ${a.gateway}`}>Acknowledge</button>`
            : null}</td>
        </tr>`)}</tbody></table></div>`
      : null}`;
}
