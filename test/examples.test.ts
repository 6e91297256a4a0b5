/**
 * Every program in examples/ runs to completion against the suite's Redis (the least-privilege user), so the
 * examples the READMEs point at never rot. Each example checks its own outcome and exits non-zero when it is wrong;
 * they are type-checked strictly against the packed packages by test/consumer/consumer.test.ts.
 */
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { testPrefix } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";
import { repoRoot } from "../scripts/pack.js";

const run = promisify(execFile);
const examplesDir = join(repoRoot, "examples");
const examples = readdirSync(examplesDir)
  .filter((f) => f.endsWith(".ts"))
  .sort();

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
    "%s runs to completion",
    async (file) => {
      const env = {
        ...process.env,
        REDIS_URL: inject("coordisRedisUrl"),
        COORDIS_PREFIX: testPrefix(`example-${file.replace(/\.ts$/, "")}`),
      };
      const args = ["--conditions=@coordis/source", "--import", "tsx", join(examplesDir, file)];
      try {
        const { stdout } = await run(process.execPath, args, { cwd: repoRoot, env, timeout: 60_000 });
        expect(stdout.length).toBeGreaterThan(0);
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new Error(`${file} failed:\n${e.stdout ?? ""}${e.stderr ?? String(err)}`);
      }
    },
    90_000,
  );
});
