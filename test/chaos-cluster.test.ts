import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { clusterFailover } from "./chaos/scenarios/cluster-failover.js";
import { RECOVERY_SECTIONS } from "./chaos/scenarios/fenced-lock.js";

/**
 * Short version of the cluster failover checker (`npm run test:chaos -- --filter cluster-failover` runs the long
 * one): on a Redis Cluster of 3 masters with a replica each, worker processes hold a Mutex with
 * `durability: { replicas: 1 }` and run a queue of 4 partitions while the lock's master is SIGKILLed or SIGSTOPped
 * until its replica is promoted (one failover here), then rejoins as a replica.
 */
describe("chaos: lock and queue across a Redis Cluster failover", () => {
  it("fences never go back, sections never overlap, acknowledged jobs complete once under fences, work resumes", async () => {
    const { result, replay } = await runShort(clusterFailover, 2_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThanOrEqual(1);
    const failovers = result.details.failovers as Array<{ lockShard: boolean }>;
    expect(failovers.length, replay).toBeGreaterThanOrEqual(1);
    expect(failovers[0]?.lockShard, replay).toBe(true);
    // Work before and after the failover: the starting batch plus the one after each failover.
    expect(result.details.sectionsAccepted as number, replay).toBeGreaterThanOrEqual(2 * RECOVERY_SECTIONS);
    expect(result.details.completed, replay).toBe(result.details.acknowledged);
    expect(result.details.acknowledged as number, replay).toBeGreaterThanOrEqual(500);
  }, 240_000);
});
