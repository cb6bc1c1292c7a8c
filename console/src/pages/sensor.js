// Sensor detail: a chart of one metric over minutes to months (uPlot; drag to zoom, buttons to zoom and
// pan), with min/max/avg bands. Up to a day, the page reads the raw readings (up to a point budget) and
// computes the bands itself; longer ranges are read from the cloud's rollups (resolution=auto: 1-minute or
// 1-hour buckets with min, max, average and count, as many as the chart has room for).
import { useEffect, useRef, useState } from "preact/hooks";
import { enc, get, path } from "../api.js";
import { onLive } from "../live.js";
import { ErrorNote, Loading, html, show, when } from "../ui.js";

export const POINT_BUDGET = 60_000;
const PAGE = 10_000;
const RANGES = [
  ["15m", "15 minutes", 900],
  ["1h", "1 hour", 3600],
  ["6h", "6 hours", 6 * 3600],
  ["1d", "1 day", 86400],
  ["7d", "7 days", 7 * 86400],
  ["30d", "30 days", 30 * 86400],
  ["90d", "90 days", 90 * 86400],
];

async function fetchSlice(gateway, sensor, metric, since, until, budget) {
  const ts = [];
  const vs = [];
  let unit = null;
  let cursor = null;
  let count = 0;
  do {
    const limit = Math.min(PAGE, budget - count);
    const page = await get(path("/api/v1/readings", { gateway, sensor, metric, since, until, limit, cursor }));
    count += page.items.length;
    for (const r of page.items) {
      if (typeof r.value !== "number") continue;
      ts.push(Date.parse(r.ts) / 1000);
      vs.push(r.value);
      unit = r.unit;
    }
    cursor = page.next_cursor ?? page.next;
  } while (cursor && count < budget);
  return { ts, vs, unit, truncated: Boolean(cursor) };
}

// The range is read in SLICES time slices at once (each paged with its cursor, each with its share of the
// budget), so the cloud's work on one page overlaps the transfer and parsing of another.
const SLICES = 6;
async function fetchReadings(gateway, sensor, metric, fromS, toS) {
  const slices = toS - fromS > 86400 ? SLICES : 1;
  const step = (toS - fromS) / slices;
  const iso = (s) => new Date(s * 1000).toISOString();
  const parts = await Promise.all(
    Array.from({ length: slices }, (_, i) =>
      fetchSlice(gateway, sensor, metric, iso(fromS + i * step), i === slices - 1 ? undefined : iso(fromS + (i + 1) * step), Math.floor(POINT_BUDGET / slices)),
    ),
  );
  const ts = [].concat(...parts.map((p) => p.ts));
  const vs = [].concat(...parts.map((p) => p.vs));
  return { ts, vs, unit: parts.find((p) => p.unit)?.unit ?? null, truncated: parts.some((p) => p.truncated) };
}

// Longer ranges: the cloud's rollups, about one bucket per two pixels of chart (resolution=auto picks the
// coarsest of 1 h and 1 min that still gives that many), plus one raw reading for the unit.
export const ROLLUPS_AFTER_S = 86400;
async function fetchRollups(gateway, sensor, metric, fromS, toS, points) {
  const iso = (s) => new Date(s * 1000).toISOString();
  const since = iso(fromS);
  const until = iso(toS);
  const [first, buckets] = await Promise.all([
    get(path("/api/v1/readings", { gateway, sensor, metric, since, until, limit: 1 })),
    (async () => {
      const items = [];
      let cursor = null;
      let resolution = null;
      do {
        const page = await get(path("/api/v1/readings", { gateway, sensor, metric, since, until, resolution: "auto", points, limit: 10_000, cursor }));
        items.push(...page.items);
        resolution = page.resolution ?? resolution;
        cursor = page.next_cursor ?? page.next;
      } while (cursor && items.length < 200_000);
      return { items, resolution };
    })(),
  ]);
  const ts = [];
  const vs = [];
  const mins = [];
  const maxs = [];
  const counts = [];
  for (const b of buckets.items) {
    if (typeof b.avg !== "number") continue;
    ts.push(Date.parse(b.t) / 1000);
    vs.push(b.avg);
    mins.push(b.min);
    maxs.push(b.max);
    counts.push(b.count);
  }
  return { ts, vs, mins, maxs, counts, unit: first.items[0]?.unit ?? null, truncated: false, resolution: buckets.resolution };
}

function summary(vs) {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of vs) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, max, avg: sum / vs.length };
}

function rolledSummary(d) {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let count = 0;
  for (let i = 0; i < d.ts.length; i++) {
    if (d.mins[i] < min) min = d.mins[i];
    if (d.maxs[i] > max) max = d.maxs[i];
    sum += d.vs[i] * d.counts[i];
    count += d.counts[i];
  }
  return { min, max, avg: sum / count };
}

export function SensorPage({ gateway, sensor, metric }) {
  const [range, setRange] = useState("1h");
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [chartMod, setChartMod] = useState(null);
  const box = useRef(null);
  const plot = useRef(null);
  const seconds = RANGES.find((r) => r[0] === range)[2];

  useEffect(() => {
    import("../chart.js").then(setChartMod, setError);
  }, []);

  useEffect(() => {
    let gone = false;
    setData(null);
    setError(null);
    const started = performance.now();
    const now = Date.now() / 1000;
    const width = Math.max(280, Math.min(box.current?.clientWidth || 800, 1400));
    const read =
      seconds > ROLLUPS_AFTER_S
        ? fetchRollups(gateway, sensor, metric, now - seconds, now, Math.max(50, Math.floor(width / 2)))
        : fetchReadings(gateway, sensor, metric, now - seconds, now);
    read.then(
      (d) => !gone && setData({ ...d, started, from: now - seconds }),
      (err) => !gone && setError(err),
    );
    return () => {
      gone = true;
    };
  }, [gateway, sensor, metric, seconds]);

  // Live readings of this metric join the chart.
  useEffect(
    () =>
      onLive((kind, msg) => {
        if (kind !== "readings" || msg.gateway !== gateway) return;
        const fresh = msg.readings.filter((r) => r.sensor === sensor && r.metric === metric && typeof r.value === "number");
        if (!fresh.length) return;
        setData((d) => {
          if (!d) return d;
          const ts = d.ts.slice();
          const vs = d.vs.slice();
          const rolled = d.mins ? { mins: d.mins.slice(), maxs: d.maxs.slice(), counts: d.counts.slice() } : null;
          for (const r of fresh) {
            if (ts.length && r.ts <= ts[ts.length - 1]) continue;
            ts.push(r.ts);
            vs.push(r.value);
            if (rolled) {
              rolled.mins.push(r.value);
              rolled.maxs.push(r.value);
              rolled.counts.push(1);
            }
          }
          return { ...d, ...(rolled ?? {}), ts, vs, unit: d.unit ?? fresh[0].unit, live: true };
        });
      }),
    [gateway, sensor, metric],
  );

  useEffect(() => {
    if (!chartMod || !data || !box.current) return undefined;
    const el = box.current;
    const width = Math.max(280, Math.min(el.clientWidth || 800, 1400));
    const buckets = Math.max(50, Math.floor(width / 2));
    const reduced = data.mins
      ? { t: data.ts, min: data.mins, max: data.maxs, avg: data.vs, raw: false }
      : chartMod.bucketize(data.ts, data.vs, buckets);
    plot.current?.destroy();
    el.replaceChildren();
    if (!data.ts.length) return undefined;
    plot.current = chartMod.drawChart(el, reduced, { label: `${sensor} ${metric}`, unit: data.unit, width, height: Math.round(Math.min(360, width * 0.55)) });
    el.dataset.points = String(data.counts ? data.counts.reduce((a, c) => a + c, 0) : data.ts.length);
    el.dataset.resolution = data.resolution ?? "raw";
    el.dataset.drawnAt = String(Date.now());
    el.dataset.drawMs = String(Math.round(performance.now() - data.started));
    performance.mark("roost-chart-drawn", { detail: { points: data.ts.length } });
    return undefined;
  }, [chartMod, data]);

  useEffect(() => () => plot.current?.destroy(), []);

  function zoom(factor) {
    const u = plot.current;
    if (!u) return;
    const { min, max } = u.scales.x;
    const mid = (min + max) / 2;
    const half = ((max - min) / 2) * factor;
    u.setScale("x", { min: mid - half, max: mid + half });
  }
  function pan(fraction) {
    const u = plot.current;
    if (!u) return;
    const { min, max } = u.scales.x;
    const step = (max - min) * fraction;
    u.setScale("x", { min: min + step, max: max + step });
  }
  function reset() {
    const u = plot.current;
    if (u && data?.ts.length) u.setScale("x", { min: data.ts[0], max: data.ts[data.ts.length - 1] });
  }

  const n = data?.ts.length ?? 0;
  const last = n ? data.vs[n - 1] : null;
  const readings = data?.counts ? data.counts.reduce((a, c) => a + c, 0) : n;
  const stats = !n ? null : data.mins ? rolledSummary(data) : summary(data.vs);
  return html`<p class="crumbs"><a href="#/">Fleet</a> › <a href=${`#/gateways/${enc(gateway)}`}>${gateway}</a> › ${sensor}</p>
    <h1>${sensor} · ${metric}</h1>
    <div class="toolbar" role="group" aria-label="Time range">
      ${RANGES.map(([key, label]) => html`<button type="button" aria-pressed=${range === key ? "true" : "false"} onClick=${() => setRange(key)}>${label}</button>`)}
    </div>
    <div class="toolbar" role="group" aria-label="Zoom and pan">
      <button type="button" onClick=${() => pan(-0.5)}>← Earlier</button>
      <button type="button" onClick=${() => zoom(0.5)}>Zoom in</button>
      <button type="button" onClick=${() => zoom(2)}>Zoom out</button>
      <button type="button" onClick=${reset}>Whole range</button>
      <button type="button" onClick=${() => pan(0.5)}>Later →</button>
    </div>
    <${ErrorNote} error=${error} />
    ${!data && !error ? html`<${Loading} what="the readings" />` : null}
    ${data && !n ? html`<p>No numeric reading of ${metric} in this range.</p>` : null}
    <div class="chart" ref=${box} role="img" aria-label=${`Chart of ${sensor} ${metric} over the last ${RANGES.find((r) => r[0] === range)[1]}: ${readings} readings`}></div>
    ${stats ? html`<dl class="facts" aria-label="In this range">
      <div><dt>Latest</dt><dd data-latest=${String(last)}>${show(last)} ${data.unit || ""}</dd></div>
      <div><dt>Readings</dt><dd>${readings}</dd></div>
      <div><dt>Min</dt><dd>${show(stats.min)}</dd></div><div><dt>Average</dt><dd>${show(stats.avg)}</dd></div><div><dt>Max</dt><dd>${show(stats.max)}</dd></div>
      <div><dt>From</dt><dd>${when(data.ts[0])}</dd></div>
    </dl>` : null}
    ${data?.truncated ? html`<p class="note" role="note">This range holds more than ${POINT_BUDGET.toLocaleString()} readings: the chart shows the first ${POINT_BUDGET.toLocaleString()} of them, with gaps. Pick a shorter range to see them all (the cloud keeps raw readings only; summaries over long ranges come with rollups).</p>` : data?.mins ? html`<p class="note">Drag across the chart to zoom in; double-click it to zoom out. The band is the min–max of each ${data.resolution === "1m" ? "minute" : "hour"} and the line its average, from the cloud's rollups.</p>` : html`<p class="note">Drag across the chart to zoom in; double-click it to zoom out. The band is the min–max of the readings in each step, the line their average, computed in the browser from the raw readings.</p>`}`;
}
