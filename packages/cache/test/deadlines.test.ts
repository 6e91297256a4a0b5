import { connect, type RedisClient } from "@coordis/core";
import { recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache, type CacheOptions } from "../src/index.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix();
/** Added per direction between replica B and Redis: a reply reaches B this long after Redis judged the entry. */
const LATENCY_MS = 500;

describe("Cache L1 deadlines on a slow network (replies arriving late)", () => {
  const redis = proxiedServer();
  let admin: RedisClient;
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  let ns = 0;
  const client = (url: string) => {
    const c = connect(url, { commandTimeoutMs: 5_000 });
    c.on("error", () => {});
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    admin = redis.server.client();
  });
  afterAll(async () => {
    redis.proxy.setLatency(0);
    await Promise.all(caches.map((c) => c.close()));
    for (const c of clients) c.disconnect();
    admin.disconnect();
  });

  /** A (next to Redis) and B (behind the proxy) of one namespace; B's L1 lifetime is no bound here. */
  async function pair(options: Partial<CacheOptions> = {}) {
    const namespace = `deadlines${++ns}`;
    const base = { namespace, prefix, ttlMs: 3_000, checkEvictionPolicy: false, ...options };
    const rec = recordObserver();
    const a = new Cache(client(redis.server.url), base);
    const b = new Cache(client(redis.proxy.url), { ...base, l1: { ttlMs: 600_000 }, observer: rec });
    caches.push(a, b);
    await Promise.all([a.ready(), b.ready()]);
    const entryKey = (k: string) => `${prefix}:cache:{${namespace}:${k}}`;
    return { a, b, rec, entryKey };
  }

  async function expiredInRedis(key: string): Promise<void> {
    await waitUntil(`${key} to expire in Redis`, async () => (await admin.exists(key)) === 0, 10_000);
  }

  it("an L2 hit read over a slow link is not served from L1 after Redis expired it (get and getOrSet)", async () => {
    const { a, b, rec, entryKey } = await pair();
    await a.set("viaGet", "v1");
    await a.set("viaGetOrSet", "v1");
    // A's invalidations reach B before B reads (else they would keep B's reads out of its L1).
    await waitUntil(
      "B to hear both invalidations",
      () => rec.events.filter((e) => e.type === "invalidation").length === 2,
      5_000,
    );
    redis.proxy.setLatency(LATENCY_MS);
    expect(await b.get("viaGet")).toBe("v1");
    expect(await b.getOrSet("viaGetOrSet", () => "loaded")).toBe("v1");
    expect(tiers(rec)).toEqual(["l2/hit", "l2/hit"]);
    redis.proxy.setLatency(0);
    // Redis judged the entries fresh for ttlMs from their write; B must not judge them fresher because the answer
    // took time to reach it.
    await expiredInRedis(entryKey("viaGet"));
    expect(await b.get("viaGet")).toBeUndefined();
    await expiredInRedis(entryKey("viaGetOrSet"));
    expect(await b.getOrSet("viaGetOrSet", () => "reloaded")).toBe("reloaded");
    expect(tiers(rec).slice(2)).toEqual(["l2/miss", "l2/miss"]);
  });

  it("a value B wrote (set, or a load's write-back) over a slow link leaves B's L1 when Redis expires it", async () => {
    const { b, rec, entryKey } = await pair();
    redis.proxy.setLatency(LATENCY_MS);
    await b.set("set", "v1");
    redis.proxy.setLatency(0);
    await expiredInRedis(entryKey("set"));
    expect(await b.get("set")).toBeUndefined();
    redis.proxy.setLatency(LATENCY_MS);
    expect(await b.getOrSet("loaded", () => "v1")).toBe("v1");
    redis.proxy.setLatency(0);
    await expiredInRedis(entryKey("loaded"));
    expect(await b.get("loaded")).toBeUndefined();
    expect(tiers(rec).slice(-2)).toEqual(["l2/miss", "l2/miss"]);
  });
});
