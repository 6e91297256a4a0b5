import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { ConcurrencyLimiter } from "@coordis/ratelimit";
import { eventually, type RedisServer, stallServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";

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
    const next = await eventually("the crashed holder's slot", () => cl.acquire(key), {
      timeoutMs: 5_000,
      intervalMs: 20,
    });
    expect(next).not.toBeNull();
    expect(Date.now() - start).toBeGreaterThanOrEqual(200);
    expect(await crashed?.extend()).toBe(false);
    expect(await crashed?.release()).toBe(false);
    await next?.release();
  });
});

describe("ConcurrencyLimiter on a server of its own", () => {
  let server: RedisServer;
  /** Unrestricted client, to check keys from outside the code under test. */
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    admin = server.adminClient();
    await admin.ping();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("an acquire whose reply never came frees its phantom permit at once, not after ttlMs, release script cached or not", async () => {
    const impatient = connect(server.url, { commandTimeoutMs: 100 });
    try {
      await impatient.ping();
      const cl = new ConcurrencyLimiter(impatient, { limit: 1, ttlMs: 60_000, prefix });
      const key = "phantom";
      // Warm the script cache, so the acquire below is one EVALSHA queued behind the stall.
      await (await cl.acquire(key))?.release();
      for (const releaseCached of [true, false]) {
        if (!releaseCached) {
          // A server that has run acquires but no release since it forgot its scripts (a restart).
          await admin.script("FLUSH");
          await new ConcurrencyLimiter(admin, { limit: 1, ttlMs: 1_000, prefix }).acquire("phantom-warm");
        }
        // The server stalls 400 ms; the acquire queued behind the stall on the same connection times out after
        // 100 ms on the client, but Redis runs it once the stall ends and grants the slot to a token nobody holds.
        const stall = stallServer(impatient, 400).catch(() => "timed out");
        await expect(cl.acquire(key)).rejects.toBeInstanceOf(RedisUnavailableError);
        await stall;
        // A PING answered on the same connection was processed after the acquire and what was queued behind it.
        await vi.waitFor(() => impatient.ping(), { timeout: 5_000, interval: 20 });
        // The release queued behind the acquire freed the slot at once (the lease is a minute).
        expect(await admin.zcard(`${prefix}:cl:{${key}}`), `releaseCached=${releaseCached}`).toBe(0);
        const permit = await cl.acquire(key);
        expect(permit).not.toBeNull();
        expect(await permit?.release()).toBe(true);
      }
    } finally {
      impatient.disconnect();
    }
  });
});
