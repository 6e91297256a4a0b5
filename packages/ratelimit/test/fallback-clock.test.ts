import { connect, type RedisClient } from "@coordis/core";
import { type Algorithm, RateLimiter } from "@coordis/ratelimit";
import { type RedisServer, startRedis, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

// The memory fallback decides on this process' clock while Redis is down: a wall clock stepped back (an NTP
// correction) must neither hand a window back at once nor hold it shut, or a bucket empty, for as long as the step.
describe("memory fallback with the wall clock stepped back", () => {
  let server: RedisServer;
  let client: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    client = connect(server.url, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    client.on("error", () => {});
    await client.ping();
    await server.kill();
  });
  afterAll(async () => {
    client.disconnect();
    await server.stop();
  });

  it.each<Algorithm>(["fixed-window", "sliding-window", "token-bucket", "gcra"])(
    "%s: a rejected key stays rejected until retryAfterMs has passed, then passes",
    async (algorithm) => {
      const rl = new RateLimiter(client, {
        rules: [{ name: "r", limit: 1, windowMs: 1_000, algorithm }],
        onRedisError: { fallback: "memory" },
        redisRetryMs: 600_000,
      });
      const key = `k-${algorithm}`;
      expect(await rl.consume(key)).toMatchObject({ allowed: true, reason: "fallback" });
      const rejected = await rl.consume(key);
      expect(rejected).toMatchObject({ allowed: false, reason: "fallback" });
      const passes = performance.now() + rejected.retryAfterMs + 1;
      const wall = Date.now.bind(Date);
      const stepped = vi.spyOn(Date, "now").mockImplementation(() => wall() - 3_600_000);
      try {
        expect(await rl.consume(key)).toMatchObject({ allowed: false, reason: "fallback" });
        await waitUntil("retryAfterMs to pass", () => performance.now() >= passes, 5_000);
        expect(await rl.consume(key)).toMatchObject({ allowed: true, reason: "fallback" });
      } finally {
        stepped.mockRestore();
      }
    },
  );
});
