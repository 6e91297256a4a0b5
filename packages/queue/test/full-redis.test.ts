import type { RedisClient } from "@coordis/core";
import { Queue, Worker } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue-full");

// A queue's Redis is the one most likely to fill up (a backlog of jobs). On a full noeviction Redis new data is
// refused (OOM), but a job that is already running must keep its lease: renewing it only changes a deadline, and a
// lease lost there would hand the job to another worker while its handler still runs.
describe("a running job on a full noeviction Redis", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    // Least privilege: the commands the scripts run on a full Redis must be ones aclRules() grants.
    server = await startRedis({ leastPrivilege: true, config: { "maxmemory-policy": "noeviction" } });
    redis = server.client();
    admin = server.adminClient();
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
    await server.stop();
  });

  it("keeps its lease renewed past several leases, completes once, and new adds are refused meanwhile", async () => {
    const queue = new Queue<string, string>(redis, "full", { prefix });
    const started = gate();
    const finish = gate();
    let runs = 0;
    const lost: unknown[] = [];
    const worker = new Worker<string, string>(
      redis,
      "full",
      async (job) => {
        runs++;
        job.signal.addEventListener("abort", () => lost.push(job.signal.reason));
        started.open();
        await finish.promise;
        return `done ${job.data}`;
      },
      { prefix, leaseMs: 1_000, schedules: false },
    );
    try {
      const job = await queue.add("a");
      await started.promise;
      // Redis fills up: its memory is above a maxmemory set below what it holds.
      await admin.set(`${prefix}:filler`, "x".repeat(2_000_000));
      await admin.config("SET", "maxmemory", "1mb");
      await expect(queue.add("b")).rejects.toThrow(/OOM/);
      // Three leases long: renewed every leaseMs / 3 while Redis is full.
      const lease = async () => Number(await admin.zscore(`${prefix}:queue:{full}:leases`, job.id));
      const before = await lease();
      await waitUntil("the lease to be renewed past three leases", async () => (await lease()) > before + 3_000, {
        timeoutMs: 10_000,
        intervalMs: 50,
      });
      finish.open();
      await expect(queue.result(job.id, { timeoutMs: 10_000 })).resolves.toBe("done a");
      expect(runs).toBe(1);
      expect(lost).toEqual([]);
    } finally {
      finish.open();
      await admin.config("SET", "maxmemory", "0");
      await admin.del(`${prefix}:filler`);
      await worker.close();
      await queue.close();
    }
  });
});
