import { safeRedisOptions } from "@coordis/core";
import { Queue, Worker } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("queue-lazy-client");

/**
 * A client built with `lazyConnect: true` connects on its first command, and so do its duplicates: the worker's
 * blocking connection (its idle waits) must be opened by the worker, or the worker would look at the queue only every
 * `blockMs`.
 */
describe("a worker on a lazyConnect client", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("waits for jobs on its blocking connection and starts one added while it idles at once", async () => {
    const redis = new Redis({ ...safeRedisOptions, host: server.host, port: server.port, lazyConnect: true });
    const queue = new Queue<string, string>(redis, "lazy", { prefix });
    let startedAt = 0;
    const worker = new Worker<string, string>(
      redis,
      "lazy",
      async (job) => {
        startedAt = performance.now();
        return job.data;
      },
      { prefix, blockMs: 30_000 },
    );
    const admin = server.adminClient();
    try {
      await worker.ready();
      await waitUntil("the worker to wait on its blocking connection", async () => {
        const clients = String(await admin.client("LIST")).split("\n");
        return clients.some((line) => / flags=b /.test(line) && / cmd=xread /.test(line));
      });
      const added = performance.now();
      await queue.add("x", { id: "x" });
      expect(await queue.result("x", { timeoutMs: 10_000 })).toBe("x");
      // Woken by the add, not by blockMs (30 s) running out.
      expect(startedAt - added).toBeLessThan(5_000);
    } finally {
      admin.disconnect();
      await worker.close({ timeoutMs: 2_000 });
      await queue.close();
      redis.disconnect();
    }
  }, 30_000);
});
