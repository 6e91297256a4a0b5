import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

describe("Cache on a full noeviction Redis (writes refused with OOM)", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  const client = () => {
    const c = connect(server.url);
    c.on("error", () => {});
    clients.push(c);
    return c;
  };
  /** Redis refuses every write with OOM from now on: its memory is above a maxmemory set below what it holds. */
  async function fill(raw: RedisClient) {
    await raw.set(`${prefix}:filler`, "x".repeat(2_000_000));
    await raw.config("SET", "maxmemory", "1mb");
    await expect(raw.set(`${prefix}:probe`, "x")).rejects.toThrow(/OOM/);
  }
  /** Writes are accepted again. */
  async function empty(raw: RedisClient) {
    await raw.config("SET", "maxmemory", "0");
    await raw.flushall();
  }
  beforeAll(async () => {
    server = await startRedis({ config: { "maxmemory-policy": "noeviction" } });
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server.stop();
  });

  it("getOrSet of a missing key returns the loader's result (no fill lock can be taken), hits are still served", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const raw = client();
    const cache = new Cache(client(), { namespace: "full", prefix, ttlMs: 60_000 });
    try {
      await cache.ready();
      // Full before the read: the read that would take the fill lock is refused.
      await fill(raw);
      expect(await cache.getOrSet("before", () => "loaded-1")).toBe("loaded-1");
      // Hits keep being served from Redis while it is full, and nothing tripped the circuit breaker.
      await empty(raw);
      await cache.set("hit", "stored");
      // A stale entry: its refresh would take the fill lock.
      await cache.set("stale", "old", { ttlMs: 1, staleMs: 600_000 });
      await waitUntil("the entry to be stale", async () => (await cache.get("stale")) === undefined, 2_000);
      await fill(raw);
      expect(await cache.getOrSet("stale", () => "loaded-2")).toBe("loaded-2");
      const reader = new Cache(client(), { namespace: "full", prefix, ttlMs: 60_000 });
      try {
        expect(await reader.getOrSet("hit", () => "never")).toBe("stored");
      } finally {
        await reader.close();
      }
      expect(cache.stats().circuit).toBe("closed");
    } finally {
      await empty(raw);
      warn.mockRestore();
      await cache.close();
    }
  });

  it("a value the loader answered without Redis is served from L1 no longer than the entry's ttlMs", async () => {
    const raw = client();
    // L1 may keep entries long; the entries themselves are fresh for 200 ms only.
    const cache = new Cache(client(), {
      namespace: "full-ttl",
      prefix,
      ttlMs: 200,
      l1: { ttlMs: 600_000 },
      checkEvictionPolicy: false,
    });
    try {
      await cache.ready();
      await fill(raw);
      let loads = 0;
      const loader = () => ++loads;
      expect(await cache.getOrSet("k", loader)).toBe(1);
      const loaded = performance.now();
      await waitUntil("the loaded value to be past its ttlMs", () => performance.now() > loaded + 300, 2_000);
      expect(await cache.getOrSet("k", loader)).toBe(2);
    } finally {
      await empty(raw);
      await cache.close();
    }
  });
});
