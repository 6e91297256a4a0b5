import type { CoordisEvent, RedisClient } from "@coordis/core";
import { Queue, Worker } from "@coordis/queue";
import { type RedisServer, stallServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue-lost-fetch");

describe("a fetch whose reply is lost", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("its jobs wait out their lease, and that attempt counts: a job of one attempt dies without running", async () => {
    // The worker's client gives up on a command after 500 ms.
    const redis: RedisClient = server.client({ commandTimeoutMs: 500 });
    const producer: RedisClient = server.client({ commandTimeoutMs: 10_000 });
    const events: CoordisEvent[] = [];
    const q = new Queue<string, string>(producer, "lost", { prefix });
    const ran: string[] = [];
    const started = gate();
    const release = gate();
    const worker = new Worker<string, string>(
      redis,
      "lost",
      async (job) => {
        ran.push(job.id);
        if (job.id === "a") {
          started.open();
          await release.promise;
          // Redis busy for 1.5 s from here (less than a's 3 s lease): the fetch the worker sends as this handler
          // returns is queued behind the stall on the same connection; the client times it out after 500 ms, then
          // Redis runs it and hands out b.
          stallServer(redis, 1_500).catch(() => {});
        }
        return job.id;
      },
      { prefix, leaseMs: 3_000, schedules: false, observer: { onEvent: (e) => void events.push(e) } },
    );
    try {
      await q.add("a", { id: "a" });
      await started.promise;
      // The worker's only slot is taken: b waits for the fetch sent when a's handler returns.
      await q.add("b", { id: "b", attempts: 1 });
      release.open();
      await waitUntil("the fetch timed out", () => events.some((e) => e.type === "fetch-error"), 10_000);
      // b was handed out by that fetch, to nobody: its lease expires and, its only attempt counted, it dies unrun.
      await expect(q.result("b", { timeoutMs: 10_000 })).rejects.toMatchObject({
        code: "ERR_JOB_DEAD",
        lastError: expect.stringMatching(/^LeaseExpired: /),
      });
      expect(ran).toEqual(["a"]);
      expect(await q.result("a", { timeoutMs: 5_000 })).toBe("a");
    } finally {
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
      producer.disconnect();
    }
  }, 30_000);
});
