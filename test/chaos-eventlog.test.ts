import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { eventlogScenario } from "./chaos/scenarios/eventlog.js";

/** Short version of the event-log checker: 10,000 events (`npm run test:chaos` appends 100,000). */
describe("chaos: event-log checker", () => {
  it("every acknowledged append is processed, logged exactly once, and the chain verifies", async () => {
    const { result, replay } = await runShort(eventlogScenario(10_000), 3_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect(result.details.acknowledged, replay).toBe(10_000);
    expect(result.details.logEntries, replay).toBe(10_000);
  }, 240_000);
});
