/**
 * `npm run release`: everything up to the upload.
 *
 * 1. `changeset version`: applies the pending changesets (.changeset/*.md) — new versions, CHANGELOG.md entries,
 *    internal dependency ranges — and removes them. Skipped when there are none (re-packing the current versions).
 * 2. `npm install --package-lock-only`: the lockfile follows the new versions.
 * 3. `npm run build`: Lua modules and `tsc -b` into each package's dist/.
 * 4. Packs every publishable package into release/ and checks the tarballs (publint, attw, packaging rules).
 *
 * What is left is printed: review and commit the version bump, then `npm publish` each tarball (in the printed
 * order, dependencies first), which needs the registry credentials this script never touches.
 *
 *   npm run release [-- --out <dir>]
 */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { checkPackages } from "./check-packages.js";
import { type PackedPackage, packAll, repoRoot } from "./pack.js";

function sh(cmd: string, args: string[]): void {
  console.log(`\n$ ${cmd} ${args.join(" ")}`);
  execFileSync(cmd, args, { cwd: repoRoot, stdio: "inherit" });
}

/** Packages ordered so that each comes after the @coordis packages it depends on. */
function publishOrder(packed: readonly PackedPackage[]): PackedPackage[] {
  const byName = new Map(packed.map((p) => [p.name, p]));
  const out: PackedPackage[] = [];
  const visit = (p: PackedPackage, path: string[]) => {
    if (out.includes(p)) return;
    if (path.includes(p.name)) throw new Error(`dependency cycle: ${[...path, p.name].join(" -> ")}`);
    for (const dep of Object.keys(p.manifest.dependencies ?? {})) {
      const d = byName.get(dep);
      if (d) visit(d, [...path, p.name]);
    }
    out.push(p);
  };
  for (const p of packed) visit(p, []);
  return out;
}

const outIndex = process.argv.indexOf("--out");
const outDir = resolve(outIndex > 0 ? (process.argv[outIndex + 1] ?? "release") : join(repoRoot, "release"));

const pending = readdirSync(join(repoRoot, ".changeset")).filter((f) => f.endsWith(".md") && f !== "README.md");
if (pending.length > 0) {
  sh(process.execPath, [join(repoRoot, "scripts", "changeset.mjs"), "version"]);
  sh("npm", ["install", "--package-lock-only", "--no-audit", "--no-fund"]);
} else {
  console.log("no pending changesets: packing the current versions");
}
sh("npm", ["run", "build"]);

console.log(`\npacking into ${relative(repoRoot, outDir) || outDir}/`);
const packed = publishOrder(packAll(outDir, { build: false }));
const results = await checkPackages(packed);
let failed = false;
for (const p of packed) {
  const problems = results.get(p.name) ?? [];
  console.log(`${problems.length === 0 ? "ok  " : "FAIL"}  ${p.name}@${p.version}  ${relative(repoRoot, p.tarball)}`);
  for (const problem of problems) console.log(`        ${problem}`);
  failed ||= problems.length > 0;
}
if (failed) {
  console.error("\nthe tarballs have problems (above): nothing to publish");
  process.exit(1);
}
console.log("\nLeft to do: review and commit the version bump and CHANGELOGs, then publish in this order:");
for (const p of packed) console.log(`  npm publish ${relative(repoRoot, p.tarball)} --access public`);
