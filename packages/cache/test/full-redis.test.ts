import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Cache } from "../src/index.js";
import { cacheScripts } from "../src/scripts.generated.js";

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

  it("set throws OOM and stores nothing: new key, existing entry, with and without tags", async () => {
    const raw = client();
    const cache = new Cache(client(), { namespace: "full-set", prefix, ttlMs: 60_000 });
    try {
      await cache.ready();
      await cache.set("old", "before", { tags: ["t"] });
      await fill(raw);
      const big = "v".repeat(300_000);
      for (const [key, tags] of [
        ["new", []],
        ["old", []],
        ["new", ["t"]],
        ["old", ["t"]],
      ] as const) {
        await expect(cache.set(key, big, { tags: [...tags] }), `set ${key} tags ${tags.join()}`).rejects.toMatchObject({
          name: "ScriptError",
          message: expect.stringMatching(/OOM/),
        });
      }
      expect(await raw.exists(`${prefix}:cache:{full-set:new}`)).toBe(0);
      expect(await raw.hget(`${prefix}:cache:{full-set:old}`, "v")).toBe(JSON.stringify("before"));
    } finally {
      await empty(raw);
      await cache.close();
    }
  });

  it("invalidateTag evicts, on every replica, a tagged value the loader answered while Redis was full", async () => {
    const raw = client();
    const a = new Cache(client(), { namespace: "full-tag", prefix, ttlMs: 60_000, checkEvictionPolicy: false });
    const b = new Cache(client(), { namespace: "full-tag", prefix, ttlMs: 60_000, checkEvictionPolicy: false });
    try {
      await Promise.all([a.ready(), b.ready()]);
      await fill(raw);
      let version = 1;
      const loader = () => `v${version}`;
      expect(await a.getOrSet("p", loader, { tags: ["shop"] })).toBe("v1");
      expect(await b.getOrSet("p", loader, { tags: ["shop"] })).toBe("v1");
      // Kept in L1: a second call does not load.
      expect(await a.getOrSet("p", () => "not loaded", { tags: ["shop"] })).toBe("v1");
      version = 2;
      await a.invalidateTag("shop");
      expect(await a.getOrSet("p", loader, { tags: ["shop"] })).toBe("v2");
      await waitUntil("b to drop its copy", async () => (await b.getOrSet("p", loader, { tags: ["shop"] })) === "v2");
    } finally {
      await empty(raw);
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("Redis filling up while a getOrSet holds the fill lock: the loader's result is returned and the lock given back", async () => {
    const raw = client();
    const redis = client();
    const cache = new Cache(redis, { namespace: "full-mid", prefix, ttlMs: 60_000, checkEvictionPolicy: false });
    const lock = (k: string) => `${prefix}:cache:{full-mid:${k}}:lock`;
    try {
      await cache.ready();
      // Other writers fill Redis right after the read that took the lock, before the tag's version is created.
      const evalsha = redis.evalsha.bind(redis) as (...args: unknown[]) => Promise<unknown>;
      let armed = true;
      redis.evalsha = (async (...args: unknown[]) => {
        const reply = await evalsha(...args);
        if (armed && args[0] === cacheScripts.get.sha1) {
          armed = false;
          await fill(raw);
        }
        return reply;
      }) as typeof redis.evalsha;
      expect(await cache.getOrSet("before-tags", () => "loaded-1", { tags: ["new-tag"] })).toBe("loaded-1");
      expect(armed).toBe(false);
      await waitUntil("the lock to be given back", async () => (await raw.exists(lock("before-tags"))) === 0);
      // Full while the loader runs: the write-back is refused; the loader's result is still the answer.
      await empty(raw);
      await cache.set("seed", "x", { tags: ["old-tag"] });
      const result = await cache.getOrSet(
        "during-load",
        async () => {
          await fill(raw);
          return "loaded-2";
        },
        { tags: ["old-tag"] },
      );
      expect(result).toBe("loaded-2");
      await waitUntil("the lock to be given back", async () => (await raw.exists(lock("during-load"))) === 0);
      expect(await raw.exists(`${prefix}:cache:{full-mid:during-load}`)).toBe(0);
      // Served from L1 meanwhile, and evicted by an invalidation of its tag.
      expect(await cache.getOrSet("during-load", () => "not loaded", { tags: ["old-tag"] })).toBe("loaded-2");
      await cache.invalidateTag("old-tag");
      expect(await cache.getOrSet("during-load", () => "loaded-3", { tags: ["old-tag"] })).toBe("loaded-3");
    } finally {
      await empty(raw);
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
