// The Roost console: sign-in, then the pages (hash routes) inside one layout.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { whenSignedOut } from "./api.js";
import { currentSession, finishSso, isSsoCallback, signIn, signOut, ssoAvailable, startSso } from "./auth.js";
import { startLive, stopLive } from "./live.js";
import { html, useLive } from "./ui.js";
import { FleetPage } from "./pages/fleet.js";
import { GatewayPage } from "./pages/gateway.js";
import { SensorPage } from "./pages/sensor.js";
import { AlertsPage } from "./pages/alerts.js";
import { EnrollPage } from "./pages/enroll.js";
import { CampaignsPage, CampaignPage } from "./pages/campaigns.js";
import { PoliciesPage } from "./pages/policies.js";
import { AppsPage } from "./pages/apps.js";

const ROUTES = [
  [/^\/?$/, () => html`<${FleetPage} />`, "Fleet"],
  [/^\/gateways\/([^/]+)$/, (m) => html`<${GatewayPage} gateway=${m[1]} />`, "Gateway"],
  [/^\/gateways\/([^/]+)\/sensors\/([^/]+)\/([^/]+)$/, (m) => html`<${SensorPage} gateway=${m[1]} sensor=${m[2]} metric=${m[3]} />`, "Sensor"],
  [/^\/alerts$/, () => html`<${AlertsPage} />`, "Alerts"],
  [/^\/enroll(?:\/([A-Za-z0-9-]+))?$/, (m) => html`<${EnrollPage} code=${m[1] || ""} />`, "Enrollment"],
  [/^\/campaigns$/, () => html`<${CampaignsPage} />`, "Update campaigns"],
  [/^\/campaigns\/([^/]+)$/, (m) => html`<${CampaignPage} id=${m[1]} />`, "Campaign"],
  [/^\/policies$/, () => html`<${PoliciesPage} />`, "Policies"],
  [/^\/apps$/, () => html`<${AppsPage} />`, "API clients"],
];

const NAV = [
  ["#/", "Fleet"],
  ["#/alerts", "Alerts"],
  ["#/enroll", "Enrollment"],
  ["#/campaigns", "Updates"],
  ["#/policies", "Policies"],
  ["#/apps", "API clients"],
];

function route() {
  return decodeURI(location.hash.replace(/^#/, "") || "/");
}

function useRoute() {
  const [path, setPath] = useState(route());
  useEffect(() => {
    const on = () => setPath(route());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return path;
}

function SignIn({ onSignedIn, initialError }) {
  const [error, setError] = useState(initialError || null);
  const [busy, setBusy] = useState(false);
  const [sso, setSso] = useState(false);
  useEffect(() => {
    ssoAvailable().then(setSso);
  }, []);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signIn(form.get("tenant"), form.get("username"), form.get("password")));
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  }
  return html`<main id="main" class="signin">
    <h1>Roost console</h1>
    <form onSubmit=${submit} aria-describedby="signin-error">
      <label for="tenant">Tenant</label>
      <input id="tenant" name="tenant" autocomplete="organization" required value="default" />
      <label for="username">Username</label>
      <input id="username" name="username" autocomplete="username" required />
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required />
      <button type="submit" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
      <p id="signin-error" class="error" role="alert">${error || ""}</p>
    </form>
    ${sso ? html`<p class="or">or</p><button type="button" class="secondary" onClick=${() => startSso().catch((e) => setError(e.message))}>Sign in with single sign-on</button>` : null}
  </main>`;
}

function LiveState() {
  const state = useLive(["connection"]);
  const text = state.connected ? "live" : state.error ? `live data: ${state.error}` : "connecting…";
  return html`<span class=${`live ${state.connected ? "ok" : "off"}`} data-live=${state.connected ? "on" : "off"} data-renewals=${state.renewals} role="status">${text}</span>`;
}

function Layout({ session, onSignOut, children, path }) {
  return html`<a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/">Roost</a>
      <nav aria-label="Pages">
        <ul>
          ${NAV.map(([href, label]) => {
            const here = href === "#/" ? path === "/" || path.startsWith("/gateways") : path.startsWith(href.slice(1));
            return html`<li><a href=${href} aria-current=${here ? "page" : undefined}>${label}</a></li>`;
          })}
        </ul>
      </nav>
      <div class="who">
        <${LiveState} />
        <span>${session.operator} · ${session.tenant} (${session.role})</span>
        <button type="button" class="link" onClick=${onSignOut}>Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1">${children}</main>`;
}

function App() {
  const [session, setSession] = useState(undefined);
  const [ssoError, setSsoError] = useState(null);
  const path = useRoute();
  useEffect(() => {
    whenSignedOut(() => {
      stopLive();
      setSession(null);
    });
    (async () => {
      if (isSsoCallback()) {
        try {
          const back = await finishSso();
          history.replaceState(null, "", `/console/${back}`);
          dispatchEvent(new HashChangeEvent("hashchange"));
        } catch (err) {
          history.replaceState(null, "", "/console/");
          setSsoError(err.message);
        }
      }
      setSession(await currentSession().catch(() => null));
    })();
  }, []);
  useEffect(() => {
    if (session) startLive().catch((err) => console.warn(err));
  }, [session]);
  useEffect(() => {
    const found = ROUTES.find(([rx]) => rx.test(path));
    document.title = session ? `${found ? found[2] : "Not found"} · Roost console` : "Sign in · Roost console";
  }, [path, session]);
  if (session === undefined) return html`<p class="loading">Loading…</p>`;
  if (!session) return html`<${SignIn} onSignedIn=${setSession} initialError=${ssoError} />`;
  const found = ROUTES.find(([rx]) => rx.test(path));
  const page = found ? found[1](path.match(found[0]).map((s) => (s === undefined ? s : decodeURIComponent(s)))) : html`<h1>Not found</h1><p>No page at ${path}.</p>`;
  const out = async () => {
    stopLive();
    await signOut();
    setSession(null);
  };
  return html`<${Layout} session=${session} onSignOut=${out} path=${path}>${page}<//>`;
}

render(html`<${App} />`, document.getElementById("app"));
