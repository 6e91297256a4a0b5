import type { RedisClient } from "@coordis/core";
import { type Job, JobLostError, Queue, Worker } from "@coordis/queue";
import { type RedisServer, stallServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue-outage");

describe("Queue against a Redis that stops answering", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    if (server.paused) server.resume();
    await server.stop();
  });

  it("a delivery whose lease cannot be renewed aborts its signal at its lease, not when a hung renewal times out", async () => {
    // A command timeout far longer than the lease: the renewal sent while Redis is stopped hangs for 60 s.
    const redis: RedisClient = server.client({ commandTimeoutMs: 60_000 });
    const q = new Queue<string, string>(redis, "hung-renewal", { prefix });
    const started = gate<Job<string>>();
    const aborted: unknown[] = [];
    const worker = new Worker<string, string>(
      redis,
      "hung-renewal",
      async (job) => {
        job.signal.addEventListener("abort", () => aborted.push(job.signal.reason));
        started.open(job);
        await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
        return "late";
      },
      { prefix, leaseMs: 1_000, schedules: false },
    );
    try {
      const { id } = await q.add("a");
      const job = await started.promise;
      expect(job.id).toBe(id);
      server.pause();
      // The lease is 1 s from the last renewal; nothing renews it while Redis is stopped.
      await waitUntil("the signal aborts while Redis is still stopped", () => aborted.length > 0, 8_000);
      expect(server.paused).toBe(true);
      expect(aborted[0]).toBeInstanceOf(JobLostError);
      expect((aborted[0] as JobLostError).reason).toBe("lease-lost");
    } finally {
      if (server.paused) server.resume();
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
    }
  }, 30_000);
  it("a renewal that reaches Redis just after the job's completion neither aborts the signal nor reports a lost lease", async () => {
    const redis: RedisClient = server.client();
    const q = new Queue<string, string>(redis, "renew-after-finish", { prefix });
    const started = gate<Job<string>>();
    const finish = gate();
    const aborts: unknown[] = [];
    const lostEvents: unknown[] = [];
    const worker = new Worker<string, string>(
      redis,
      "renew-after-finish",
      async (job) => {
        job.signal.addEventListener("abort", () => aborts.push(job.signal.reason));
        started.open(job);
        await finish.promise;
        return "done";
      },
      {
        prefix,
        leaseMs: 1_000,
        schedules: false,
        observer: { onEvent: (e) => e.type === "lease-lost" && lostEvents.push(e) },
      },
    );
    try {
      const { id } = await q.add("a");
      await started.promise;
      // Redis busy for 800 ms on the worker's own connection: the completion is queued behind the stall, and the
      // next renewal (every 333 ms) behind the completion, so Redis applies the completion, then the renewal.
      const stall = stallServer(redis, 800);
      finish.open();
      await stall;
      await expect(q.result(id, { timeoutMs: 5_000 })).resolves.toBe("done");
      // One more renewal round after the completion's reply: nothing is held any more.
      await waitUntil("the worker holds nothing", () => worker.stats().completed === 1, 5_000);
      expect(aborts).toEqual([]);
      expect(lostEvents).toEqual([]);
    } finally {
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
    }
  }, 30_000);
});
