import type { RedisClient } from "@coordis/core";
import { type Job, JobLostError, Queue, Worker } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
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
});
