import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { eventlogScenario } from "./chaos/scenarios/eventlog.js";

/**
 * Short version of the event-log checker: 2,000 events spread over 3 s of faults (`npm run test:chaos` appends
 * 100,000 over a minute), then the calm phase on a server of its own: 3 bursts after idle periods and a stream of 25
 * entries, through latency, with every consumer alive.
 */
describe("chaos: event-log checker", () => {
  it("every acknowledged append is processed, logged exactly once, and the chain verifies; consumers stay live and handle nothing twice", async () => {
    const { result, replay } = await runShort(eventlogScenario(2_000), 3_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect(result.details.acknowledged, replay).toBe(2_000);
    expect(result.details.logEntries, replay).toBe(2_000);
    // The calm phase ran: bursts after idle periods reached every live consumer, the shared group had redeliveries.
    expect(result.details.calmBursts, replay).toBe(3);
    expect(result.details.calmEntries, replay).toBe(85);
    expect(result.details.calmFailures, replay).toBeGreaterThan(0);
    expect(result.details.calmDuplicates, replay).toBe(0);
  }, 240_000);
});
