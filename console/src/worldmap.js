// A world map drawn as SVG from Natural Earth's 110m countries (world-atlas), in an equirectangular
// projection, with a marker per located gateway. Loaded on demand (its own chunk).
import { feature } from "topojson-client";
import countries from "world-atlas/countries-110m.json";
import { html } from "./ui.js";

const W = 960;
const H = 480;
const x = (lon) => ((lon + 180) / 360) * W;
const y = (lat) => ((90 - lat) / 180) * H;

function ringPath(ring) {
  let d = "";
  let prev = null;
  for (const [lon, lat] of ring) {
    // A jump across the antimeridian starts a new piece instead of a line across the whole map.
    const move = prev === null || Math.abs(lon - prev) > 180;
    d += `${move ? "M" : "L"}${x(lon).toFixed(1)},${y(lat).toFixed(1)}`;
    prev = lon;
  }
  return d + "Z";
}

let landPath = null;
function land() {
  if (landPath !== null) return landPath;
  const geo = feature(countries, countries.objects.countries);
  const parts = [];
  for (const f of geo.features) {
    const g = f.geometry;
    if (!g) continue;
    const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
    for (const poly of polys) for (const ring of poly) parts.push(ringPath(ring));
  }
  landPath = parts.join("");
  return landPath;
}

/** The location of a gateway item as [lat, lon], or null. */
export function located(g) {
  const loc = g.location;
  if (!loc || typeof loc !== "object") return null;
  const lat = Number(loc.lat ?? loc.latitude);
  const lon = Number(loc.lon ?? loc.longitude);
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  return [lat, lon];
}

export function WorldMap({ gateways, online }) {
  const pins = gateways.map((g) => [g, located(g)]).filter(([, p]) => p);
  return html`<figure class="map">
    <svg viewBox=${`0 0 ${W} ${H}`} role="group" aria-labelledby="map-title" data-pins=${pins.length}>
      <title id="map-title">World map with ${pins.length} located gateway${pins.length === 1 ? "" : "s"}</title>
      <rect width=${W} height=${H} class="sea" />
      <path d=${land()} class="land" fill-rule="evenodd" />
      ${pins.map(([g, [lat, lon]]) => html`<a href=${`#/gateways/${encodeURIComponent(g.id)}`} aria-label=${`${g.id} (${online(g) ? "online" : "offline"})`}>
        <circle cx=${x(lon)} cy=${y(lat)} r="7" class=${`pin ${online(g) ? "ok" : "off"}`}><title>${g.id}</title></circle>
      </a>`)}
    </svg>
    <figcaption>${pins.length ? `${pins.length} of ${gateways.length} gateways have a location.` : "No gateway has reported a location yet."}</figcaption>
  </figure>`;
}
