// Telemetry packs as the gateways publish them: SenML (RFC 8428) in CBOR or JSON, maybe zlib-compressed.
import { decode as decodeCbor } from "cborg";

const LABELS = { "-1": "bver", "-2": "bn", "-3": "bt", "-4": "bu", "-5": "bv", "-6": "bs", 0: "n", 1: "u", 2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd" };
const RELATIVE_TIME_LIMIT = 2 ** 28;

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function records(bytes) {
  const first = bytes[0];
  if (first === 0x5b || first === 0x20 || first === 0x0a) return JSON.parse(new TextDecoder().decode(bytes));
  if (first >= 0x80 && first <= 0x9f) {
    return decodeCbor(bytes, { useMaps: true }).map((m) => {
      const out = {};
      for (const [k, v] of m) out[LABELS[String(k)] ?? String(k)] = v;
      return out;
    });
  }
  throw new Error("not a SenML pack (neither CBOR, JSON nor zlib)");
}

/** Readings {sensor, metric, value, unit, ts (epoch seconds)} of one pack's bytes. */
export async function decodePack(bytes) {
  let data = bytes;
  if (data[0] === 0x78) data = await inflate(data);
  const out = [];
  let bn = "";
  let bt = 0;
  let bu;
  let bv = 0;
  for (const r of records(data)) {
    if (r.bn !== undefined) bn = r.bn;
    if (r.bt !== undefined) bt = Number(r.bt);
    if (r.bu !== undefined) bu = r.bu;
    if (r.bv !== undefined) bv = Number(r.bv);
    const name = bn + (r.n ?? "");
    let value;
    if (r.v !== undefined) value = Number(r.v) + bv;
    else if (r.vs !== undefined) value = r.vs;
    else if (r.vb !== undefined) value = r.vb;
    else if (r.s !== undefined) value = Number(r.s);
    else continue;
    let ts = bt + Number(r.t ?? 0);
    if (ts < RELATIVE_TIME_LIMIT) ts += Date.now() / 1000;
    const cut = name.lastIndexOf(":");
    if (cut <= 0) continue;
    out.push({ sensor: name.slice(0, cut), metric: name.slice(cut + 1), value, unit: r.u ?? bu ?? null, ts });
  }
  return out;
}
