/**
 * Checks packed tarballs the way a registry user meets them:
 * - publint (strict, suggestions included) on the tarball's contents;
 * - @arethetypeswrong/cli on the tarball, profile esm-only (the packages are ESM only: types must resolve under
 *   node16/nodenext and bundler; node10 and require() from CommonJS are out of scope);
 * - the package's own rules: LICENSE/README/package.json present, no build info, tests or fixtures, no exact
 *   versions or "*" outside devDependencies, internal dependencies within the released range.
 *
 *   tsx scripts/check-packages.ts [dir-with-tarballs]      (packs into a temporary directory when omitted)
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { type PackedPackage, packAll, repoRoot } from "./pack.js";

const run = promisify(execFile);

/** Problems of one tarball (empty when it is fine). */
export async function checkPackage(pkg: PackedPackage, all: readonly PackedPackage[]): Promise<string[]> {
  const problems: string[] = [];
  const data = readFileSync(pkg.tarball);
  const tarball = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  const lint = await publint({ pack: { tarball }, level: "suggestion", strict: true });
  for (const m of lint.messages) {
    problems.push(`publint ${m.type} ${m.code}: ${formatMessage(m, lint.pkg, { color: false }) ?? m.path.join(".")}`);
  }

  const attw = join(repoRoot, "node_modules", ".bin", "attw");
  try {
    await run(attw, [pkg.tarball, "--profile", "esm-only", "--format", "json"], { maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? "";
    let detail = out.slice(0, 2_000) || String(err);
    try {
      const report = JSON.parse(out) as { analysis?: { problems?: { kind: string; entrypoint?: string }[] } };
      const list = report.analysis?.problems ?? [];
      if (list.length > 0) detail = list.map((p) => `${p.kind}${p.entrypoint ? ` (${p.entrypoint})` : ""}`).join(", ");
    } catch {
      // not JSON: keep the raw output
    }
    problems.push(`attw: ${detail}`);
  }

  for (const required of ["LICENSE", "README.md", "package.json"]) {
    if (!pkg.files.includes(required)) problems.push(`tarball lacks ${required}`);
  }
  for (const f of pkg.files) {
    if (/(^|\/)\.tsbuildinfo$|\.tsbuildinfo$/.test(f)) problems.push(`tarball ships build info ${f}`);
    if (/(^|\/)(test|tests|__tests__|fixtures)\//.test(f) || /\.(test|spec)\.[cm]?[jt]s$/.test(f)) {
      problems.push(`tarball ships test file ${f}`);
    }
  }

  const m = pkg.manifest;
  for (const field of ["repository", "homepage", "bugs", "license"] as const) {
    if (m[field] === undefined) problems.push(`package.json has no ${field}`);
  }
  const exportsMap = (m.exports ?? {}) as Record<string, unknown>;
  if (exportsMap["./package.json"] !== "./package.json") problems.push(`package.json does not export ./package.json`);
  for (const [section, deps] of [
    ["dependencies", m.dependencies],
    ["peerDependencies", m.peerDependencies],
  ] as const) {
    for (const [dep, range] of Object.entries(deps ?? {})) {
      if (range === "*" || /^\d+\.\d+\.\d+$/.test(range)) {
        problems.push(`${section}.${dep} is "${range}": use a range (exact pins belong in devDependencies)`);
      }
      const internal = all.find((p) => p.name === dep);
      if (internal && section === "dependencies" && range !== `^${internal.version}`) {
        problems.push(`${section}.${dep} is "${range}", expected the released range ^${internal.version}`);
      }
    }
  }
  if (m.dependencies?.ioredis || m.dependencies?.["prom-client"] || m.dependencies?.fastify) {
    problems.push("ioredis, prom-client and fastify must be peerDependencies, never dependencies");
  }
  return problems;
}

/** Checks every tarball, two at a time (attw starts its own TypeScript). */
export async function checkPackages(packed: readonly PackedPackage[]): Promise<Map<string, string[]>> {
  const results = new Map<string, string[]>();
  const queue = [...packed];
  const worker = async () => {
    for (let p = queue.shift(); p; p = queue.shift()) results.set(p.name, await checkPackage(p, packed));
  };
  await Promise.all([worker(), worker()]);
  return results;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const given = process.argv[2];
  const outDir = given ? resolve(given) : mkdtempSync(join(tmpdir(), "coordis-pack-"));
  try {
    const packed = packAll(outDir, { build: true });
    const results = await checkPackages(packed);
    let failed = 0;
    for (const [name, problems] of results) {
      if (problems.length === 0) console.log(`ok    ${name}`);
      else {
        failed++;
        console.log(`FAIL  ${name}`);
        for (const p of problems) console.log(`        ${p}`);
      }
    }
    process.exitCode = failed > 0 ? 1 : 0;
  } finally {
    if (!given) rmSync(outDir, { recursive: true, force: true });
  }
}
