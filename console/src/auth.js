// Sign-in, kept behind this one module so that another way of signing in (OpenID Connect) can replace it.
// Today: the cloud's dashboard session (POST /auth/signin -> an HttpOnly session cookie and a CSRF token).

const CSRF_COOKIE = "roost_csrf";
export const CSRF_HEADER = "X-Roost-CSRF";

/** The session's CSRF token (from its cookie), for unsafe requests. */
export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body?.error?.message || body?.detail || `the cloud answered ${response.status}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** Who is signed in ({operator, tenant, role, expires}), or null. */
export async function currentSession() {
  const response = await fetch("/auth/session", { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) return null;
  return answer(response);
}

/** Sign in with a tenant, username and password; the session ({operator, tenant, role, ...}). */
export async function signIn(tenant, username, password) {
  const response = await fetch("/auth/signin", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ tenant, username, password }),
  });
  return answer(response);
}

/** End the session. */
export async function signOut() {
  await fetch("/auth/signout", { method: "POST", credentials: "same-origin", headers: { [CSRF_HEADER]: csrfToken() } });
}

/** A short-lived access token for MQTT: {access_token, expires_in, sub, tenant}. */
export async function accessToken() {
  const response = await fetch("/auth/token", {
    method: "POST",
    credentials: "same-origin",
    headers: { [CSRF_HEADER]: csrfToken() },
  });
  return answer(response);
}

// -- OpenID Connect: the authorization code flow with PKCE, as the cloud's public client "roost-console".
// The cloud's sign-in page (or the external provider it sends the browser to) starts the same dashboard
// session as /auth/signin, so the rest of the console works alike either way.

const SSO_CLIENT = "roost-console";
const SSO_KEY = "roost-console-sso";
const CALLBACK = "/console/callback";

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));

/** Whether this cloud offers OpenID Connect sign-in (and this page can do PKCE: https or loopback). */
export async function ssoAvailable() {
  if (!globalThis.crypto?.subtle) return false;
  try {
    const response = await fetch("/.well-known/openid-configuration", { cache: "no-store" });
    return response.ok;
  } catch {
    return false;
  }
}

/** Leave for the cloud's sign-in page; the browser comes back to /console/callback. */
export async function startSso() {
  const verifier = random(32);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = random(16);
  const nonce = random(16);
  sessionStorage.setItem(SSO_KEY, JSON.stringify({ verifier, state, back: location.hash }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: SSO_CLIENT,
    redirect_uri: location.origin + CALLBACK,
    scope: "openid profile roost",
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`/oauth/authorize?${query}`);
}

/** Whether this page load is the sign-in's way back. */
export function isSsoCallback() {
  return location.pathname === CALLBACK;
}

/** Finish the sign-in on /console/callback: check the state, exchange the code; the route to go back to. */
export async function finishSso() {
  const params = new URLSearchParams(location.search);
  const saved = JSON.parse(sessionStorage.getItem(SSO_KEY) || "null");
  sessionStorage.removeItem(SSO_KEY);
  if (params.get("error")) throw new Error(params.get("error_description") || params.get("error"));
  if (!saved || params.get("state") !== saved.state) throw new Error("this sign-in was not started here: sign in again");
  const response = await fetch("/oauth/token", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code") || "",
      redirect_uri: location.origin + CALLBACK,
      code_verifier: saved.verifier,
      client_id: SSO_CLIENT,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error_description || body.error || `the sign-in failed (${response.status})`);
  return saved.back || "";
}
