// Live data over MQTT over WebSockets (/mqtt on this server), as the signed-in operator: the password is a
// short-lived access token from /auth/token, renewed (a new connection, then the old one closed) before it
// expires. Only the tenant's read-only topics are subscribed: telemetry, status, health and events.
import mqtt from "mqtt";
import { accessToken } from "./auth.js";
import { decodePack } from "./senml.js";

const listeners = new Set();
/** The latest of everything heard: {status: {gw: "online"}, health: {gw: {...}}, readings: {"gw|sensor|metric": r}}. */
export const live = { status: {}, health: {}, readings: {}, events: [], connected: false, error: null, renewals: 0 };

/** Call ``fn(kind, data)`` on every change; returns the function that stops it. */
export function onLive(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(kind, data) {
  for (const fn of [...listeners]) {
    try {
      fn(kind, data);
    } catch (err) {
      console.error(err);
    }
  }
}

let client = null;
let pending = null; // a new connection not yet up (replaced if another renewal comes first)
let renewTimer = null;
let tokenExpires = 0;
let tenant = null;
let stopped = true;

function filters(t) {
  return [`roost/${t}/+/telemetry/#`, `roost/${t}/+/status`, `roost/${t}/+/health`, `roost/${t}/+/events/#`];
}

async function onMessage(topic, payload) {
  const parts = topic.split("/");
  if (parts.length < 4 || parts[1] !== tenant) return;
  const gw = parts[2];
  const kind = parts[3];
  try {
    if (kind === "status") {
      live.status[gw] = new TextDecoder().decode(payload).trim();
      emit("status", { gateway: gw, status: live.status[gw] });
    } else if (kind === "health") {
      live.health[gw] = JSON.parse(new TextDecoder().decode(payload));
      emit("health", { gateway: gw, health: live.health[gw] });
    } else if (kind === "telemetry") {
      const readings = await decodePack(payload);
      for (const r of readings) {
        r.gateway = gw;
        const key = `${gw}|${r.sensor}|${r.metric}`;
        const old = live.readings[key];
        if (!old || old.ts <= r.ts) live.readings[key] = r;
      }
      emit("readings", { gateway: gw, readings });
    } else if (kind === "events") {
      const text = new TextDecoder().decode(payload);
      live.events.unshift({ gateway: gw, at: Date.now(), text });
      live.events.length = Math.min(live.events.length, 50);
      emit("event", { gateway: gw, text });
    }
  } catch (err) {
    console.warn(`could not read a message on ${topic}: ${err.message}`);
  }
}

async function open() {
  const token = await accessToken();
  tenant = token.tenant;
  tokenExpires = Date.now() + token.expires_in * 1000;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  if (pending && pending !== client) pending.end(true);
  const next = mqtt.connect(`${scheme}://${location.host}/mqtt`, {
    username: token.sub,
    password: token.access_token,
    protocolVersion: 4,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 2000,
    connectTimeout: 10000,
    clientId: `console-${token.sub}-${Math.random().toString(16).slice(2, 10)}`,
  });
  pending = next;
  next.on("connect", () => {
    if (pending === next) pending = null;
    next.subscribe(filters(tenant), { qos: 0 }, (err) => {
      if (err) {
        live.error = `subscribing failed: ${err.message}`;
        emit("connection", live);
      }
    });
    const old = client;
    client = next;
    if (old && old !== next) {
      old.end(true);
      live.renewals += 1;
    }
    live.connected = true;
    live.error = null;
    emit("connection", live);
  });
  next.on("message", (topic, payload) => onMessage(topic, payload));
  next.on("offline", () => {
    if (next !== client) return;
    live.connected = false;
    emit("connection", live);
    if (Date.now() > tokenExpires - 30_000) renew();
  });
  next.on("error", (err) => {
    live.error = err.message;
    emit("connection", live);
    if (/authori|password/i.test(err.message)) renew();
  });
  if (!client) client = next;
  clearTimeout(renewTimer);
  renewTimer = setTimeout(renew, Math.max(5_000, token.expires_in * 750));
}

let renewing = false;
async function renew() {
  if (stopped || renewing) return;
  renewing = true;
  try {
    await open();
  } catch (err) {
    live.error = `could not renew the live connection: ${err.message}`;
    emit("connection", live);
    clearTimeout(renewTimer);
    renewTimer = setTimeout(renew, 5_000);
  } finally {
    renewing = false;
  }
}

/** Start the live connection (once signed in). */
export async function startLive() {
  if (!stopped) return;
  stopped = false;
  await renew();
}

/** Close it (at sign-out). */
export function stopLive() {
  stopped = true;
  clearTimeout(renewTimer);
  if (client) client.end(true);
  if (pending && pending !== client) pending.end(true);
  client = null;
  pending = null;
  live.connected = false;
  live.status = {};
  live.health = {};
  live.readings = {};
}
