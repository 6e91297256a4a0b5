import { connect, type RedisClient } from "@coordis/core";
import { RateLimiter } from "@coordis/ratelimit";
import { type FaultProxy, startProxy, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("rl-fallback-evict");

// The memory fallback holds at most maxKeys keys, the least recently used evicted first. A key whose calls are all
// rejected writes nothing: evicted by last write, it would be the first to go and get its whole budget back while
// it is being hammered, the very key the limit is for.
describe("memory fallback: a key kept rejected is used, not evicted first", () => {
  let proxy: FaultProxy;
  let own: RedisClient;
  beforeAll(async () => {
    proxy = await startProxy({ target: inject("coordisRedisUrl") });
    proxy.refuse(); // Redis unreachable for the whole test: the fallback decides every call
    own = connect(proxy.url, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    own.on("error", () => {});
    await waitUntil("the client to be reconnecting", () => own.status === "reconnecting", {
      timeoutMs: 10_000,
      intervalMs: 5,
    });
  });
  afterAll(async () => {
    own.disconnect();
    await proxy.close();
  });

  it.each(["fixed-window", "sliding-window", "token-bucket", "gcra"] as const)(
    "%s: maxKeys 2, a full key rejected after another key's call outlives that key",
    async (algorithm) => {
      const rl = new RateLimiter(own, {
        rules: [{ name: "r", limit: 2, windowMs: 600_000, algorithm }],
        prefix,
        onRedisError: { fallback: "memory", maxKeys: 2 },
        redisRetryMs: 600_000,
      });
      expect(await rl.consume("a")).toMatchObject({ allowed: true, reason: "fallback" });
      expect(await rl.consume("a")).toMatchObject({ allowed: true, reason: "fallback" });
      expect(await rl.consume("a")).toMatchObject({ allowed: false, reason: "fallback" });
      expect(await rl.consume("b")).toMatchObject({ allowed: true, reason: "fallback" });
      // "a" is used again (rejected) after "b": "b" is now the least recently used key
      expect(await rl.consume("a")).toMatchObject({ allowed: false, reason: "fallback" });
      expect(await rl.consume("c")).toMatchObject({ allowed: true, reason: "fallback" });
      // a third key evicted one: "a" still has its count and is still rejected
      expect(await rl.consume("a")).toMatchObject({ allowed: false, reason: "fallback" });
      expect((await rl.peek("a")).remaining).toBe(0);
    },
  );
});
