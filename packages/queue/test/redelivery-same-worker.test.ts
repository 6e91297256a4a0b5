import { type Job, JobLostError } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-redelivery");

describe("a job delivered again to the worker whose earlier delivery of it still runs", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("the stale delivery's end does not drop the new one: its lease is still renewed and close() hands it back", async () => {
    const name = "same-worker";
    const q = queue<string, string>(name);
    const deliveries: Job<string>[] = [];
    const releaseFirst = gate();
    const w = worker<string, string>(
      name,
      async (job) => {
        deliveries.push(job);
        if (job.attempt === 1) {
          // A handler that blocks its worker's event loop past the lease (CPU-bound work, a long GC pause): nothing
          // renews the lease meanwhile, and it expires on the server.
          const stalledUntil = performance.now() + 1_600;
          while (performance.now() < stalledUntil) {
            // stall
          }
          await releaseFirst.promise;
          return "stale";
        }
        await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
        return "second";
      },
      { concurrency: 2, leaseMs: 1_000 },
    );
    await q.add("x", { id: "x", attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
    // The worker's own next fetch reclaims the expired lease and delivers the job again, to itself.
    await waitUntil("the second delivery runs", () => deliveries.length === 2, 10_000);
    const [first, second] = deliveries as [Job<string>, Job<string>];
    expect(second.attempt).toBe(2);
    expect(second.fence).toBeGreaterThan(first.fence);
    expect(first.signal.aborted).toBe(true);
    // The stale delivery ends: its completion is refused.
    releaseFirst.open();
    await waitUntil("the stale completion refused", () => w.stats().refused === 1, 10_000);
    expect(w.stats()).toMatchObject({ completed: 0, running: 1 });
    expect(await q.get("x")).toMatchObject({ state: "active", fence: second.fence });
    // The second delivery is still held by the worker: closing hands it back at once.
    await w.close({ timeoutMs: 0 });
    expect(w.stats().handedBack).toBe(1);
    expect(second.signal.aborted).toBe(true);
    expect(second.signal.reason).toBeInstanceOf(JobLostError);
    expect((second.signal.reason as JobLostError).reason).toBe("closing");
    expect(await q.get("x")).toMatchObject({ state: "waiting", attempts: 1 });
  }, 30_000);
});
