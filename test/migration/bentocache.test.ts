/**
 * packages/cache README, "Migrating from bentocache and connect-redis" (the bentocache half): each mapping run side
 * by side, bentocache (the installed devDependency, L1 memory + L2 Redis + Redis bus) and @coordis/cache on one real
 * Redis, two "replicas" of each, on the same scenario.
 */

import { Cache, type CacheCodec } from "@coordis/cache";
import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { BentoCache, bentostore } from "bentocache";
import { memoryDriver } from "bentocache/drivers/memory";
import { redisBusDriver, redisDriver } from "bentocache/drivers/redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

let server: RedisServer;
let redis: RedisClient;
let admin: RedisClient;
const prefix = testPrefix("mig-bento");

beforeAll(async () => {
  server = await startRedis();
  redis = connect(server.url);
  admin = connect(server.adminUrl);
});
const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});
afterAll(async () => {
  redis?.disconnect();
  admin?.disconnect();
  await server?.stop();
});

let n = 0;
type BentoOptions = { ttl?: string | number; grace?: string | number | false; maxItems?: number };

/** A bentocache "replica" as the README's "before" builds it: L1 memory, L2 Redis, Redis bus. */
async function bentoReplica(namespace: string, options: BentoOptions = {}) {
  const connection = { host: server.host, port: server.port };
  const bento = new BentoCache({
    default: "main",
    prefix: `${prefix}-bento`,
    ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
    ...(options.grace === undefined ? {} : { grace: options.grace }),
    stores: {
      main: bentostore()
        .useL1Layer(memoryDriver({ maxItems: options.maxItems ?? 10_000 }))
        .useL2Layer(redisDriver({ connection }))
        .useBus(redisBusDriver({ connection })),
    },
  });
  closers.push(() => bento.disconnect());
  return bento.namespace(namespace);
}

/** A @coordis/cache "replica" as the README's "after" builds it. */
async function coordisReplica(namespace: string, options: Partial<ConstructorParameters<typeof Cache>[1]> = {}) {
  const cache = new Cache(redis, { namespace, ttlMs: 60_000, prefix, checkEvictionPolicy: false, ...options });
  closers.push(() => cache.close());
  await cache.ready();
  return cache;
}

/** Two replicas of each, on one namespace of their own. */
async function fleet(
  bentoOptions: BentoOptions = {},
  coordisOptions: Partial<ConstructorParameters<typeof Cache>[1]> = {},
) {
  const ns = `users${++n}`;
  const [b1, b2] = [await bentoReplica(ns, bentoOptions), await bentoReplica(ns, bentoOptions)];
  const [c1, c2] = [await coordisReplica(ns, coordisOptions), await coordisReplica(ns, coordisOptions)];
  // Let bentocache's bus subscribe before anything is published (its first publish creates the subscription).
  await b1.set({ key: "__warm", value: 1 });
  await b2.set({ key: "__warm", value: 1 });
  return { b1, b2, c1, c2 };
}

function counter<T>(value: () => T) {
  const calls = { count: 0 };
  const load = async () => {
    calls.count++;
    return value();
  };
  return { calls, load };
}

describe("bentocache → @coordis/cache", () => {
  it("getOrSet({ key, factory }) → getOrSet(key, loader): one load, then hits on both replicas", async () => {
    const { b1, b2, c1, c2 } = await fleet();
    const bl = counter(() => ({ name: "ada" }));
    const cl = counter(() => ({ name: "ada" }));

    expect(await b1.getOrSet({ key: "u1", factory: bl.load, tags: ["org:1"] })).toEqual({ name: "ada" });
    expect(await b1.getOrSet({ key: "u1", factory: bl.load })).toEqual({ name: "ada" });
    expect(await b2.getOrSet({ key: "u1", factory: bl.load })).toEqual({ name: "ada" });
    expect(bl.calls.count).toBe(1);

    expect(await c1.getOrSet("u1", cl.load, { tags: ["org:1"] })).toEqual({ name: "ada" });
    expect(await c1.getOrSet("u1", cl.load)).toEqual({ name: "ada" });
    expect(await c2.getOrSet("u1", cl.load)).toEqual({ name: "ada" });
    expect(cl.calls.count).toBe(1);
  });

  it("concurrent getOrSet of a cold key on two replicas: bentocache loads once per process, Coordis once per fleet", async () => {
    const { b1, b2, c1, c2 } = await fleet();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const bl = counter(async () => {
      await gate;
      return 7;
    });
    const cl = counter(async () => {
      await gate;
      return 7;
    });
    const reads = Promise.all([
      b1.getOrSet({ key: "cold", factory: bl.load }),
      b2.getOrSet({ key: "cold", factory: bl.load }),
      c1.getOrSet("cold", cl.load),
      c2.getOrSet("cold", cl.load),
    ]);
    // bentocache's factory lock is in-process: each replica, blocked on the gate, loads the key itself.
    await waitUntil("both bentocache replicas to load", () => bl.calls.count === 2 && cl.calls.count >= 1);
    release();
    expect(await reads).toEqual([7, 7, 7, 7]);
    expect([bl.calls.count, cl.calls.count]).toEqual([2, 1]);
    // Within one process both coalesce concurrent callers.
    const bl2 = counter(() => 8);
    const cl2 = counter(() => 8);
    const same = await Promise.all([
      b1.getOrSet({ key: "cold2", factory: bl2.load }),
      b1.getOrSet({ key: "cold2", factory: bl2.load }),
      c1.getOrSet("cold2", cl2.load),
      c1.getOrSet("cold2", cl2.load),
    ]);
    expect(same).toEqual([8, 8, 8, 8]);
    expect([bl2.calls.count, cl2.calls.count]).toEqual([1, 1]);
  });

  it("get({ key, defaultValue }), has, missing → get(key) ?? default, !== undefined", async () => {
    const { b1, c1 } = await fleet();
    expect(await b1.get({ key: "none" })).toBeUndefined();
    expect(await b1.get({ key: "none", defaultValue: "dflt" })).toBe("dflt");
    expect(await b1.has({ key: "none" })).toBe(false);
    expect(await b1.missing({ key: "none" })).toBe(true);
    expect(await c1.get("none")).toBeUndefined();
    expect((await c1.get("none")) ?? "dflt").toBe("dflt");

    await b1.set({ key: "k", value: { a: 1 } });
    await c1.set("k", { a: 1 });
    expect(await b1.has({ key: "k" })).toBe(true);
    expect(await c1.get("k")).toEqual({ a: 1 });
  });

  it("set on one replica → the other replica's L1 copy is replaced (bus)", async () => {
    const { b1, b2, c1, c2 } = await fleet();
    await b1.set({ key: "k", value: "v1" });
    await c1.set("k", "v1");
    // Both replicas now hold v1 in L1.
    expect([await b2.get({ key: "k" }), await c2.get("k")]).toEqual(["v1", "v1"]);
    await b1.set({ key: "k", value: "v2" });
    await c1.set("k", "v2");
    await waitUntil("bentocache's other replica to see v2", async () => (await b2.get({ key: "k" })) === "v2");
    await waitUntil("Coordis' other replica to see v2", async () => (await c2.get("k")) === "v2");
  });

  it("delete({ key }) / deleteMany({ keys }) → delete(key) per key, on every replica", async () => {
    const { b1, b2, c1, c2 } = await fleet();
    for (const k of ["a", "b", "c"]) {
      await b1.set({ key: k, value: k });
      await c1.set(k, k);
      expect([await b2.get({ key: k }), await c2.get(k)]).toEqual([k, k]);
    }
    expect(await b1.delete({ key: "a" })).toBe(true);
    expect(await c1.delete("a")).toBe(true);
    expect(await b1.deleteMany({ keys: ["b", "c"] })).toBe(true);
    expect(await c1.delete("b")).toBe(true);
    expect(await c1.delete("c")).toBe(true);
    await waitUntil("bentocache's other replica to drop a, b, c", async () => {
      const got = await Promise.all(["a", "b", "c"].map((key) => b2.get({ key })));
      return got.every((v) => v === undefined);
    });
    await waitUntil("Coordis' other replica to drop a, b, c", async () => {
      const got = await Promise.all(["a", "b", "c"].map((key) => c2.get(key)));
      return got.every((v) => v === undefined);
    });
    // Deleting what is not there.
    expect(await c1.delete("a")).toBe(false);
  });

  it("deleteByTag({ tags }) → invalidateTag(tag) per tag: tagged entries dropped everywhere, others kept", async () => {
    const { b1, b2, c1, c2 } = await fleet();
    await b1.set({ key: "u1", value: 1, tags: ["org:1"] });
    await b1.set({ key: "u2", value: 2, tags: ["org:2"] });
    await b1.set({ key: "u3", value: 3, tags: ["org:3"] });
    await c1.set("u1", 1, { tags: ["org:1"] });
    await c1.set("u2", 2, { tags: ["org:2"] });
    await c1.set("u3", 3, { tags: ["org:3"] });
    expect(await b2.get({ key: "u1" })).toBe(1);
    expect(await c2.get("u1")).toBe(1);

    await b1.deleteByTag({ tags: ["org:1", "org:2"] });
    await c1.invalidateTag("org:1");
    await c1.invalidateTag("org:2");

    for (const replica of [b1, b2]) {
      await waitUntil("bentocache to drop u1 and u2", async () => (await replica.get({ key: "u1" })) === undefined);
      expect(await replica.get({ key: "u2" })).toBeUndefined();
      expect(await replica.get({ key: "u3" })).toBe(3);
    }
    for (const replica of [c1, c2]) {
      await waitUntil("Coordis to drop u1 and u2", async () => (await replica.get("u1")) === undefined);
      expect(await replica.get("u2")).toBeUndefined();
      expect(await replica.get("u3")).toBe(3);
    }
  });

  it("ttl → ttlMs: fresh until the TTL, a miss after it (the loader runs again)", async () => {
    const { b1, c1 } = await fleet({ ttl: 150 }, { ttlMs: 150, l1: { ttlMs: 150 } });
    const bl = counter(() => "v");
    const cl = counter(() => "v");
    await b1.getOrSet({ key: "k", factory: bl.load });
    await c1.getOrSet("k", cl.load);
    await waitUntil("bentocache's entry to expire", async () => (await b1.get({ key: "k" })) === undefined);
    await waitUntil("Coordis' entry to expire", async () => (await c1.get("k")) === undefined);
    await b1.getOrSet({ key: "k", factory: bl.load });
    await c1.getOrSet("k", cl.load);
    expect([bl.calls.count, cl.calls.count]).toEqual([2, 2]);
    // The ttl given per call wins over the instance's.
    await b1.set({ key: "long", value: 1, ttl: "1h" });
    await c1.set("long", 1, { ttlMs: 3_600_000 });
    expect(await admin.pttl(`${prefix}:cache:{users${n}:long}`)).toBeGreaterThan(3_000_000);
  });

  it("grace → staleMs: past the TTL the old value is served while a refresh runs, and kept when the refresh fails", async () => {
    const { b1, c1 } = await fleet({ ttl: 150, grace: "1h" }, { ttlMs: 150, staleMs: 3_600_000, l1: { ttlMs: 150 } });
    await b1.getOrSet({ key: "k", factory: async () => "old" });
    await c1.getOrSet("k", async () => "old");
    // Coordis' get answers fresh values only; bentocache's get answers a graced one too (as the README says).
    await waitUntil(
      "bentocache's entry to be past its ttl",
      async () => (await b1.get({ key: "k", grace: false })) === undefined,
    );
    await waitUntil("Coordis' entry to be past its ttl", async () => (await c1.get("k")) === undefined);
    expect(await b1.get({ key: "k" })).toBe("old");

    // A failing refresh: the stale value is served.
    const failing = async (): Promise<string> => {
      throw new Error("db down");
    };
    expect(await b1.getOrSet({ key: "k", factory: failing })).toBe("old");
    expect(await c1.getOrSet("k", failing)).toBe("old");

    // A working refresh: the stale value is answered at once, the new one lands.
    const bl = counter(() => "new");
    const cl = counter(() => "new");
    expect(await b1.getOrSet({ key: "k", factory: bl.load })).toBe("old");
    expect(await c1.getOrSet("k", cl.load)).toBe("old");
    await waitUntil("bentocache to refresh", async () => (await b1.getOrSet({ key: "k", factory: bl.load })) === "new");
    await waitUntil("Coordis to refresh", async () => (await c1.getOrSet("k", cl.load)) === "new");
  });

  it("clear() → clear(): every entry of the namespace, on every replica", async () => {
    const { b1, b2, c1, c2 } = await fleet();
    await b1.set({ key: "x", value: 1 });
    await c1.set("x", 1);
    expect([await b2.get({ key: "x" }), await c2.get("x")]).toEqual([1, 1]);
    await b1.clear();
    await c1.clear();
    await waitUntil("bentocache's other replica to be cleared", async () => (await b2.get({ key: "x" })) === undefined);
    await waitUntil("Coordis' other replica to be cleared", async () => (await c2.get("x")) === undefined);
    expect([await b1.get({ key: "x" }), await c1.get("x")]).toEqual([undefined, undefined]);
  });

  it("serializer → codec: the default JSON returns Dates as strings on both sides; a codec of your own round-trips", async () => {
    const when = new Date("2026-01-02T03:04:05.000Z");
    const { b1, b2, c1, c2 } = await fleet({}, { l1: false });
    await b1.set({ key: "d", value: { when } });
    await c1.set("d", { when });
    expect(await b2.get({ key: "d" })).toEqual({ when: when.toISOString() });
    expect(await c2.get("d")).toEqual({ when: when.toISOString() });

    const dates: CacheCodec = {
      encode: (v) => JSON.stringify(v),
      decode: (s) => JSON.parse(s, (_k, v) => (typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v) ? new Date(v) : v)),
    };
    const withCodec = await coordisReplica(`dates${n}`, { codec: dates, l1: false });
    await withCodec.set("d", { when });
    expect(await withCodec.get("d")).toEqual({ when });
  });

  it("ttl default 30 minutes → ttlMs required; memoryDriver({ maxItems }) → l1: { maxEntries }", async () => {
    expect(
      () => new Cache(redis, { namespace: "no-ttl" } as unknown as ConstructorParameters<typeof Cache>[1]),
    ).toThrow(InvalidArgumentError);
    const { b1 } = await fleet({ maxItems: 2 });
    const small = await coordisReplica(`small${n}`, { l1: { maxEntries: 2 } });
    for (const k of ["a", "b", "c"]) {
      await b1.set({ key: k, value: k });
      await small.set(k, k);
      await small.get(k);
    }
    expect(small.stats().l1Entries).toBeLessThanOrEqual(2);
    // Entries past the L1's size still come from Redis.
    for (const k of ["a", "b", "c"]) {
      expect(await b1.get({ key: k })).toBe(k);
      expect(await small.get(k)).toBe(k);
    }
  });

  it("lockTimeout → lock { waitMs }: a caller that waited that long loads itself", async () => {
    const { c1, c2 } = await fleet({}, { lock: { waitMs: 100, ttlMs: 10_000 } });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = counter(async () => {
      await gate;
      return "slow";
    });
    const first = c1.getOrSet("k", slow.load);
    await waitUntil("the first load to start", () => slow.calls.count === 1);
    // The second replica gives up waiting for the fill lock and loads itself.
    expect(await c2.getOrSet("k", async () => "own")).toBe("own");
    release();
    expect(await first).toBe("slow");
  });
});
