// Fleet overview: online/offline counts, open alerts, the map of located gateways, and the gateway list.
import { useEffect, useState } from "preact/hooks";
import { Badge, ErrorNote, Loading, html, isOnline, useApi, useLive, when } from "../ui.js";

function LazyMap({ gateways }) {
  const [mod, setMod] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    import("../worldmap.js").then(setMod, setError);
  }, []);
  if (error) return html`<${ErrorNote} error=${error} />`;
  if (!mod) return html`<${Loading} what="the map" />`;
  return html`<${mod.WorldMap} gateways=${gateways} online=${isOnline} />`;
}

export function FleetPage() {
  useLive(["status", "health"]);
  const fleet = useApi("/api/v1/fleet/gateways", 10_000);
  const alerts = useApi("/api/v1/alerts?state=open", 10_000);
  const items = fleet.data?.items || [];
  const online = items.filter(isOnline).length;
  const open = alerts.data?.items?.length;
  return html`<h1>Fleet</h1>
    <${ErrorNote} error=${fleet.error} />
    <ul class="cards" aria-label="Fleet summary">
      <li class="card"><span class="big" data-count="online">${fleet.data ? online : "…"}</span> online</li>
      <li class="card"><span class="big" data-count="offline">${fleet.data ? items.length - online : "…"}</span> offline</li>
      <li class="card"><a href="#/alerts"><span class="big" data-count="alerts">${open ?? "…"}</span> open alerts</a></li>
    </ul>
    ${fleet.data ? html`<${LazyMap} gateways=${items} />` : null}
    <h2>Gateways</h2>
    ${fleet.loading && !fleet.data ? html`<${Loading} what="the gateways" />` : null}
    ${fleet.data && !items.length ? html`<p>No gateway yet: enroll one on the <a href="#/enroll">enrollment</a> page.</p>` : null}
    ${items.length
      ? html`<div class="scroll" tabindex="0"><table class="list">
          <thead><tr><th scope="col">Gateway</th><th scope="col">Status</th><th scope="col">Last seen</th><th scope="col">Version</th><th scope="col">Site / tags</th><th scope="col">Sensors</th></tr></thead>
          <tbody>
            ${items.map((g) => html`<tr data-gateway=${g.id}>
              <th scope="row"><a href=${`#/gateways/${encodeURIComponent(g.id)}`}>${g.id}</a></th>
              <td data-status=${isOnline(g) ? "online" : "offline"}><${Badge} ok=${isOnline(g)} />${g.locked ? html` <span class="badge warn">locked</span>` : null}</td>
              <td>${when(g.last_seen)}</td>
              <td>${g.version || "–"}</td>
              <td>${[g.site, ...(g.tags || [])].filter(Boolean).join(", ") || "–"}</td>
              <td>${(g.sensors || []).length}</td>
            </tr>`)}
          </tbody>
        </table></div>`
      : null}`;
}
