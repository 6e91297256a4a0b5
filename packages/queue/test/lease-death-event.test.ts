import type { CoordisEvent } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-lease-death");

describe("a job whose last attempt's lease expired", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("is reported as job-dead by the worker whose fetch buried it, as a failed last attempt is", async () => {
    const name = "lease-death";
    const events: CoordisEvent[] = [];
    const observer = { onEvent: (e: CoordisEvent) => void events.push(e) };
    const q = queue<string, string>(name);
    const release = gate();
    let runs = 0;
    worker<string, string>(
      name,
      async (job) => {
        runs++;
        // A handler that blocks its worker's event loop past the lease: the lease expires on the server.
        const stalledUntil = performance.now() + 1_600;
        while (performance.now() < stalledUntil) {
          // stall
        }
        await release.promise;
        return job.data;
      },
      { concurrency: 2, leaseMs: 1_000, observer },
    );
    await q.add("x", { id: "x", attempts: 1 });
    // The worker's next fetch finds the expired lease of the job's only attempt: the job is dead.
    await expect(q.result("x", { timeoutMs: 10_000 })).rejects.toMatchObject({
      code: "ERR_JOB_DEAD",
      attempts: 1,
      lastError: expect.stringMatching(/^LeaseExpired: /),
    });
    await waitUntil("a job-dead event", () => events.some((e) => e.type === "job-dead"), 5_000);
    const dead = events.filter((e) => e.type === "job-dead");
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ primitive: "queue", name, attributes: { attempt: 1, jobId: "x" } });
    expect(dead[0]?.error?.message).toMatch(/^LeaseExpired: the lease of attempt 1 expired/);
    release.open();
    expect(runs).toBe(1);
  }, 30_000);
});
