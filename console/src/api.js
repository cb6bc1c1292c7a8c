// The cloud's HTTP API, as the signed-in operator (session cookie; the CSRF header on unsafe methods).
import { CSRF_HEADER, csrfToken } from "./auth.js";

/** An API error: its message, HTTP status, the parameter it names and any per-item problems. */
export class ApiError extends Error {
  constructor(status, body) {
    const err = body?.error || {};
    super(err.message || err.detail || body?.detail || `the cloud answered ${status}`);
    this.status = status;
    this.parameter = err.parameter || null;
    this.problems = err.problems || [];
  }
}

let onSignedOut = () => {};
/** Called when a request finds the session ended. */
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

/** A request: JSON in and out (a Blob/ArrayBuffer body is sent as it is). */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers[CSRF_HEADER] = csrfToken();
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    payload = body;
    headers["Content-Type"] = "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: { message: text.slice(0, 200) } };
    }
  }
  if (!response.ok) {
    if (response.status === 401) onSignedOut();
    throw new ApiError(response.status, data);
  }
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const put = (path, body) => request("PUT", path, body);

/** ``/api/v1/...?k=v`` with the given query (undefined and null left out). */
export function path(base, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `${base}?${s}` : base;
}

export const enc = encodeURIComponent;
