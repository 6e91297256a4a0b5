import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { ConcurrencyLimiter } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

describe.each([
  ["standalone", () => inject("coordisRedisUrl")],
  ["cluster", () => inject("coordisClusterUrl")],
])("ConcurrencyLimiter on %s", (_kind, url) => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(url());
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("admits exactly limit concurrent permits; a release frees a slot", async () => {
    const cl = new ConcurrencyLimiter(redis, { limit: 3, ttlMs: 10_000, prefix });
    const key = `c-${process.pid}-1`;
    const permits = await Promise.all(Array.from({ length: 20 }, () => cl.acquire(key)));
    const held = permits.filter((p) => p !== null);
    expect(held).toHaveLength(3);
    expect(new Set(held.map((p) => p.token)).size).toBe(3);
    expect(await cl.acquire(key)).toBeNull();
    expect(await held[0]?.release()).toBe(true);
    expect(await held[0]?.release()).toBe(false);
    const again = await cl.acquire(key);
    expect(again).not.toBeNull();
    for (const p of [again, ...held.slice(1)]) await p?.release();
  });

  it("a crashed holder's permit expires after ttlMs (server time); extend keeps a live one", async () => {
    const cl = new ConcurrencyLimiter(redis, { limit: 1, ttlMs: 300, prefix });
    const key = `c-${process.pid}-2`;
    const kept = await cl.acquire(key);
    expect(kept).not.toBeNull();
    const before = kept?.expiresAtMs ?? 0;
    await sleep(150);
    expect(await kept?.extend(1_000)).toBe(true);
    expect(kept?.expiresAtMs).toBeGreaterThan(before);
    await sleep(300); // beyond the original lease: the extended permit still holds the slot
    expect(await cl.acquire(key)).toBeNull();
    await kept?.release();

    const crashed = await cl.acquire(key); // never released
    expect(crashed).not.toBeNull();
    const start = Date.now();
    let next = await cl.acquire(key);
    while (next === null && Date.now() - start < 5_000) {
      await sleep(20);
      next = await cl.acquire(key);
    }
    expect(next).not.toBeNull();
    expect(Date.now() - start).toBeGreaterThanOrEqual(200);
    expect(await crashed?.extend()).toBe(false);
    expect(await crashed?.release()).toBe(false);
    await next?.release();
  });
});
