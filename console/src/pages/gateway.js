// Gateway detail: presence and health, live readings, sensors, desired vs reported state, commands with
// their results, and the gateway's recent log (the ``logs`` command).
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { enc, get, path, post } from "../api.js";
import { live } from "../live.js";
import { Badge, ErrorNote, Json, Loading, html, isOnline, show, useApi, useLive, when } from "../ui.js";

const COMMANDS = ["ping", "locate", "report-state", "logs", "restart", "reboot", "rotate-credentials", "enable", "disable", "lock", "unlock", "pair", "unpair", "set-config", "actuate", "update-status"];

/** A value that marks when it was drawn: data-drawn-at (epoch ms) and a performance mark. */
export function LiveValue({ reading }) {
  const ref = useRef(null);
  useLayoutEffect(() => {
    if (!ref.current) return;
    ref.current.dataset.drawnAt = String(Date.now());
    performance.mark(`roost-drawn:${reading.sensor}:${reading.metric}`, { detail: { value: reading.value, ts: reading.ts } });
  }, [reading.value, reading.ts]);
  return html`<span ref=${ref} class="value" data-live-key=${`${reading.sensor}:${reading.metric}`} data-value=${String(reading.value)}>${show(reading.value)}</span>`;
}

function useLatestReadings(gateway) {
  const [initial, setInitial] = useState({});
  useEffect(() => {
    const since = new Date(Date.now() - 3600_000).toISOString();
    get(path("/api/v1/readings", { gateway, since, limit: 10000 }))
      .then((page) => {
        const out = {};
        for (const r of page.items) out[`${r.sensor}|${r.metric}`] = { ...r, ts: Date.parse(r.ts) / 1000 };
        setInitial(out);
      })
      .catch(() => setInitial({}));
  }, [gateway]);
  useLive(["readings"]);
  const merged = { ...initial };
  for (const [key, r] of Object.entries(live.readings)) {
    if (!key.startsWith(`${gateway}|`)) continue;
    const k = `${r.sensor}|${r.metric}`;
    if (!merged[k] || merged[k].ts <= r.ts) merged[k] = r;
  }
  return Object.values(merged).sort((a, b) => `${a.sensor}:${a.metric}`.localeCompare(`${b.sensor}:${b.metric}`));
}

function Readings({ gateway }) {
  const rows = useLatestReadings(gateway);
  if (!rows.length) return html`<p>No reading in the last hour.</p>`;
  return html`<div class="scroll" tabindex="0"><table class="list" aria-label="Latest readings">
    <thead><tr><th scope="col">Sensor</th><th scope="col">Metric</th><th scope="col">Value</th><th scope="col">Unit</th><th scope="col">Time</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr>
      <th scope="row">${r.sensor}</th>
      <td><a href=${`#/gateways/${enc(gateway)}/sensors/${enc(r.sensor)}/${enc(r.metric)}`} aria-label=${`Chart of ${r.sensor} ${r.metric}`}>${r.metric}</a></td>
      <td><${LiveValue} reading=${r} /></td>
      <td>${r.unit || ""}</td>
      <td>${when(r.ts)}</td>
    </tr>`)}</tbody>
  </table></div>`;
}

function Health({ item }) {
  useLive(["health"]);
  const health = live.health[item.id] || item.health;
  if (!health) return html`<p>No health report yet.</p>`;
  const simple = Object.entries(health).filter(([, v]) => v === null || typeof v !== "object");
  const nested = Object.entries(health).filter(([, v]) => v !== null && typeof v === "object");
  return html`<dl class="facts">${simple.map(([k, v]) => html`<div><dt>${k}</dt><dd>${(k === "ts" || k.endsWith("_at")) && typeof v === "number" && v > 1e9 ? when(v) : show(v)}</dd></div>`)}</dl>
    ${nested.map(([k, v]) => html`<details><summary>${k}</summary><${Json} value=${v} label=${`health: ${k}`} /></details>`)}`;
}

function State({ gateway }) {
  const state = useApi(`/api/v1/gateways/${enc(gateway)}/state`, 15_000);
  if (state.error) return html`<${ErrorNote} error=${state.error} />`;
  if (!state.data) return html`<${Loading} what="the state" />`;
  const s = state.data;
  return html`<p>${s.in_sync ? "The gateway runs the desired state." : "The gateway has not applied the desired state yet."} Reported ${when(s.reported_at)}.</p>
    <div class="two">
      <section aria-labelledby="desired-h"><h3 id="desired-h">Desired</h3><${Json} value=${s.desired} label="Desired state" /></section>
      <section aria-labelledby="reported-h"><h3 id="reported-h">Reported</h3><${Json} value=${s.reported} label="Reported state" /></section>
    </div>`;
}

function CommandResult({ rec }) {
  if (rec.status === "pending" || rec.status === "sent") return html`<span class="muted">waiting…</span>`;
  if (rec.error) return html`<span class="error-text">${rec.error}</span>`;
  return html`<${Json} value=${rec.result} label=${`Result of ${rec.command}`} />`;
}

function Commands({ gateway }) {
  const list = useApi(`/api/v1/gateways/${enc(gateway)}/commands?limit=20`, 5_000);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [last, setLast] = useState(null);
  async function send(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    let args = {};
    const text = String(form.get("args") || "").trim();
    setError(null);
    if (text) {
      try {
        args = JSON.parse(text);
      } catch {
        setError(new Error("Arguments must be a JSON object, e.g. {\"lines\": 50}"));
        return;
      }
    }
    setBusy(true);
    try {
      const rec = await post(`/api/v1/gateways/${enc(gateway)}/commands`, { command: form.get("command"), args, wait_s: 10 });
      setLast(rec);
      list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return html`<form class="inline" onSubmit=${send}>
      <label for="cmd">Command</label>
      <select id="cmd" name="command">${COMMANDS.map((c) => html`<option value=${c}>${c}</option>`)}</select>
      <label for="cmd-args">Arguments (JSON)</label>
      <input id="cmd-args" name="args" placeholder='{"lines": 50}' />
      <button type="submit" disabled=${busy}>${busy ? "Sending…" : "Send"}</button>
    </form>
    <${ErrorNote} error=${error} />
    ${last ? html`<div class="result" data-command-result=${last.status} aria-live="polite"><p><strong>${last.command}</strong>: ${last.status}</p><${CommandResult} rec=${last} /></div>` : null}
    <h3>Recent commands</h3>
    ${list.data?.items?.length
      ? html`<div class="scroll" tabindex="0"><table class="list" aria-label="Recent commands">
          <thead><tr><th scope="col">Command</th><th scope="col">Status</th><th scope="col">By</th><th scope="col">Sent</th><th scope="col">Result</th></tr></thead>
          <tbody>${list.data.items.map((r) => html`<tr data-request=${r.request_id}>
            <th scope="row">${r.command}</th><td>${r.status}</td><td>${r.issued_by}</td><td>${when(r.issued_at)}</td>
            <td><details><summary>show</summary><${CommandResult} rec=${r} /></details></td>
          </tr>`)}</tbody></table></div>`
      : html`<p>No command sent yet.</p>`}`;
}

function Logs({ gateway }) {
  const [lines, setLines] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function fetchLogs(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    setBusy(true);
    setError(null);
    try {
      const args = { lines: Number(form.get("lines")) };
      if (form.get("level")) args.level = form.get("level");
      const rec = await post(`/api/v1/gateways/${enc(gateway)}/commands`, { command: "logs", args, wait_s: 15 });
      if (rec.error) throw new Error(rec.error);
      if (rec.status === "pending" || rec.status === "sent") throw new Error("the gateway has not answered yet: try again");
      setLines(rec.result?.lines || []);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return html`<form class="inline" onSubmit=${fetchLogs}>
      <label for="log-lines">Lines</label>
      <input id="log-lines" name="lines" type="number" min="1" max="1000" value="100" />
      <label for="log-level">At least</label>
      <select id="log-level" name="level"><option value="">any level</option><option>INFO</option><option>WARNING</option><option>ERROR</option></select>
      <button type="submit" disabled=${busy}>${busy ? "Asking the gateway…" : "Fetch recent logs"}</button>
    </form>
    <${ErrorNote} error=${error} />
    ${lines ? html`<pre class="logs" tabindex="0" aria-label="Recent log lines" data-log-lines=${lines.length}>${lines.length ? lines.map((r) => (typeof r === "string" ? r : `${when(r.ts)} ${r.level} ${r.logger || r.name || ""} ${r.message ?? r.msg ?? ""}`)).join("\n") : "(no line at that level)"}</pre>` : null}`;
}

export function GatewayPage({ gateway }) {
  useLive(["status"]);
  const fleet = useApi(path("/api/v1/fleet/gateways", { q: gateway }), 10_000);
  const item = fleet.data?.items?.find((g) => g.id === gateway);
  return html`<p class="crumbs"><a href="#/">Fleet</a> › ${gateway}</p>
    <h1>Gateway ${gateway}</h1>
    <${ErrorNote} error=${fleet.error} />
    ${fleet.data && !item ? html`<p class="error" role="alert">This tenant has no gateway ${gateway}.</p>` : null}
    ${item ? html`<dl class="facts" aria-label="Summary">
        <div><dt>Status</dt><dd data-status=${isOnline(item) ? "online" : "offline"}><${Badge} ok=${isOnline(item)} /></dd></div>
        <div><dt>Last seen</dt><dd>${when(item.last_seen)}</dd></div>
        <div><dt>Version</dt><dd>${item.version || "–"}</dd></div>
        <div><dt>Site</dt><dd>${item.site || "–"}</dd></div>
        <div><dt>Tags</dt><dd>${(item.tags || []).join(", ") || "–"}</dd></div>
        <div><dt>Desired state</dt><dd>${item.in_sync ? "applied" : "not applied yet"}</dd></div>
      </dl>` : null}
    <section aria-labelledby="h-readings"><h2 id="h-readings">Live readings</h2><${Readings} gateway=${gateway} /></section>
    ${item ? html`<section aria-labelledby="h-health"><h2 id="h-health">Health</h2><${Health} item=${item} /></section>
      <section aria-labelledby="h-sensors"><h2 id="h-sensors">Sensors</h2>
        ${(item.sensors || []).length ? html`<ul>${item.sensors.map((s) => html`<li>${s.id || JSON.stringify(s)}${s.kind ? ` (${s.kind})` : ""}</li>`)}</ul>` : html`<p>The gateway has reported no paired sensor.</p>`}
      </section>` : null}
    <section aria-labelledby="h-state"><h2 id="h-state">Desired and reported state</h2><${State} gateway=${gateway} /></section>
    <section aria-labelledby="h-commands"><h2 id="h-commands">Commands</h2><${Commands} gateway=${gateway} /></section>
    <section aria-labelledby="h-logs"><h2 id="h-logs">Recent logs</h2><${Logs} gateway=${gateway} /></section>`;
}
