/**
 * Packages as users get them: every publishable package is packed (scripts/pack.ts), the tarballs are checked with
 * publint, @arethetypeswrong/cli and the packaging rules (scripts/check-packages.ts), then installed from the
 * registry's point of view into an app outside the workspace that brings its own ioredis, fastify, prom-client and
 * @fastify/session. The app's consumer program (test/consumer/app/main.ts) and the examples/ programs are
 * type-checked with strict settings under NodeNext and Bundler resolution; the consumer program is run against the
 * suite's Redis (the least-privilege user).
 *
 * It runs twice: with the newest versions the peer ranges allow (ioredis 6) and with the oldest (ioredis 5.2.5, the first 5.x with the named `Redis` export, and
 * the lowest fastify, prom-client, @fastify/session): the peer ranges claim exactly what these two runs prove.
 *
 * Installs are kept under the OS temp dir, keyed by a hash of the tarballs and the app's dependencies, so a rerun
 * with unchanged packages reuses the install; npm's own cache serves the registry packages (--prefer-offline).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import { promisify } from "node:util";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { checkPackages } from "../../scripts/check-packages.js";
import { type PackedPackage, packAll, repoRoot } from "../../scripts/pack.js";

const run = promisify(execFile);
const appSources = join(repoRoot, "test", "consumer", "app");
const workRoot = join(tmpdir(), "coordis-consumer");
const tsc = join(repoRoot, "node_modules", ".bin", "tsc");

/** Peer versions per run: the newest and the oldest that the published ranges allow. */
const VARIANTS = {
  newest: {
    ioredis: "^6.0.0",
    fastify: "^5.0.0",
    "prom-client": "^15.0.0",
    "@fastify/session": "^11.0.0",
    "@fastify/cookie": "^11.0.0",
    // ioredis 6.1.0's declarations import redis-errors, whose types it lists only as its own devDependency: a
    // strict app (skipLibCheck: false) on ioredis 6.1 needs them, whatever else it uses (the root README says so).
    "@types/redis-errors": "^1.2.1",
  },
  oldest: {
    ioredis: "5.2.5",
    fastify: "5.0.0",
    "prom-client": "15.0.0",
    "@fastify/session": "11.0.0",
    "@fastify/cookie": "11.0.0",
  },
} as const;
type Variant = keyof typeof VARIANTS;

/** npm's environment without what `npm test` exports (npm_config_local_prefix would point npm at this repo). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return env;
}

let packDir = "";
let packed: PackedPackage[] = [];
const installs = new Map<Variant, Promise<string>>();

/** Installs (or reuses) the app of a variant; resolves to its directory. */
async function installApp(variant: Variant): Promise<string> {
  const hash = createHash("sha256");
  for (const p of packed) hash.update(p.name).update(readFileSync(p.tarball));
  hash.update(JSON.stringify(VARIANTS[variant]));
  const dir = join(workRoot, `${variant}-${hash.digest("hex").slice(0, 16)}`);
  const marker = join(dir, ".installed");
  if (!existsSync(marker)) {
    mkdirSync(workRoot, { recursive: true });
    for (const old of readdirSync(workRoot)) {
      if (old.startsWith(`${variant}-`)) rmSync(join(workRoot, old), { recursive: true, force: true });
    }
    mkdirSync(join(dir, "vendor"), { recursive: true });
    const dependencies: Record<string, string> = { ...VARIANTS[variant], "@types/node": "^20.19.0" };
    for (const p of packed) {
      copyFileSync(p.tarball, join(dir, "vendor", basename(p.tarball)));
      dependencies[p.name] = `file:vendor/${basename(p.tarball)}`;
    }
    const manifest = { name: `coordis-consumer-${variant}`, private: true, type: "module", dependencies };
    writeFileSync(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
      cwd: dir,
      env: cleanEnv(),
      maxBuffer: 16 * 1024 * 1024,
    });
    writeFileSync(marker, new Date().toISOString());
  }
  return dir;
}

beforeAll(() => {
  packDir = join(workRoot, `pack-${process.pid}`);
  packed = packAll(packDir);
  for (const v of Object.keys(VARIANTS) as Variant[]) {
    const p = installApp(v);
    p.catch(() => {}); // reported by the test that awaits it
    installs.set(v, p);
  }
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(installs.values());
  if (packDir) rmSync(packDir, { recursive: true, force: true });
});

describe("packed packages", () => {
  it("every publishable package is packed, including each one of the build", () => {
    const names = packed.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(["@coordis/core", "@coordis/lock", "@coordis/fastify"]));
    for (const p of packed) expect(relative(join(repoRoot, "packages"), p.dir)).not.toMatch(/^\.\./);
  });

  it("pass publint, attw (esm-only profile) and the packaging rules", async () => {
    const results = await checkPackages(packed);
    const problems = [...results].flatMap(([name, list]) => list.map((p) => `${name}: ${p}`));
    expect(problems).toEqual([]);
  }, 180_000);
});

describe.each(Object.keys(VARIANTS) as Variant[])("a consumer app with the %s peer versions", (variant) => {
  it("installs the tarballs with its own peers, type-checks strictly and runs against Redis", async () => {
    const dir = await installs.get(variant);
    if (!dir) throw new Error("not installed");
    const req = createRequire(join(dir, "package.json"));

    // One copy of each peer, the app's own: nothing nested under @coordis/*, nothing from this repository.
    for (const peer of Object.keys(VARIANTS[variant]).filter((name) => !name.startsWith("@types/"))) {
      expect(req.resolve(`${peer}/package.json`).startsWith(join(dir, "node_modules"))).toBe(true);
    }
    for (const p of packed) {
      const nested = join(dir, "node_modules", p.name, "node_modules");
      for (const peer of ["ioredis", "prom-client", "fastify", "@coordis"]) {
        expect(existsSync(join(nested, peer)), `${p.name} has its own ${peer}`).toBe(false);
      }
    }
    const ioredisVersion = (
      JSON.parse(readFileSync(req.resolve("ioredis/package.json"), "utf8")) as { version: string }
    ).version;
    expect(ioredisVersion.split(".")[0]).toBe(variant === "newest" ? "6" : "5");

    for (const f of ["main.ts", "tsconfig.json", "tsconfig.bundler.json"])
      copyFileSync(join(appSources, f), join(dir, f));
    rmSync(join(dir, "dist"), { recursive: true, force: true });
    // The examples/ programs are type-checked here too, against the tarballs with the same strict settings.
    rmSync(join(dir, "examples"), { recursive: true, force: true });
    mkdirSync(join(dir, "examples"));
    for (const f of readdirSync(join(repoRoot, "examples")).filter((n) => n.endsWith(".ts"))) {
      copyFileSync(join(repoRoot, "examples", f), join(dir, "examples", f));
    }
    // Every failure is collected, so one run shows type errors and runtime failures together.
    const failures: string[] = [];
    for (const project of ["tsconfig.json", "tsconfig.bundler.json"]) {
      try {
        await run(tsc, ["-p", project], { cwd: dir, env: cleanEnv() });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        failures.push(`tsc -p ${project} (ioredis ${ioredisVersion}):\n${e.stdout ?? ""}${e.stderr ?? ""}`);
      }
    }

    // tsc emits despite type errors, so the program still runs and reports what it does at run time.
    const env = {
      ...cleanEnv(),
      REDIS_URL: inject("coordisRedisUrl"),
      COORDIS_PREFIX: testPrefix(`consumer-${variant}`),
    };
    try {
      const { stdout } = await run(process.execPath, ["dist/main.js"], { cwd: dir, env, timeout: 60_000 });
      const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { ok?: boolean };
      if (result.ok !== true) failures.push(`consumer program printed no ok result:\n${stdout}`);
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      failures.push(
        `consumer program failed (ioredis ${ioredisVersion}):\n${e.stdout ?? ""}${e.stderr ?? String(err)}`,
      );
    }
    expect(failures).toEqual([]);
  }, 240_000);
});
