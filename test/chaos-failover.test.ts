import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { lockFailover } from "./chaos/scenarios/failover.js";
import { RECOVERY_SECTIONS } from "./chaos/scenarios/fenced-lock.js";

/**
 * Short version of the failover checker (`npm run test:chaos -- --filter lock-failover` runs the long one): 4 worker
 * processes hold a Mutex with `durability: { replicas: 1 }` through Sentinel while the primary is SIGKILLed and a
 * replica promoted (one failover here).
 */
describe("chaos: lock across Sentinel failovers", () => {
  it("with the durability setting, fences never go back and leases stay exclusive across a failover", async () => {
    const { result, replay } = await runShort(lockFailover, 1_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThanOrEqual(1);
    expect(result.details.sectionsAccepted as number, replay).toBeGreaterThanOrEqual(RECOVERY_SECTIONS);
  }, 240_000);
});
