import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { ratelimitScenario } from "./chaos/scenarios/ratelimit.js";

/** Short version of the rate-limit checker (`npm run test:chaos -- --filter ratelimit` runs the long one). */
describe("chaos: rate-limit checker", () => {
  it("3 processes × 100 callers: every algorithm admits within its bound per window, exactly when saturated; limiters sharing a key and rule changes keep their bounds", async () => {
    const { result, replay } = await runShort(ratelimitScenario, 2_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.details.rounds as number, replay).toBeGreaterThanOrEqual(2);
    // Demand exceeded every bound in some round, so the exactness check really ran.
    expect(result.details.exactRounds as number, replay).toBeGreaterThan(0);
    // The rule-change check had rejections under the new rules to hold admissions against.
    expect(result.details.changeRoundsChecked as number, replay).toBeGreaterThan(0);
  }, 240_000);
});
