import type { RedisClient } from "@coordis/core";
import { Queue, ResultTimeoutError } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("queue-result-timeout");

describe("Queue.result() timeoutMs against a Redis that stops answering", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    if (server.paused) server.resume();
    await server.stop();
  });

  it("the first result() of a Queue rejects with ResultTimeoutError at its timeoutMs, not when its subscription is answered", async () => {
    // A client without a short command timeout: the subscription sent while Redis is stopped waits for 60 s.
    const redis: RedisClient = server.client({ commandTimeoutMs: 60_000 });
    const q = new Queue<string, string>(redis, "first-wait", { prefix });
    try {
      const { id } = await q.add("a");
      server.pause();
      const started = performance.now();
      // Bounded by the test itself: before the fix the call stayed pending until Redis answered.
      let guard: NodeJS.Timeout | undefined;
      const settled = await Promise.race([
        q.result(id, { timeoutMs: 300 }).then(
          () => "resolved",
          (err: unknown) => err,
        ),
        new Promise((resolve) => {
          guard = setTimeout(() => resolve("still pending after 5 s"), 5_000);
        }),
      ]).finally(() => clearTimeout(guard));
      const elapsed = performance.now() - started;
      expect(server.paused).toBe(true);
      expect(settled).toBeInstanceOf(ResultTimeoutError);
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(5_000);
    } finally {
      if (server.paused) server.resume();
      await q.close();
      redis.disconnect();
    }
  }, 30_000);
});
