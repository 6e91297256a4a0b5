/**
 * Packs the publishable workspace packages into tarballs, exactly as `npm publish` would upload them.
 *
 * A package is publishable when it lives in packages/<name>/, is not private, and is part of the build (referenced
 * by the root tsconfig.json): a new package is picked up as soon as it joins the build. Its dist/ is brought up to
 * date with `tsc -b` first.
 *
 *   tsx scripts/pack.ts [outDir]      (default: release/)
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface WorkspacePackage {
  name: string;
  version: string;
  /** Absolute directory of the package. */
  dir: string;
  /** The parsed package.json. */
  manifest: Record<string, unknown> & {
    name: string;
    version: string;
    dependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
    peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  };
}

export interface PackedPackage extends WorkspacePackage {
  /** Absolute path of the .tgz. */
  tarball: string;
  /** Paths inside the tarball, relative to the package root. */
  files: string[];
}

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
}

/** The root tsconfig.json's references, as absolute directories. */
function buildGraph(root: string): Set<string> {
  // The root tsconfig.json is plain JSON (no comments), so JSON.parse is enough.
  const refs = (readJson(join(root, "tsconfig.json")).references ?? []) as { path: string }[];
  return new Set(refs.map((r) => resolve(root, r.path)));
}

/** The publishable packages of the workspace, sorted by name. */
export function publishablePackages(root = repoRoot): WorkspacePackage[] {
  const inBuild = buildGraph(root);
  const out: WorkspacePackage[] = [];
  for (const entry of readdirSync(join(root, "packages"), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, "packages", entry.name);
    const file = join(dir, "package.json");
    if (!existsSync(file) || !inBuild.has(dir)) continue;
    const manifest = readJson(file) as WorkspacePackage["manifest"];
    if (manifest.private === true) continue;
    out.push({ name: manifest.name, version: manifest.version, dir, manifest });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Runs `tsc -b` over the given packages (incremental: cheap when dist/ is current). */
export function buildPackages(packages: readonly WorkspacePackage[], root = repoRoot): void {
  const tsc = join(root, "node_modules", ".bin", "tsc");
  execFileSync(tsc, ["-b", ...packages.map((p) => p.dir)], { cwd: root, stdio: "pipe" });
}

/**
 * Packs every publishable package into `outDir` (created; existing Coordis tarballs in it are replaced).
 * @param options.build run `tsc -b` first (default true)
 */
export function packAll(outDir: string, options: { build?: boolean; root?: string } = {}): PackedPackage[] {
  const root = options.root ?? repoRoot;
  const packages = publishablePackages(root);
  if (options.build !== false) buildPackages(packages, root);
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(outDir)) if (/^coordis-.*\.tgz$/.test(f)) rmSync(join(outDir, f));
  const args = ["pack", "--json", "--pack-destination", outDir, ...packages.map((p) => p.dir)];
  const report = JSON.parse(
    execFileSync("npm", args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }),
  ) as { name: string; filename: string; files: { path: string }[] }[];
  return packages.map((p) => {
    const entry = report.find((r) => r.name === p.name);
    if (!entry) throw new Error(`npm pack did not report ${p.name}`);
    return { ...p, tarball: join(outDir, entry.filename), files: entry.files.map((f) => f.path).sort() };
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = resolve(process.argv[2] ?? join(repoRoot, "release"));
  for (const p of packAll(outDir)) console.log(`${p.name}@${p.version}  ${p.tarball}  (${p.files.length} files)`);
}
