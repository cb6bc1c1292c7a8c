// Builds the console into cloud/console_dist (or $ROOST_CONSOLE_OUT): hashed, minified ES modules and CSS,
// index.html naming them, a gzip copy of every file, and manifest.json with the first load's gzip size.
// Fails when the first load's compressed script passes BUDGET_BYTES.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(process.env.ROOST_CONSOLE_OUT || join(HERE, "..", "cloud", "console_dist"));
const ASSETS = join(OUT, "assets");
const PREFIX = "/console/assets/";
const BUDGET_BYTES = 300 * 1000;

rmSync(OUT, { recursive: true, force: true });
mkdirSync(ASSETS, { recursive: true });

const result = await build({
  entryPoints: { main: join(HERE, "src", "main.js") },
  bundle: true,
  format: "esm",
  splitting: true,
  minify: true,
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  outdir: ASSETS,
  entryNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
  assetNames: "[name]-[hash]",
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
});

const outputs = result.metafile.outputs;
const rel = (p) => relative(ASSETS, resolve(p)).split("\\").join("/");
const entryPath = Object.keys(outputs).find((p) => outputs[p].entryPoint && p.endsWith(".js"));
const entry = outputs[entryPath];
const css = entry.cssBundle ? rel(entry.cssBundle) : null;

// What the browser fetches before the first page draws: the entry and its static imports, transitively.
const firstLoad = new Set();
const walk = (path) => {
  if (firstLoad.has(path)) return;
  firstLoad.add(path);
  for (const imp of outputs[path].imports) if (imp.kind === "import-statement" && !imp.external) walk(imp.path);
};
walk(entryPath);

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Roost console</title>
${css ? `<link rel="stylesheet" href="${PREFIX}${css}">` : ""}
${[...firstLoad].filter((p) => p !== entryPath).map((p) => `<link rel="modulepreload" href="${PREFIX}${rel(p)}">`).join("\n")}
<script type="module" src="${PREFIX}${rel(entryPath)}"></script>
</head>
<body>
<div id="app"><p class="loading">Loading the Roost console…</p></div>
<noscript>The Roost console needs JavaScript.</noscript>
</body>
</html>
`;
writeFileSync(join(OUT, "index.html"), html);

const files = {};
const gz = (full) => {
  const data = readFileSync(full);
  const packed = gzipSync(data, { level: 9 });
  writeFileSync(full + ".gz", packed);
  return { bytes: data.length, gzip_bytes: packed.length, sha256: createHash("sha256").update(data).digest("hex") };
};
for (const name of readdirSync(ASSETS)) if (!name.endsWith(".gz")) files[name] = gz(join(ASSETS, name));
files["../index.html"] = gz(join(OUT, "index.html"));

const firstLoadFiles = [...firstLoad].map(rel);
const firstLoadGzip = firstLoadFiles.reduce((sum, f) => sum + files[f].gzip_bytes, 0);
const manifest = {
  entry: rel(entryPath),
  css,
  first_load: firstLoadFiles,
  first_load_gzip_bytes: firstLoadGzip,
  budget_gzip_bytes: BUDGET_BYTES,
  files,
};
writeFileSync(join(OUT, "manifest.json"), JSON.stringify(manifest, null, 1) + "\n");

const kb = (n) => (n / 1000).toFixed(1) + " KB";
const all = Object.entries(files).filter(([f]) => f.endsWith(".js"));
console.log(`console built in ${relative(process.cwd(), OUT) || OUT}: ${all.length} scripts`);
for (const [f, v] of all) console.log(`  ${f.padEnd(28)} ${kb(v.bytes).padStart(9)}  gzip ${kb(v.gzip_bytes).padStart(8)}`);
console.log(`first load: ${kb(firstLoadGzip)} of gzip-compressed script (budget ${kb(BUDGET_BYTES)})`);
if (firstLoadGzip > BUDGET_BYTES) {
  console.error(`the first load is over budget by ${kb(firstLoadGzip - BUDGET_BYTES)}`);
  process.exit(1);
}
