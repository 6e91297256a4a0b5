import { connect, type RedisClient, runScript } from "@coordis/core";
import { type RedisServer, recordObserver, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache, type CacheOptions } from "../src/index.js";
import { cacheScripts } from "../src/scripts.generated.js";
import { previousScripts } from "./fixtures/previous-scripts.js";

const prefix = testPrefix();

// A load of a key Redis had no entry for publishes only when another replica marked the entry as awaited: the cases
// where a replica still has to be told (it waits, or holds a copy of the entry the load replaces).
describe("Loads that must still be announced", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  let ns = 0;
  /** Two replicas of one namespace (b's client is the last one made). */
  async function replicas(options: Partial<CacheOptions> = {}) {
    const namespace = `q${++ns}`;
    const make = async () => {
      const c = connect(server.url, { commandTimeoutMs: 2_000 });
      c.on("error", () => {});
      clients.push(c);
      const rec = recordObserver();
      const cache = new Cache(c, { namespace, prefix, ttlMs: 60_000, observer: rec, ...options });
      caches.push(cache);
      await cache.ready();
      return { cache, rec };
    };
    const a = await make();
    const b = await make();
    const entry = (k: string) => `${prefix}:cache:{${namespace}:${k}}`;
    return { a, b, entry };
  }
  const keyInvalidations = (rec: ReturnType<typeof recordObserver>) =>
    rec.events.filter((e) => e.type === "invalidation" && e.attributes?.kind === "key").length;
  function gated<T>(value: T) {
    let started!: () => void;
    const loading = new Promise<void>((r) => (started = r));
    let finish!: () => void;
    const gate = new Promise<void>((r) => (finish = r));
    const loader = async () => {
      started();
      await gate;
      return value;
    };
    return { loader, loading, finish };
  }
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    for (const c of clients) c.disconnect();
    await server.stop();
  });

  it("a refill of an entry whose tag was invalidated wakes the replica waiting for it", async () => {
    const { a, b } = await replicas();
    await a.cache.set("k", "old", { tags: ["t"] });
    await a.cache.invalidateTag("t");
    const g = gated("new");
    const held = a.cache.getOrSet("k", g.loader, { tags: ["t"] });
    await g.loading;
    const waited = b.cache.getOrSet("k", () => "b's", { tags: ["t"] });
    // b waits (it found the entry outdated and the lock taken): no mark, as the entry is there.
    const calls = () => b.cache.stats().redisCalls;
    const first = calls();
    await waitUntil("b to poll", () => calls() >= first + 4, 5_000);
    g.finish();
    expect(await held).toBe("new");
    expect(await waited).toBe("new");
    await waitUntil("b to be told of the refill", () => keyInvalidations(b.rec) >= 2, 5_000);
    expect(b.cache.stats().loads).toBe(0);
  });

  it("a replica that found an entry's tag outdated does not load again when the entry was refilled meanwhile", async () => {
    const { a, b } = await replicas();
    await a.cache.set("k", "old", { tags: ["t"] });
    await a.cache.invalidateTag("t");
    // b's read finds the old entry (tag outdated); before its second script (which takes the fill lock) runs, a
    // refills the key: b's client holds that script until a's load has landed.
    const bClient = clients.at(-1) as RedisClient & { evalsha: (...args: unknown[]) => Promise<unknown> };
    const evalsha = bClient.evalsha.bind(bClient);
    let refill: Promise<unknown> | undefined;
    bClient.evalsha = (...args: unknown[]) => {
      if (args[0] === cacheScripts.get.sha1 && String(args[6]) === "1" && refill === undefined) {
        refill = a.cache.getOrSet("k", () => "new", { tags: ["t"] });
        return refill.then(() => evalsha(...args));
      }
      return evalsha(...args);
    };
    expect(await b.cache.getOrSet("k", () => "b's", { tags: ["t"] })).toBe("new");
    expect(await refill).toBe("new");
    expect(b.cache.stats().loads).toBe(0);
  });

  it("a stale refresh evicts the copy another replica holds", async () => {
    const { a, b, entry } = await replicas();
    await a.cache.set("k", "old", { ttlMs: 200, staleMs: 60_000 });
    expect(await b.cache.get("k")).toBe("old");
    const admin = server.adminClient();
    await waitUntil(
      "the entry to be stale",
      async () => Number(await admin.hget(entry("k"), "f")) < Date.now() - 50,
      5_000,
    );
    const before = keyInvalidations(b.rec);
    expect(await a.cache.getOrSet("k", () => "new", { ttlMs: 60_000 })).toBe("old");
    await waitUntil(
      "the refresh to land",
      async () => (await admin.hget(entry("k"), "v")) === JSON.stringify("new"),
      5_000,
    );
    await waitUntil("b to be told of the refresh", () => keyInvalidations(b.rec) > before, 5_000);
    expect(await b.cache.get("k")).toBe("new");
  });

  it("an entry holding only a waiter's mark reads as missing everywhere, old scripts included", async () => {
    const { a, entry } = await replicas();
    const admin = server.adminClient();
    await admin.hset(entry("k"), "q", "1");
    await admin.pexpire(entry("k"), 60_000);
    expect(await a.cache.get("k")).toBeUndefined();
    const keys = [entry("k"), `${entry("k")}:lock`] as const;
    expect(await runScript(admin as unknown as RedisClient, previousScripts.read, [entry("k")], [])).toBe(0);
    expect(await runScript(admin as unknown as RedisClient, previousScripts.get, keys, ["", 10_000, 0, 0])).toBe(0);
    expect(await a.cache.delete("k")).toBe(false);
    await admin.hset(entry("k"), "q", "1");
    expect(await a.cache.getOrSet("k", () => 5)).toBe(5);
    expect(await admin.hgetall(entry("k"))).not.toHaveProperty("q");
    await admin.hset(entry("j"), "q", "1");
    await a.cache.clear();
    expect(await admin.exists(entry("j"))).toBe(0);
  });
});
