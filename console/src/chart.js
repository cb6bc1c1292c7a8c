// A time-series chart (uPlot) with a min/max band around the average. Loaded on demand (its own chunk).
import uPlot from "uplot";

/** Reduce [ts[], v[]] (seconds, sorted) to at most ``buckets`` buckets of {t, min, max, avg}. */
export function bucketize(ts, vs, buckets) {
  const n = ts.length;
  if (n <= buckets) return { t: ts, min: vs, max: vs, avg: vs, raw: true };
  const t0 = ts[0];
  const span = ts[n - 1] - t0 || 1;
  const width = span / buckets;
  const t = [];
  const min = [];
  const max = [];
  const avg = [];
  let i = 0;
  for (let b = 0; b < buckets && i < n; b++) {
    const end = b === buckets - 1 ? Infinity : t0 + (b + 1) * width;
    let lo = Infinity;
    let hi = -Infinity;
    let sum = 0;
    let count = 0;
    while (i < n && ts[i] < end) {
      const v = vs[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      sum += v;
      count++;
      i++;
    }
    if (!count) continue;
    t.push(t0 + (b + 0.5) * width);
    min.push(lo);
    max.push(hi);
    avg.push(sum / count);
  }
  return { t, min, max, avg, raw: false };
}

/** Draw into ``el``; returns the uPlot (call .destroy() when done). */
export function drawChart(el, { t, min, max, avg, raw }, { label, unit, width, height }) {
  const axisStroke = getComputedStyle(el).color || "#222";
  const series = [
    {},
    { label: `${label} (average)`, stroke: "#0a58ca", width: 2, value: (u, v) => (v == null ? "–" : `${+v.toFixed(3)} ${unit || ""}`) },
  ];
  const data = [t, avg];
  const opts = {
    width,
    height,
    series,
    scales: { x: { time: true } },
    axes: [{ stroke: axisStroke, grid: { stroke: "#8884" } }, { stroke: axisStroke, grid: { stroke: "#8884" }, label: unit || "" }],
    cursor: { drag: { x: true, y: false, uni: 30 } },
  };
  if (!raw) {
    series.push({ label: "max", stroke: "#0a58ca55", width: 1 }, { label: "min", stroke: "#0a58ca55", width: 1 });
    data.push(max, min);
    opts.bands = [{ series: [2, 3], fill: "#0a58ca22" }];
  }
  return new uPlot(opts, data, el);
}
