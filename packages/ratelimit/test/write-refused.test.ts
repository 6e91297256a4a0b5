import { type RedisClient, RedisUnavailableError } from "@coordis/core";
import { RateLimiter } from "@coordis/ratelimit";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("rl-refused");

/**
 * A Redis that answers but refuses writes (NOREPLICAS here: `min-replicas-to-write 1` and no replica; READONLY on a
 * demoted primary and MISCONF after a failed save read the same): the failure policy decides, batched or not.
 */
describe("a Redis that refuses writes", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ config: { "min-replicas-to-write": 1 } });
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it.each([
    ["unbatched", false],
    ["batched", true],
  ] as const)("%s: fail-open admits every caller, throw rejects each with RedisUnavailableError", async (_, batch) => {
    const rules = [{ name: "r", limit: 5, windowMs: 60_000 }];
    const open = new RateLimiter(redis, { rules, prefix, batch, onRedisError: "fail-open" });
    const decisions = await Promise.all(Array.from({ length: 20 }, (_, i) => open.consume(`k${i % 3}`)));
    for (const d of decisions) expect(d).toMatchObject({ allowed: true, reason: "fail-open" });
    const strict = new RateLimiter(redis, { rules, prefix, batch, onRedisError: "throw" });
    const thrown = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => strict.consume(`k${i % 3}`)));
    for (const t of thrown) {
      expect(t.status).toBe("rejected");
      expect((t as PromiseRejectedResult).reason).toBeInstanceOf(RedisUnavailableError);
      expect(String((t as PromiseRejectedResult).reason)).toMatch(/NOREPLICAS/);
    }
  });
});

/** A Redis out of memory (`maxmemory` reached, `noeviction`): it refuses writes with OOM, and the policy decides. */
describe("a Redis out of memory", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ config: { maxmemory: "1", "maxmemory-policy": "noeviction" } });
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it.each([
    ["unbatched", false],
    ["batched", true],
  ] as const)("%s: fail-open admits every caller, the memory fallback limits locally", async (_, batch) => {
    const rules = [{ name: "r", limit: 5, windowMs: 60_000 }];
    const open = new RateLimiter(redis, { rules, prefix, batch, onRedisError: "fail-open" });
    const decisions = await Promise.all(Array.from({ length: 20 }, (_, i) => open.consume(`k${i % 3}`)));
    for (const d of decisions) expect(d).toMatchObject({ allowed: true, reason: "fail-open" });
    const memory = new RateLimiter(redis, { rules, prefix, batch, onRedisError: { fallback: "memory" } });
    const local = [];
    for (let i = 0; i < 7; i++) local.push(await memory.consume("m"));
    expect(local.map((d) => d.allowed)).toEqual([true, true, true, true, true, false, false]);
    expect(local.every((d) => d.reason === "fallback")).toBe(true);
  });

  it("reset of a key shared with another limiter rejects with RedisUnavailableError, as in an outage", async () => {
    const admin = server.adminClient();
    try {
      const mine = new RateLimiter(redis, { rules: [{ name: "mine", limit: 5, windowMs: 60_000 }], prefix });
      const theirs = new RateLimiter(redis, { rules: [{ name: "theirs", limit: 5, windowMs: 60_000 }], prefix });
      await admin.config("SET", "maxmemory", "0");
      expect((await mine.consume("shared")).allowed).toBe(true);
      expect((await theirs.consume("shared")).allowed).toBe(true);
      await admin.config("SET", "maxmemory", "1");
      // The other limiter's entry must be written back: a write, refused.
      await expect(mine.reset("shared")).rejects.toBeInstanceOf(RedisUnavailableError);
      await admin.config("SET", "maxmemory", "0");
      expect((await mine.peek("shared")).remaining).toBe(4);
    } finally {
      await admin.config("SET", "maxmemory", "1");
      admin.disconnect();
    }
  });
});
