import { describe, expect, it } from "vitest";
import { runShort } from "./chaos/lib/short-run.js";
import { pubsubCacheScenario } from "./chaos/scenarios/pubsub-cache.js";

/** Short version of the pub/sub and cache scenario (`npm run test:chaos -- --filter pubsub-cache` runs the long one). */
describe("chaos: pub/sub resubscribe and cache freshness", () => {
  it("resubscribed within 2 s after every outage; no stale read against the version oracle", async () => {
    const { result, replay } = await runShort(pubsubCacheScenario, 5_000);
    expect(result.violations, replay).toBe(0);
    expect(result.samples, replay).toEqual([]);
    expect(result.faultsInjected, replay).toBeGreaterThan(0);
    expect(result.details.writes as number, replay).toBeGreaterThan(100);
    expect(result.details.reads as number, replay).toBeGreaterThan(100);
  }, 240_000);
});
