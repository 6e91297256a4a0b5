import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { queueScenario } from "./chaos/scenarios/queue.js";

/** Short version of the queue checker: 1,500 jobs for 3 s of faults (`npm run test:chaos` adds 20,000). */
describe("chaos: queue checker", () => {
  it("every acknowledged add is completed and its effect applied once under fences, across worker kills, pauses and Redis restarts", async () => {
    const { result, replay } = await runShort(queueScenario(1_500), 3_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect(result.details.acknowledged, replay).toBe(1_500);
    expect(result.details.completed, replay).toBe(1_500);
  }, 240_000);
});
