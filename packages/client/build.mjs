// Builds the package from the code of record: every ES module tidings serves under /static/
// (src/tidings/web/static, vendor/ excepted) is copied as it is, with this package's own React
// wrapper (src/react.js), into dist/; then TypeScript writes the declarations from their JSDoc.
// `npm pack` / `npm publish` run this (prepack), so the package cannot drift from /static/.
import { cpSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const stat = join(here, "..", "..", "src", "tidings", "web", "static");
const dist = join(here, "dist");

/** The .js files under `dir`, relative to it (vendor/ holds third-party builds: not ours). */
function modules(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== "vendor") out.push(...modules(path).map((p) => join(name, p)));
    } else if (name.endsWith(".js")) out.push(name);
  }
  return out;
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);
const copied = modules(stat);
for (const file of copied) cpSync(join(stat, file), join(dist, file));
cpSync(join(here, "src", "react.js"), join(dist, "react.js"));

// tidings-sw.js is a classic script for a service worker's importScripts(): no module, no types.
const typed = [...copied.filter((f) => f !== "tidings-sw.js"), "react.js"];
const require = createRequire(import.meta.url);
const tsc = join(dirname(require.resolve("typescript/package.json")), "bin", "tsc");
const args = [
  "--allowJs",
  "--declaration",
  "--emitDeclarationOnly",
  "--skipLibCheck",
  "--target",
  "es2022",
  "--module",
  "es2022",
  "--moduleResolution",
  "bundler",
  "--lib",
  "es2022,dom",
  "--outDir",
  dist,
  ...typed.map((f) => join(dist, f)),
];
const run = spawnSync(process.execPath, [tsc, ...args], { stdio: "inherit" });
if (run.status !== 0) {
  console.error(`build.mjs: tsc failed (exit ${run.status})`);
  process.exit(1);
}
console.log(
  `build.mjs: ${typed.length + 1} modules and their declarations in ${relative(".", dist)}`,
);
