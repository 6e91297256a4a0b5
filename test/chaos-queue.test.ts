import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { queueScenario } from "./chaos/scenarios/queue.js";

/**
 * Short version of the queue checker: 1,500 jobs for 3 s of faults (`npm run test:chaos` adds 20,000), then the
 * stale-worker probes: in every run a worker is paused past its lease while it holds a job, resumed only once another
 * worker took the job over, and then tries to complete it (refused by the fence) or to apply its effect late (refused
 * by the fenced register).
 */
describe("chaos: queue checker", () => {
  it("every acknowledged add is completed and its effect applied once under fences, across worker kills, pauses and Redis restarts", async () => {
    const { result, replay } = await runShort(queueScenario(1_500), 3_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect(result.details.acknowledged, replay).toBe(1_500);
    expect(result.details.completed, replay).toBe(1_500);
    // Both stale-worker cases happened: the paused worker's completion came after the takeover and was refused.
    expect(result.details.probes, replay).toEqual({ completion: "refused", effect: "refused" });
  }, 240_000);
});
