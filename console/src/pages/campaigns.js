// Update campaigns: upload a bundle, start a campaign in stages, follow each gateway, halt and resume.
import { useState } from "preact/hooks";
import { enc, post, request } from "../api.js";
import { ErrorNote, Loading, html, useApi, when } from "../ui.js";

function Upload({ onUploaded }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(null);
  async function upload(event) {
    event.preventDefault();
    const file = event.target.elements.bundle.files[0];
    if (!file) {
      setError(new Error("Choose a bundle file first."));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const info = await request("POST", "/api/v1/bundles", file);
      setDone(info);
      onUploaded();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return html`<form class="inline" onSubmit=${upload}>
      <label for="bundle-file">Bundle file</label>
      <input id="bundle-file" name="bundle" type="file" />
      <button type="submit" disabled=${busy}>${busy ? "Uploading…" : "Upload"}</button>
    </form>
    <${ErrorNote} error=${error} />
    ${done ? html`<p role="status">Uploaded ${done.name} (version ${done.version}).</p>` : null}`;
}

function Create({ bundles, onCreated }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function create(event) {
    event.preventDefault();
    const f = new FormData(event.target);
    const stages = String(f.get("stages")).split(/[\s,]+/).filter(Boolean).map(Number);
    if (stages.some((n) => !Number.isInteger(n))) {
      setError(new Error("Stages: whole percentages separated by commas, ending with 100 (e.g. 10, 50, 100)."));
      return;
    }
    const threshold = Number(f.get("threshold")) / 100;
    const ids = String(f.get("ids") || "").split(/[\s,]+/).filter(Boolean);
    const tags = String(f.get("tags") || "").split(/[\s,]+/).filter(Boolean);
    const selector = ids.length || tags.length ? { ids, tags } : { all: true };
    setBusy(true);
    setError(null);
    try {
      const c = await post("/api/v1/campaigns", { bundle: f.get("bundle"), selector, stages, failure_threshold: threshold });
      location.hash = `#/campaigns/${enc(c.id)}`;
      onCreated();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  if (!bundles.length) return html`<p>Upload a bundle first.</p>`;
  return html`<form class="stack" onSubmit=${create}>
      <label for="c-bundle">Bundle</label>
      <select id="c-bundle" name="bundle">${bundles.map((b) => html`<option value=${b.name}>${b.name} (${b.version}${b.hardware ? `, ${b.hardware}` : ""})</option>`)}</select>
      <label for="c-ids">Gateways (ids; empty: every gateway)</label>
      <input id="c-ids" name="ids" autocomplete="off" placeholder="gw-1, gw-2" />
      <label for="c-tags">Only gateways with the tags</label>
      <input id="c-tags" name="tags" autocomplete="off" placeholder="north" />
      <label for="c-stages">Stages (percent of the gateways)</label>
      <input id="c-stages" name="stages" value="10, 50, 100" required />
      <label for="c-threshold">Halt when more than this percent of a stage fails</label>
      <input id="c-threshold" name="threshold" type="number" min="0" max="99" value="20" required />
      <button type="submit" disabled=${busy}>${busy ? "Starting…" : "Start the campaign"}</button>
    </form>
    <${ErrorNote} error=${error} />`;
}

export function CampaignsPage() {
  const bundles = useApi("/api/v1/bundles");
  const campaigns = useApi("/api/v1/campaigns", 5_000);
  const items = campaigns.data?.items || [];
  return html`<h1>Update campaigns</h1>
    <${ErrorNote} error=${campaigns.error} />
    <section aria-labelledby="h-campaigns"><h2 id="h-campaigns">Campaigns</h2>
      ${campaigns.loading && !campaigns.data ? html`<${Loading} what="the campaigns" />` : null}
      ${campaigns.data && !items.length ? html`<p>No campaign yet.</p>` : null}
      ${items.length ? html`<div class="scroll" tabindex="0"><table class="list" aria-label="Campaigns">
        <thead><tr><th scope="col">Campaign</th><th scope="col">Bundle</th><th scope="col">State</th><th scope="col">Stage</th><th scope="col">Started</th></tr></thead>
        <tbody>${items.map((c) => html`<tr data-campaign=${c.id} data-state=${c.state}>
          <th scope="row"><a href=${`#/campaigns/${enc(c.id)}`}>${c.id}</a></th><td>${c.bundle} (${c.version})</td>
          <td>${c.state}</td><td>${c.stage + 1} of ${c.stages.length}</td><td>${when(c.created_at)} by ${c.created_by}</td>
        </tr>`)}</tbody></table></div>` : null}
    </section>
    <section aria-labelledby="h-upload"><h2 id="h-upload">Upload a bundle</h2><${Upload} onUploaded=${bundles.reload} /></section>
    <section aria-labelledby="h-new"><h2 id="h-new">New campaign</h2>
      <${ErrorNote} error=${bundles.error} />
      ${bundles.data ? html`<${Create} bundles=${bundles.data.items} onCreated=${campaigns.reload} />` : null}
    </section>`;
}

export function CampaignPage({ id }) {
  const c = useApi(`/api/v1/campaigns/${enc(id)}`, 3_000);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function act(what, body) {
    setBusy(true);
    setError(null);
    try {
      await post(`/api/v1/campaigns/${enc(id)}/${what}`, body);
      c.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  const d = c.data;
  return html`<p class="crumbs"><a href="#/campaigns">Update campaigns</a> › ${id}</p>
    <h1>Campaign ${id}</h1>
    <${ErrorNote} error=${c.error || error} />
    ${!d ? html`<${Loading} what="the campaign" />` : html`
      <dl class="facts" aria-label="Campaign">
        <div><dt>State</dt><dd data-campaign-state=${d.state}>${d.state}</dd></div>
        <div><dt>Bundle</dt><dd>${d.bundle} (${d.version})</dd></div>
        <div><dt>Stage</dt><dd>${d.stage + 1} of ${d.stages.length} (${d.stages.join("%, ")}%)</dd></div>
        <div><dt>Halts above</dt><dd>${Math.round(d.failure_threshold * 100)}% failed</dd></div>
        <div><dt>Started</dt><dd>${when(d.created_at)} by ${d.created_by}</dd></div>
        ${d.reason ? html`<div><dt>Why</dt><dd>${d.reason}</dd></div>` : null}
      </dl>
      <div class="buttons">
        ${d.state === "running" ? html`<button type="button" disabled=${busy} onClick=${() => act("halt", { reason: "halted from the console" })}>Halt</button>` : null}
        ${d.state === "halted" ? html`<button type="button" disabled=${busy} onClick=${() => act("resume", {})}>Resume</button>
          <button type="button" class="secondary" disabled=${busy} onClick=${() => act("resume", { retry_failed: true })}>Resume and retry the failed</button>` : null}
      </div>
      <h2>Progress</h2>
      <p>${Object.entries(d.summary || {}).map(([k, v]) => `${v} ${k}`).join(", ") || "no gateway"}</p>
      <div class="scroll" tabindex="0"><table class="list" aria-label="Progress per gateway">
        <thead><tr><th scope="col">Gateway</th><th scope="col">Stage</th><th scope="col">Status</th><th scope="col">Why</th><th scope="col">Updated</th></tr></thead>
        <tbody>${(d.gateways || []).map((t) => html`<tr data-target=${t.gateway} data-status=${t.status}>
          <th scope="row"><a href=${`#/gateways/${enc(t.gateway)}`}>${t.gateway}</a></th><td>${t.stage + 1}</td><td>${t.status}</td><td>${t.reason || "–"}</td><td>${when(t.updated_at)}</td>
        </tr>`)}</tbody></table></div>`}`;
}
