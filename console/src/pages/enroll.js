// Enrollment approvals: a gateway in the device flow shows a user code; the operator enters it here.
import { useState } from "preact/hooks";
import { post } from "../api.js";
import { currentSession } from "../auth.js";
import { ErrorNote, html } from "../ui.js";

export function EnrollPage({ code = "" }) {
  const [done, setDone] = useState([]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function decide(event, approve) {
    event.preventDefault();
    const form = new FormData(event.target.form || event.target);
    const code = String(form.get("user_code") || "").trim().toUpperCase();
    if (!code) {
      setError(new Error("Enter the code the gateway shows (like BDFG-HJKL)."));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const session = await currentSession();
      if (approve) {
        const body = { user_code: code, tenant: session.tenant };
        const id = String(form.get("gateway_id") || "").trim();
        if (id) body.gateway_id = id;
        const r = await post("/api/v1/enrollments/approve", body);
        setDone((d) => [{ code, text: `Approved: gateway ${r.gateway_id} joins tenant ${r.tenant}.` }, ...d]);
      } else {
        await post("/api/v1/enrollments/deny", { user_code: code });
        setDone((d) => [{ code, text: `Refused: the gateway with code ${code} will not be enrolled.` }, ...d]);
      }
      event.target.form ? event.target.form.reset() : event.target.reset();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return html`<h1>Enrollment</h1>
    <p>A new gateway without a claim token shows a code on its local page and in its log. Enter it to let the gateway join this tenant.</p>
    <form class="stack" onSubmit=${(e) => decide(e, true)}>
      <label for="user-code">Code shown by the gateway</label>
      <input id="user-code" name="user_code" autocomplete="off" autocapitalize="characters" placeholder="BDFG-HJKL" value=${code} required />
      <label for="gateway-id">Gateway id (optional: the gateway's own by default)</label>
      <input id="gateway-id" name="gateway_id" autocomplete="off" />
      <div class="buttons">
        <button type="submit" disabled=${busy}>Approve</button>
        <button type="button" class="secondary" disabled=${busy} onClick=${(e) => decide(e, false)}>Refuse</button>
      </div>
    </form>
    <${ErrorNote} error=${error} />
    ${done.length ? html`<ul class="done" aria-live="polite">${done.map((d) => html`<li data-code=${d.code}>${d.text}</li>`)}</ul>` : null}`;
}
