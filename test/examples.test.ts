/**
 * Every program in examples/ runs to completion against the suite's Redis (the least-privilege user), so the
 * examples the READMEs point at never rot. Each one is run with the command its header documents, as a new user
 * types it after `npm ci`: from the TypeScript sources, with no build (`dist/` is not in the checkout), so loading
 * a package's build output fails the run. Each example checks its own outcome and exits non-zero when it is wrong;
 * they are type-checked strictly against the packed packages by test/consumer/consumer.test.ts.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, testPrefix } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";
import { repoRoot } from "../scripts/pack.js";

const run = promisify(execFile);
const examplesDir = join(repoRoot, "examples");
const examples = readdirSync(examplesDir)
  .filter((f) => f.endsWith(".ts"))
  .sort();

/** The `npx tsx ...` arguments of the usage line in an example's header (`REDIS_URL=... npx tsx <args>`). */
function documentedArgs(file: string): string[] {
  const usage = /^ \*\s+REDIS_URL=\S+ npx tsx (.+)$/m.exec(readFileSync(join(examplesDir, file), "utf8"));
  if (usage === null) throw new Error(`${file} has no usage line "REDIS_URL=... npx tsx ..." in its header`);
  return (usage[1] as string).trim().split(/\s+/);
}

/** A module hook that refuses a package's build output, as on a fresh checkout where `dist/` was never built. */
const NO_BUILD_HOOK = `data:text/javascript,${encodeURIComponent(
  `import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(
  "export async function resolve(s, c, next) { const r = await next(s, c);" +
  " if (new RegExp('/(packages|services)/[^/]+/dist/').test(r.url)) throw new Error('not built: ' + r.url);" +
  " return r; }"));`,
)}`;

describe("examples/", () => {
  it("has one program per use case of the README", () => {
    expect(examples).toEqual(
      expect.arrayContaining([
        "api-rate-limit.ts",
        "audit-log-reader.ts",
        "cache-sessions.ts",
        "cron-lock.ts",
        "leaderboard-endpoint.ts",
      ]),
    );
  });

  it.each(examples)(
    "%s runs to completion with the command its header documents, without a build",
    async (file) => {
      const args = documentedArgs(file);
      expect(args.at(-1)).toBe(`examples/${file}`);
      const env = {
        ...process.env,
        REDIS_URL: inject("coordisRedisUrl"),
        COORDIS_PREFIX: testPrefix(`example-${file.replace(/\.ts$/, "")}`),
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${NO_BUILD_HOOK}`.trim(),
      };
      const tsx = join(repoRoot, "node_modules", ".bin", "tsx");
      try {
        const { stdout } = await run(tsx, args, { cwd: repoRoot, env, timeout: 60_000 });
        expect(stdout.length).toBeGreaterThan(0);
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new Error(`${file} failed:\n${e.stdout ?? ""}${e.stderr ?? String(err)}`);
      }
    },
    90_000,
  );

  it("leaderboard-endpoint.ts, with Redis down, exits non-zero naming Redis as unavailable", async () => {
    const file = "leaderboard-endpoint.ts";
    const env = { ...process.env, REDIS_URL: `redis://127.0.0.1:${await freePort("127.0.0.1")}` };
    const tsx = join(repoRoot, "node_modules", ".bin", "tsx");
    const failed = await run(tsx, documentedArgs(file), { cwd: repoRoot, env, timeout: 60_000 }).then(
      () => undefined,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failed, `${file} succeeded without Redis`).toBeDefined();
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain("Redis is unavailable");
    expect(failed?.stderr).not.toContain("TypeError");
  }, 90_000);
});
