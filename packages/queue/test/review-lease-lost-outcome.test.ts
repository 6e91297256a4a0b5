import type { RedisClient } from "@coordis/core";
import { JobLostError, Queue, Worker } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("queue-review-lease-lost");

describe("what a handler returns after its signal aborted for a lost lease", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
  });
  afterAll(async () => {
    if (server.paused) server.resume();
    await server.stop();
  });

  it("is not recorded as the job's result, even when no other worker reclaimed the job first", async () => {
    // A command timeout far longer than the lease: calls sent while Redis is stopped wait for it.
    const redis: RedisClient = server.client({ commandTimeoutMs: 60_000 });
    const name = "returned-after-abort";
    const q = new Queue<string, string>(redis, name, { prefix });
    const aborts: unknown[] = [];
    const outcomes: string[] = [];
    const worker = new Worker<string, string>(
      redis,
      name,
      async (job) => {
        if (job.attempt > 1) return "second";
        await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
        aborts.push(job.signal.reason);
        // Returned after the abort: "whatever the handler returns after that is refused" (Job.signal).
        return "late";
      },
      {
        prefix,
        leaseMs: 1_000,
        // Two slots: the worker's own fetch loop waits on its blocking connection, so no fetch of this worker
        // reclaims the expired lease before the late outcome reaches Redis.
        concurrency: 2,
        schedules: false,
        observer: { onOperation: (op) => void (op.op === "process" && outcomes.push(op.outcome)) },
      },
    );
    try {
      const { id } = await q.add("a", { backoff: { type: "fixed", delayMs: 0 } });
      await waitUntil("the job runs", async () => (await q.get(id))?.state === "active", 10_000);
      server.pause();
      await waitUntil("the signal aborts while Redis is stopped", () => aborts.length > 0, 8_000);
      expect(aborts[0]).toBeInstanceOf(JobLostError);
      expect((aborts[0] as JobLostError).reason).toBe("lease-lost");
      server.resume();
      await expect(q.result(id, { timeoutMs: 10_000 })).resolves.toBe("second");
      expect(await q.get(id)).toMatchObject({ state: "completed", attempts: 2, result: "second" });
      expect(outcomes[0]).not.toBe("completed");
    } finally {
      if (server.paused) server.resume();
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
    }
  }, 30_000);

  it("a progress() after the signal aborted for a lost lease is refused, even while Redis still holds the fence", async () => {
    const redis: RedisClient = server.client({ commandTimeoutMs: 60_000 });
    const name = "progress-after-abort";
    const q = new Queue<string, string>(redis, name, { prefix });
    const aborts: unknown[] = [];
    const progressed: Promise<boolean>[] = [];
    const worker = new Worker<string, string>(
      redis,
      name,
      async (job) => {
        if (job.attempt > 1) return "second";
        await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
        aborts.push(job.signal.reason);
        // Sent while Redis is stopped; it reaches Redis before any fetch reclaims the job (see the test above).
        progressed.push(job.progress("late"));
        await progressed[0];
        return "late";
      },
      { prefix, leaseMs: 1_000, concurrency: 2, schedules: false },
    );
    try {
      const { id } = await q.add("a", { backoff: { type: "fixed", delayMs: 0 } });
      await waitUntil("the job runs", async () => (await q.get(id))?.state === "active", 10_000);
      server.pause();
      await waitUntil("the signal aborts while Redis is stopped", () => aborts.length > 0, 8_000);
      server.resume();
      await expect(q.result(id, { timeoutMs: 10_000 })).resolves.toBe("second");
      expect(progressed).toHaveLength(1);
      await expect(progressed[0]).resolves.toBe(false);
      expect((await q.get(id))?.progress).toBeUndefined();
    } finally {
      if (server.paused) server.resume();
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
    }
  }, 30_000);
});
