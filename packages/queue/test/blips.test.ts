import type { CoordisEvent, RedisClient } from "@coordis/core";
import { Queue, Worker } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("queue-blips");

describe("Queue and Worker through Redis blips", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    if (server.paused) server.resume();
    await server.stop();
  });

  it("a Redis killed and restarted empty (no AOF) crashes nothing; the worker, its schedules and result() go on", async () => {
    const failures: unknown[] = [];
    const onFailure = (err: unknown) => void failures.push(err);
    process.on("unhandledRejection", onFailure);
    process.on("uncaughtException", onFailure);
    const redis: RedisClient = server.client();
    const events: CoordisEvent[] = [];
    const observer = { onEvent: (e: CoordisEvent) => void events.push(e) };
    const q = new Queue<string, string>(redis, "blip", { prefix, observer });
    const worker = new Worker<string, string>(redis, "blip", async (job) => `done ${job.data}`, {
      prefix,
      observer,
      blockMs: 200,
    });
    try {
      await worker.ready();
      expect(await q.result((await q.add("before")).id, { timeoutMs: 5_000 })).toBe("done before");
      // The result subscription and the worker's blocking connection are open: kill the server under them.
      await server.kill();
      await waitUntil("the worker saw the outage", () => events.some((e) => e.type === "fetch-error"), 10_000);
      await server.restart();
      // Everything was lost with the data (no AOF): the queue starts over on the same connections.
      await expect(q.result((await q.add("after")).id, { timeoutMs: 10_000 })).resolves.toBe("done after");
      await q.schedule("tick", { everyMs: 1_000 }, "tick");
      await waitUntil(
        "a scheduled run completes",
        async () => (await q.counts()).completed >= 2 && events.some((e) => e.type === "schedule-fired"),
        10_000,
      );
      expect(failures).toEqual([]);
    } finally {
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
      process.off("unhandledRejection", onFailure);
      process.off("uncaughtException", onFailure);
    }
  }, 60_000);
});
