import { connect, type RedisClient, runScript } from "@coordis/core";
import { countCommands, type RedisServer, recordObserver, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";
import { cacheScripts } from "../src/scripts.generated.js";
import { previousScripts } from "./fixtures/previous-scripts.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix();
const VALUE = JSON.stringify({ id: 42 });

// Rolling upgrade: replicas of the previous release (its scripts, in the fixture) and of this one share the entries.
describe("Cache entries across releases (rolling upgrade)", () => {
  let server: RedisServer;
  let redis: RedisClient;
  const caches: Cache[] = [];
  let ns = 0;
  async function make() {
    const namespace = `c${++ns}`;
    const cache = new Cache(redis, { namespace, prefix, ttlMs: 60_000 });
    caches.push(cache);
    await cache.ready();
    const entry = (k: string) => `${prefix}:cache:{${namespace}:${k}}`;
    return { cache, keys: (k: string) => [entry(k), `${entry(k)}:lock`] as const };
  }
  beforeAll(async () => {
    server = await startRedis();
    redis = connect(server.url);
  });
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    redis.disconnect();
    await server.stop();
  });

  it("entries the previous release wrote are read by this one: fresh, stale and gone", async () => {
    const rec = recordObserver();
    const { keys } = await make();
    const cache = new Cache(redis, { namespace: `c${ns}`, prefix, ttlMs: 60_000, observer: rec });
    caches.push(cache);
    const tags = JSON.stringify([["t", "v1"]]);
    // freshMs < 0: fresh until a past instant, stale until 25 s from now; fresh and stale both past: no key.
    await runScript(redis, previousScripts.set, keys("fresh"), [VALUE, 30_000, 10_000, "", ""]);
    await runScript(redis, previousScripts.set, keys("stale"), [VALUE, -5_000, 30_000, "", ""]);
    await runScript(redis, previousScripts.set, keys("gone"), [VALUE, -10_000, 5_000, "", ""]);
    await runScript(redis, previousScripts.set, keys("tagged"), [VALUE, 30_000, 0, tags, ""]);
    expect(await cache.get("fresh")).toEqual({ id: 42 });
    expect(await cache.get("stale")).toBeUndefined();
    expect(await cache.getOrSet("stale", () => ({ id: 0 }))).toEqual({ id: 42 });
    expect(await cache.get("gone")).toBeUndefined();
    expect(await cache.get("tagged")).toBeUndefined(); // tag t was never created: v1 is outdated
    expect(tiers(rec)).toEqual(["l2/hit", "l2/miss", "l2/stale", "l2/miss", "l2/miss"]);
    // This release's get.lua judges them the same way.
    const [value, freshIn, staleIn, tagsJson, locked] = (await runScript(redis, cacheScripts.get, keys("fresh"), [
      "tok",
      10_000,
      0,
      "",
    ])) as [string, number, number, string, number];
    expect([value, tagsJson, locked]).toEqual([VALUE, "", 0]);
    expect(freshIn).toBeGreaterThan(29_000);
    expect(freshIn).toBeLessThanOrEqual(30_000);
    expect(staleIn - freshIn).toBe(10_000);
  });

  it("entries this release writes are read by the previous release's scripts", async () => {
    const { cache, keys } = await make();
    await cache.set("plain", { id: 42 }, { ttlMs: 30_000, staleMs: 10_000 });
    await cache.set("tagged", { id: 42 }, { ttlMs: 30_000, tags: ["t"] });
    await runScript(redis, cacheScripts.set, keys("stale"), [VALUE, -5_000, 25_000, "", ""]);
    const [state, value, freshIn, staleIn, tagsJson, locked] = (await runScript(
      redis,
      previousScripts.read,
      keys("plain").slice(0, 1) as [string],
      [],
    )) as [number, string, number, number, string, number];
    expect([state, value, tagsJson, locked]).toEqual([1, VALUE, "", 0]);
    expect(freshIn).toBeGreaterThan(29_000);
    expect(staleIn - freshIn).toBe(10_000);
    const tagged = (await runScript(redis, previousScripts.get, keys("tagged"), ["tok", 10_000, 0, 0])) as unknown[];
    expect(tagged[0]).toBe(1);
    expect(JSON.parse(tagged[4] as string)).toEqual([["t", expect.any(String)]]);
    const stale = (await runScript(redis, previousScripts.read, [keys("stale")[0]], [])) as unknown[];
    expect(stale[0]).toBe(2);
    expect(stale[3]).toBeGreaterThan(19_000);
    // The key expires when the previous release's reader says the entry is gone (lifeMs = its stale deadline).
    expect(await redis.pttl(keys("stale")[0])).toBeLessThanOrEqual(25_000);
  });

  it("a fill token registered by one release is honoured by the other's write-back", async () => {
    const { keys } = await make();
    for (const [name, register, write] of [
      ["old-new", () => previousScripts.get, "new"],
      ["new-old", () => cacheScripts.get, "old"],
    ] as const) {
      const k = keys(name);
      await redis.set(k[1], "holder", "PX", 60_000); // another caller holds the fill lock
      const reg = register();
      const args = reg === previousScripts.get ? ["waiter", 10_000, 0, 1] : ["waiter", 10_000, 2, ""];
      expect(await runScript(redis, reg as typeof cacheScripts.get, k, args as never)).toBe(0);
      expect(await redis.hget(k[0], "p:waiter")).toMatch(/^\d+$/);
      const written =
        write === "new"
          ? await runScript(redis, cacheScripts.set, k, [VALUE, 30_000, 30_000, "", "waiter"])
          : await runScript(redis, previousScripts.set, k, [VALUE, 30_000, 0, "", "waiter"]);
      // This release answers 2: written over a registered token (somebody waited, and is to be told).
      expect(written).toBe(write === "new" ? 2 : 1);
      expect(await redis.hget(k[0], "v")).toBe(VALUE);
      expect(await redis.exists(k[1])).toBe(0);
    }
  });

  it("a plain get sends HMGET and TIME in one pipeline (no script); getOrSet's read is one script", async () => {
    const { cache } = await make();
    const other = new Cache(redis, { namespace: `c${ns}`, prefix, ttlMs: 60_000, l1: false });
    caches.push(other);
    await cache.set("k", 1);
    const plain = await countCommands(server, () => other.get("k"));
    // Both leave in one write and come back together: one network round trip (MONITOR counts two commands).
    expect(plain.sent).toEqual({ hmget: 1, time: 1 });
    const fill = await countCommands(server, () => other.getOrSet("k", () => 2));
    expect(fill.sent).toEqual({ evalsha: 1 });
  });
});
