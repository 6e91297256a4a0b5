import { connect, type RedisClient } from "@coordis/core";
import { ConcurrencyLimiter } from "@coordis/ratelimit";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// lua/_lib/permits.lua (the ConcurrencyLimiter's sorted set, the Semaphore's rules) renewed a permit with ZADD as its
// first write: on a full noeviction Redis that is refused (OOM), so a permit held before Redis filled up could not be
// extended, while a new permit on the same key was still granted (its purge is a write that lets the ZADD through).
// The Semaphore's own sem-extend.lua already writes PEXPIRE first.
describe("permits.lua on a full noeviction Redis (new writes refused with OOM)", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let raw: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ config: { "maxmemory-policy": "noeviction" } });
    redis = connect(server.url);
    raw = connect(server.url);
    await Promise.all([redis.ping(), raw.ping()]);
  });
  afterAll(async () => {
    redis.disconnect();
    raw.disconnect();
    await server.stop();
  });

  it("a ConcurrencyLimiter permit taken before Redis filled up is still extended and released", async () => {
    const limiter = new ConcurrencyLimiter(redis, { limit: 2, ttlMs: 60_000, prefix });
    const permit = await limiter.acquire("uploads");
    expect(permit).not.toBeNull();
    await raw.set(`${prefix}:filler`, "x".repeat(2_000_000));
    await raw.config("SET", "maxmemory", "1mb");
    try {
      await expect(raw.set(`${prefix}:probe`, "x")).rejects.toThrow(/OOM/);
      const before = permit?.expiresAtMs ?? 0;
      // Renewed, to a shorter lease: 30 s from now instead of the 60 s it had.
      expect(await permit?.extend(30_000)).toBe(true);
      expect(permit?.expiresAtMs).toBeLessThan(before);
      expect(await permit?.release()).toBe(true);
    } finally {
      await raw.config("SET", "maxmemory", "0");
      await raw.del(`${prefix}:filler`);
      await permit?.release().catch(() => false);
    }
  });
});
