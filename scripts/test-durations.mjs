// Writes test/durations.json: every test file's duration (ms, 3 s and more) from Vitest's cache of the last run, which
// test/sequencer.ts uses to start the slowest files first on a machine without a cache (a fresh clone, CI).
// Run after a full `npm run test:unit`.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

const dir = new URL("../node_modules/.vite/vitest/", import.meta.url);
const durations = {};
for (const sub of readdirSync(dir)) {
  let results;
  try {
    results = JSON.parse(readFileSync(new URL(`${sub}/results.json`, dir), "utf8")).results;
  } catch {
    continue;
  }
  // An array of ["<project>:<path>", { duration, failed }] pairs (an object of them in older versions).
  for (const [key, { duration }] of Array.isArray(results) ? results : Object.entries(results)) {
    const path = key.slice(key.indexOf(":") + 1);
    if (duration >= 3000) durations[path] = Math.round(duration);
  }
}
const sorted = Object.fromEntries(Object.entries(durations).sort(([, a], [, b]) => b - a));
writeFileSync(new URL("../test/durations.json", import.meta.url), `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`test/durations.json: ${Object.keys(sorted).length} files`);
