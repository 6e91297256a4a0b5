import { describe, expect, it } from "vitest";
import { runChaos } from "./chaos/runner.js";

/**
 * The short version of `npm run test:chaos`: a few seconds of each registered scenario under a seeded fault
 * schedule. The seed is random per run (set COORDIS_CHAOS_SEED to replay one) and printed in any failure.
 */
const seed = process.env.COORDIS_CHAOS_SEED === undefined ? undefined : Number(process.env.COORDIS_CHAOS_SEED);

describe("chaos smoke", () => {
  it("script-path: every probe call settles within its deadline, none hangs, service recovers", async () => {
    const report = await runChaos({
      filter: "script-path",
      durationMs: 4_000,
      ...(seed === undefined ? {} : { seed }),
    });
    const [result] = report.results;
    const replay = `replay: COORDIS_CHAOS_SEED=${report.seed} or npm run test:chaos -- --seed ${report.seed} --duration 4000 --filter script-path`;
    expect(result, replay).toBeDefined();
    if (result === undefined) return;
    expect(result.operations, replay).toBeGreaterThan(50);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect({ violations: result.violations, samples: result.samples }, replay).toEqual({ violations: 0, samples: [] });
  });
});
