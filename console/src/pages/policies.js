// Policies: the active Cedar policy set, an editor with the cloud's validation errors, a diff of the edit
// against the active set, and the history of versions.
import { useEffect, useState } from "preact/hooks";
import { put } from "../api.js";
import { ErrorNote, Loading, html, useApi, when } from "../ui.js";

function Diff({ before, after }) {
  const [lib, setLib] = useState(null);
  useEffect(() => {
    import("diff").then(setLib);
  }, []);
  if (!lib) return html`<${Loading} what="the diff" />`;
  const parts = lib.diffLines(before, after);
  const changed = parts.some((p) => p.added || p.removed);
  if (!changed) return html`<p>No change against the active set.</p>`;
  return html`<pre class="diff" tabindex="0" aria-label="Changes against the active policy set">${parts.map((p) => {
    const sign = p.added ? "+" : p.removed ? "-" : " ";
    const lines = p.value.replace(/\n$/, "").split("\n").map((l) => `${sign} ${l}`).join("\n") + "\n";
    return p.added ? html`<ins>${lines}</ins>` : p.removed ? html`<del>${lines}</del>` : html`<span>${lines}</span>`;
  })}</pre>`;
}

export function PoliciesPage() {
  const current = useApi("/api/v1/policies");
  const history = useApi("/api/v1/policies/history");
  const [text, setText] = useState(null);
  const [comment, setComment] = useState("");
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(null);
  const [busy, setBusy] = useState(false);
  const active = current.data?.text ?? "";
  const draft = text ?? active;
  async function save(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      const r = await put("/api/v1/policies", { text: draft, comment });
      setSaved(r);
      setText(null);
      setComment("");
      current.reload();
      history.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  if (current.error) return html`<h1>Policies</h1><${ErrorNote} error=${current.error} />`;
  if (!current.data) return html`<h1>Policies</h1><${Loading} what="the policies" />`;
  return html`<h1>Policies</h1>
    <p>Version ${current.data.version}: ${current.data.items.length} policies decide who may do what, for the broker and the API alike. Only an owner may replace them (they apply to every tenant).</p>
    <section aria-labelledby="h-active"><h2 id="h-active">Active policies</h2>
      <ul class="policies">${current.data.items.map((p) => html`<li><details><summary><span class=${`badge ${p.effect === "forbid" ? "bad" : "ok"}`}>${p.effect}</span> ${p.id}</summary><pre tabindex="0">${p.text}</pre></details></li>`)}</ul>
    </section>
    <section aria-labelledby="h-edit"><h2 id="h-edit">Edit</h2>
      <form class="stack" onSubmit=${save}>
        <label for="policy-text">Policy set (Cedar)</label>
        <textarea id="policy-text" rows="18" spellcheck="false" value=${draft} onInput=${(e) => setText(e.target.value)} aria-invalid=${error ? "true" : "false"} aria-describedby="policy-problems"></textarea>
        <label for="policy-comment">Why (kept in the history)</label>
        <input id="policy-comment" value=${comment} onInput=${(e) => setComment(e.target.value)} />
        <div class="buttons">
          <button type="submit" disabled=${busy || draft === active}>${busy ? "Saving…" : "Replace the policy set"}</button>
          <button type="button" class="secondary" disabled=${draft === active} onClick=${() => { setText(null); setError(null); }}>Discard the edit</button>
        </div>
      </form>
      <div id="policy-problems">
        ${error ? html`<div class="error" role="alert"><p>${error.message}</p>${error.problems?.length ? html`<ul data-problems=${error.problems.length}>${error.problems.map((p) => html`<li><strong>${p.policy}</strong>: ${p.problem}</li>`)}</ul>` : null}</div>` : null}
      </div>
      ${saved ? html`<p role="status">Saved as version ${saved.version}.</p>` : null}
      <h3>Changes</h3>
      <${Diff} before=${active} after=${draft} />
    </section>
    <section aria-labelledby="h-history"><h2 id="h-history">History</h2>
      ${history.data ? html`<div class="scroll" tabindex="0"><table class="list" aria-label="Policy history">
        <thead><tr><th scope="col">Version</th><th scope="col">By</th><th scope="col">When</th><th scope="col">Why</th><th scope="col">SHA-256</th></tr></thead>
        <tbody>${[...history.data.items].reverse().map((v) => html`<tr data-version=${v.version}><th scope="row">${v.version}</th><td>${v.by}</td><td>${when(v.at)}</td><td>${v.comment || "–"}</td><td><code>${v.sha256.slice(0, 12)}</code></td></tr>`)}</tbody>
      </table></div>` : html`<${ErrorNote} error=${history.error} />`}
    </section>`;
}
