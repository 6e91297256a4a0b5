import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, recordObserver, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Cache, type CacheOptions } from "../src/index.js";

const prefix = testPrefix("swr-tags");

describe("stale-while-revalidate and tags under failing loaders and concurrent invalidation", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  let n = 0;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });
  afterAll(async () => {
    await server.stop();
  });
  /** `count` replicas of one fresh namespace, each on its own connection. */
  async function replicas(count: number, options: Partial<CacheOptions> = {}): Promise<Cache[]> {
    const namespace = `ns${++n}`;
    const out: Cache[] = [];
    for (let i = 0; i < count; i++) {
      const redis = connect(server.url);
      clients.push(redis);
      const cache = new Cache(redis, { namespace, prefix, ttlMs: 60_000, checkEvictionPolicy: false, ...options });
      caches.push(cache);
      out.push(cache);
    }
    await Promise.all(out.map((c) => c.ready()));
    return out;
  }

  it("a failing refresh: the stale value is served, one refresh at a time across replicas, the next one succeeds", async () => {
    const rec = recordObserver();
    const [a, b, c] = await replicas(3, { ttlMs: 50, staleMs: 60_000, observer: rec });
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const load = async () => {
      calls++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      if (calls === 1) return "v1";
      if (calls <= 3) throw new Error(`database down (${calls})`);
      return `v${calls}`;
    };
    expect(await a?.getOrSet("k", load)).toBe("v1");
    await waitUntil("the entry to go stale", async () => (await a?.get("k")) === undefined, 5_000);
    // Bursts of stale reads from every replica until a refresh succeeds: each burst answers the stale value.
    let fresh: unknown;
    await waitUntil(
      "a refresh to succeed",
      async () => {
        const got = await Promise.all([a, b, c, a, b, c].map((r) => r?.getOrSet("k", load)));
        for (const v of got) expect(["v1", "v4"]).toContain(v);
        fresh = await c?.getOrSet("k", load);
        return fresh === "v4";
      },
      5_000,
    );
    expect(maxRunning).toBe(1);
    expect(calls).toBe(4);
    const errors = rec.events.filter((e) => e.type === "refresh-error");
    expect(errors).toHaveLength(2);
  });

  it("a stale entry whose tag was invalidated is not served stale: the next read loads it, on every replica", async () => {
    const [a, b] = await replicas(2, { ttlMs: 50, staleMs: 60_000 });
    let version = 1;
    const load = () => `v${version}`;
    expect(await a?.getOrSet("t", load, { tags: ["shop:1"] })).toBe("v1");
    expect(await b?.getOrSet("t", load, { tags: ["shop:1"] })).toBe("v1");
    await waitUntil("the entry to go stale", async () => (await a?.get("t")) === undefined, 5_000);
    version = 2;
    await b?.invalidateTag("shop:1");
    expect(await a?.getOrSet("t", load, { tags: ["shop:1"] })).toBe("v2");
    expect(await b?.getOrSet("t", load, { tags: ["shop:1"] })).toBe("v2");
    // Read without naming its tags, too.
    version = 3;
    await a?.invalidateTag("shop:1");
    expect(await b?.get("t")).toBeUndefined();
    expect(await b?.getOrSet("t", load)).toBe("v3");
  });

  it("invalidateTag while many loads of tagged keys run on three replicas: no replica serves a pre-invalidation value after it", async () => {
    const [a, b, c] = await replicas(3, { l1: { ttlMs: 60_000 } });
    let version = 0;
    const load = (key: string) => async () => {
      const v = version;
      await new Promise((r) => setTimeout(r, Math.random() * 10));
      return `${key}@${v}`;
    };
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    for (let round = 1; round <= 5; round++) {
      const inflight = [a, b, c].flatMap((r) => keys.map((k) => r?.getOrSet(k, load(k), { tags: ["all"] })));
      await new Promise((r) => setTimeout(r, Math.random() * 5));
      version = round;
      const invalidator = [a, b, c][round % 3];
      await invalidator?.invalidateTag("all");
      // On the replica that invalidated, a call made after it resolved never answers an older value.
      const after = await Promise.all(keys.map((k) => invalidator?.getOrSet(k, load(k), { tags: ["all"] })));
      for (const v of after) expect(Number(String(v).split("@")[1])).toBeGreaterThanOrEqual(round);
      await Promise.all(inflight);
      // Every replica heard the invalidation within the pub/sub bound: after it, only values loaded after it.
      await waitUntil(
        "every replica to drop the old values",
        async () => {
          const seen = await Promise.all(
            [a, b, c].flatMap((r) => keys.map((k) => r?.getOrSet(k, load(k), { tags: ["all"] }))),
          );
          return seen.every((v) => Number(String(v).split("@")[1]) >= round);
        },
        2_000,
      );
    }
    expect(version).toBe(5);
  });

  it("close() while a background refresh is loading: the refresh settles (stored or reported), nothing unhandled", async () => {
    const rec = recordObserver();
    const [a] = await replicas(1, { ttlMs: 50, staleMs: 60_000, observer: rec });
    let release: (v: string) => void = () => {};
    let calls = 0;
    const load = () => {
      calls++;
      return calls === 1 ? "v1" : new Promise<string>((r) => (release = r));
    };
    expect(await a?.getOrSet("c", load)).toBe("v1");
    await waitUntil("the entry to go stale", async () => (await a?.get("c")) === undefined, 5_000);
    expect(await a?.getOrSet("c", load)).toBe("v1"); // starts the refresh
    expect(calls).toBe(2);
    await a?.close();
    release("v2");
    const [other] = await replicas(1, { namespace: a?.namespace, ttlMs: 50, staleMs: 60_000 });
    // The refresh settles: its value reaches Redis (the client is still open), or it reports a refresh-error.
    await waitUntil(
      "the refresh to settle",
      async () => (await other?.get("c")) === "v2" || rec.events.some((e) => e.type === "refresh-error"),
      2_000,
    );
    expect(["v1", "v2"]).toContain(await other?.getOrSet("c", () => "v3"));
  });
});
