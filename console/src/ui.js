// Shared bits of the pages: htm bound to preact, formatting, and hooks for API data and live data.
import { h } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";
import { get } from "./api.js";
import { live, onLive } from "./live.js";

export const html = htm.bind(h);

/** "2026-11-26 02:10:05" in the browser's time zone, for an RFC 3339 string or epoch seconds. */
export function when(value) {
  if (value === null || value === undefined || value === "") return "–";
  const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A value for a person: numbers with at most 4 significant decimals. */
export function show(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(+value.toFixed(4));
  if (value === null || value === undefined) return "–";
  return String(value);
}

/** GET ``path`` now and whenever ``reload()`` is called (and every ``everyMs`` when given). */
export function useApi(path, everyMs = 0) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const reload = useCallback(async () => {
    if (!path) return;
    const mine = ++seq.current;
    try {
      const data = await get(path);
      if (mine === seq.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === seq.current) setState((s) => ({ data: s.data, error, loading: false }));
    }
  }, [path]);
  useEffect(() => {
    setState({ data: null, error: null, loading: true });
    reload();
    if (!everyMs) return undefined;
    const timer = setInterval(reload, everyMs);
    return () => clearInterval(timer);
  }, [reload, everyMs]);
  return { ...state, reload };
}

/** Re-render on live changes of the given kinds; returns the live state. */
export function useLive(kinds = ["status", "health", "readings", "connection"]) {
  const [, setTick] = useState(0);
  useEffect(
    () =>
      onLive((kind) => {
        if (kinds.includes(kind)) setTick((t) => t + 1);
      }),
    [],
  );
  return live;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message || String(error)}</p>`;
}

export function Loading({ what }) {
  return html`<p class="muted" aria-live="polite">Loading ${what}…</p>`;
}

/** A gateway's presence: the live status when heard, else the API's. */
export function isOnline(gateway) {
  const heard = live.status[gateway.id];
  if (heard === "online") return true;
  if (heard === "offline") return false;
  return Boolean(gateway.online);
}

export function Badge({ ok, yes = "online", no = "offline" }) {
  return html`<span class=${`badge ${ok ? "ok" : "off"}`}>${ok ? yes : no}</span>`;
}

export function Json({ value, label }) {
  return html`<pre class="json" tabindex="0" aria-label=${label}>${value === null || value === undefined ? "–" : JSON.stringify(value, null, 2)}</pre>`;
}
