import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { deadlinesScenario } from "./chaos/scenarios/deadlines.js";

/** Short version of the deadline scenario (`npm run test:chaos -- --filter deadlines` runs the long one). */
describe("chaos: deadlines", () => {
  it("a call of every primitive settles within its documented deadline under latency, drops and partitions", async () => {
    const { result, replay } = await runShort(deadlinesScenario, 4_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect(result.details.hung, replay).toBe(0);
  }, 240_000);
});
