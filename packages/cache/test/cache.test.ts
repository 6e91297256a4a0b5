import { aclRules, connect, type RedisClient } from "@coordis/core";
import { INTERNAL_CHANNEL_KIND, PubSub } from "@coordis/pubsub";
import { recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Cache, type CacheOptions } from "../src/index.js";
import { BUS_CHANNEL_KIND } from "../src/invalidation-bus.js";
import { tiers, writeUnannounced } from "./helpers.js";

const prefix = testPrefix();

/**
 * A URL for a user with the documented rules plus the extras `Cache.clear()` needs (`+scan +unlink`), created on
 * every node through the unrestricted URL: the shared servers' own user has exactly the base rules.
 */
async function clearUserUrl(url: string, adminUrl: string): Promise<string> {
  const admin = connect(adminUrl);
  try {
    await admin.ping();
    const nodes = admin instanceof Cluster ? admin.nodes("all") : [admin];
    const rules = aclRules({ cluster: admin instanceof Cluster });
    await Promise.all(
      nodes.map((n) =>
        n.call("ACL", "SETUSER", "coordis-clear", "reset", "on", ">clear-pw", ...rules, "+scan", "+unlink"),
      ),
    );
  } finally {
    admin.disconnect();
  }
  return url.replace(/\/\/[^@/]*@/, "//coordis-clear:clear-pw@");
}

/** The basic suite, run on the standalone server and on the cluster. */
function suite(topology: "standalone" | "cluster", url: () => string, adminUrl: () => string) {
  describe(`Cache on ${topology}`, () => {
    const clients: RedisClient[] = [];
    const caches: Cache[] = [];
    let ns = 0;
    const client = () => {
      const c = connect(url());
      clients.push(c);
      return c;
    };
    /** A new cache instance with its own connection; `n` instances of one namespace act as n replicas. */
    async function replicas(n: number, options: Partial<CacheOptions> = {}) {
      const namespace = `ns${++ns}-${topology}`;
      const made = Array.from(
        { length: n },
        () => new Cache(client(), { namespace, prefix, ttlMs: 60_000, ...options }),
      );
      caches.push(...made);
      await Promise.all(made.map((c) => c.ready()));
      return made;
    }
    afterAll(async () => {
      await Promise.all(caches.map((c) => c.close()));
      for (const c of clients) c.disconnect();
    });

    it("getOrSet loads once, then serves L1, and L2 to another replica", async () => {
      const rec = recordObserver();
      const [a, b] = await replicas(2, { observer: rec });
      let calls = 0;
      const loader = async () => {
        calls++;
        return { name: "ada", n: 1 };
      };
      expect(await a?.getOrSet("user:1", loader)).toEqual({ name: "ada", n: 1 });
      expect(await a?.getOrSet("user:1", loader)).toEqual({ name: "ada", n: 1 });
      expect(await b?.getOrSet("user:1", loader)).toEqual({ name: "ada", n: 1 });
      expect(calls).toBe(1);
      expect(tiers(rec)).toEqual(["l2/miss", "l1/hit", "l2/hit"]);
      expect(rec.ops.filter((o) => o.op === "load")).toHaveLength(1);
    });

    it("concurrent misses in one process share one loader call; a loader error reaches every caller", async () => {
      const [a] = await replicas(1);
      let calls = 0;
      const results = await Promise.all(
        Array.from({ length: 50 }, () =>
          a?.getOrSet("k", async () => {
            calls++;
            await new Promise((r) => setTimeout(r, 20));
            return calls;
          }),
        ),
      );
      expect(calls).toBe(1);
      expect(new Set(results)).toEqual(new Set([1]));
      const failing = Array.from({ length: 5 }, () =>
        a?.getOrSet("bad", async () => {
          throw new Error("db down");
        }),
      );
      for (const p of failing) await expect(p).rejects.toThrow("db down");
      // Nothing was cached and the fill lock was released: the next call loads at once.
      expect(await a?.getOrSet("bad", () => "ok")).toBe("ok");
    });

    it("set / get / delete, visible on every replica within the pub/sub bound", async () => {
      const [a, b, c] = await replicas(3);
      await a?.set("cfg", { v: 1 });
      expect(await b?.get("cfg")).toEqual({ v: 1 });
      expect(await c?.get("cfg")).toEqual({ v: 1 }); // now in B's and C's L1
      await a?.set("cfg", { v: 2 });
      const ms = await waitUntil(
        "B and C to see v2",
        async () => (await b?.get<{ v: number }>("cfg"))?.v === 2 && (await c?.get<{ v: number }>("cfg"))?.v === 2,
        2_000,
      );
      expect(ms).toBeLessThan(2_000); // documented bound: pub/sub delivery, well under l1.ttlMs (5 s)
      expect(await a?.delete("cfg")).toBe(true);
      await waitUntil(
        "B and C to drop cfg",
        async () => (await b?.get("cfg")) === undefined && (await c?.get("cfg")) === undefined,
        2_000,
      );
      expect(await a?.delete("cfg")).toBe(false);
    });

    it("invalidateTag evicts tagged entries in Redis and every L1", async () => {
      const [a, b] = await replicas(2);
      let version = 1;
      const load = () => ({ version });
      expect(await a?.getOrSet("p:1", load, { tags: ["org:7"] })).toEqual({ version: 1 });
      expect(await a?.getOrSet("p:2", load, { tags: ["org:7", "x"] })).toEqual({ version: 1 });
      expect(await a?.getOrSet("p:3", load, { tags: ["org:8"] })).toEqual({ version: 1 });
      expect(await b?.get("p:1")).toEqual({ version: 1 });
      version = 2;
      await a?.invalidateTag("org:7");
      expect(await a?.getOrSet("p:1", load, { tags: ["org:7"] })).toEqual({ version: 2 });
      expect(await a?.get("p:2")).toBeUndefined();
      expect(await a?.getOrSet("p:3", load, { tags: ["org:8"] })).toEqual({ version: 1 });
      await waitUntil(
        "B to see p:1 version 2",
        async () => (await b?.get<{ version: number }>("p:1"))?.version === 2,
        2_000,
      );
    });

    it("reads entries written by older versions (a `w` field, deadlines as text): fresh, stale and past", async () => {
      const rec = recordObserver();
      const [a] = await replicas(1, { observer: rec });
      const raw = client();
      const [seconds] = await raw.time();
      const now = Number(seconds) * 1000;
      const entry = (k: string) => `${prefix}:cache:{ns${ns}-${topology}:${k}}`;
      const old = async (k: string, freshIn: number, staleIn: number) => {
        const fields = { v: JSON.stringify({ k }), f: `${now + freshIn}`, s: `${now + staleIn}`, w: `${now}`, t: "" };
        await raw.hset(entry(k), fields);
        await raw.pexpire(entry(k), 60_000);
      };
      await old("fresh", 30_000, 40_000);
      await old("stale", -5_000, 30_000);
      await old("past", -10_000, -5_000);
      expect(await a?.get("fresh")).toEqual({ k: "fresh" });
      expect(await a?.get("stale")).toBeUndefined(); // get() serves fresh values only
      expect(await a?.getOrSet("stale", () => ({ k: "reloaded" }))).toEqual({ k: "stale" });
      expect(await a?.get("past")).toBeUndefined();
      expect(tiers(rec)).toEqual(["l2/hit", "l2/miss", "l2/stale", "l2/miss"]);
    });

    it("a load that started before a delete does not write its outdated value back", async () => {
      const [a, b] = await replicas(2);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const slow = a?.getOrSet("race", async () => {
        await gate;
        return "old";
      });
      await new Promise((r) => setTimeout(r, 50)); // let the load start (it holds the fill lock)
      await b?.set("race", "new");
      await b?.delete("race");
      release();
      expect(await slow).toBe("old"); // the caller gets its load...
      expect(await b?.get("race")).toBeUndefined(); // ...but Redis keeps the delete
    });

    it("a caller that gave up waiting loads and writes back; the slow holder's later write and a revoked waiter's write are refused", async () => {
      const [holder, waiter, reader] = (await replicas(3, { l1: false, lock: { ttlMs: 10_000, waitMs: 100 } })) as [
        Cache,
        Cache,
        Cache,
      ];
      for (const round of ["kept", "deleted"] as const) {
        const key = `gave-up-${round}`;
        let loading!: () => void;
        const started = new Promise<void>((r) => (loading = r));
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const slow = holder.getOrSet(key, async () => {
          loading();
          await gate;
          return "holder";
        });
        await started; // the holder has the fill lock and hangs
        const gaveUp = await waiter.getOrSet(key, async () => {
          if (round === "deleted") await reader.delete(key);
          return "waiter";
        });
        expect(gaveUp).toBe("waiter");
        expect(await reader.get(key)).toBe(round === "kept" ? "waiter" : undefined);
        release();
        expect(await slow).toBe("holder");
        // The holder's load began before the waiter's write (or the delete): Redis keeps the newer state.
        expect(await reader.get(key)).toBe(round === "kept" ? "waiter" : undefined);
      }
    });

    it("a call made after set() does not join a load that started before it", async () => {
      const [a] = await replicas(1);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const early = a?.getOrSet("join", async () => {
        await gate;
        return "old";
      });
      await new Promise((r) => setTimeout(r, 30));
      await a?.set("join", "new");
      const late = a?.getOrSet("join", () => "loaded-late");
      release();
      expect(await early).toBe("old");
      expect(await late).toBe("new");
      expect(await a?.get("join")).toBe("new");
    });

    it("stale-while-revalidate serves the stale value and refreshes once across replicas", async () => {
      const [a, b] = await replicas(2, { ttlMs: 300, staleMs: 30_000 });
      let loads = 0;
      const load = async () => {
        loads++;
        await new Promise((r) => setTimeout(r, 100));
        return `v${loads}`;
      };
      expect(await a?.getOrSet("swr", load)).toBe("v1");
      await waitUntil("the entry to go stale", async () => (await a?.get("swr")) === undefined, 5_000);
      const stale = await Promise.all([
        a?.getOrSet("swr", load),
        b?.getOrSet("swr", load),
        a?.getOrSet("swr", load),
        b?.getOrSet("swr", load),
      ]);
      expect(stale).toEqual(["v1", "v1", "v1", "v1"]);
      await waitUntil("the refresh", async () => (await b?.getOrSet("swr", load)) === "v2", 3_000);
      expect(loads).toBe(2);
    });

    it("an entry the codec cannot decode (another codec or app version wrote it) is a miss: getOrSet replaces it", async () => {
      const [old] = await replicas(1); // the default JSON codec
      const namespace = (old as Cache).namespace;
      const rec = recordObserver();
      const v2 = {
        encode: (v: unknown) => `v2:${JSON.stringify(v)}`,
        decode: (text: string) => {
          if (!text.startsWith("v2:")) throw new Error("not a v2 value");
          return JSON.parse(text.slice(3)) as unknown;
        },
      };
      const replica = (codec: typeof v2, observer = recordObserver()) => {
        const c = new Cache(client(), { namespace, prefix, ttlMs: 60_000, codec, observer });
        caches.push(c);
        return c;
      };
      const next = replica(v2, rec);
      const other = replica(v2);
      await Promise.all([next.ready(), other.ready()]);
      await old?.set("shape", { n: 1 });
      // get answers a miss instead of throwing the codec's error (on every read, until the entry expires).
      expect(await next.get("shape")).toBeUndefined();
      let loads = 0;
      const loader = () => {
        loads++;
        return { n: 2 };
      };
      expect(await next.getOrSet("shape", loader)).toEqual({ n: 2 });
      expect(loads).toBe(1);
      // Replaced in Redis: another replica reads the new value; the old codec now meets an entry it cannot read.
      expect(await other.get("shape")).toEqual({ n: 2 });
      // The old replica's L1 copy goes with the delete's invalidation; then it meets an entry it cannot read.
      await waitUntil("the old replica to drop its copy", async () => (await old?.get("shape")) === undefined, 2_000);
      const undecodable = rec.events.filter((e) => e.type === "undecodable");
      expect(undecodable).toHaveLength(2);
      expect(undecodable[0]).toMatchObject({ name: "shape", error: { message: "not a v2 value" } });
      // A value written after the undecodable one was read is kept, not deleted with it: here another writer
      // replaces it on the same connection (so before the drop reaches Redis) while the codec fails on the old one.
      const conn = client();
      const racing = new Cache(conn, {
        namespace,
        prefix,
        ttlMs: 60_000,
        codec: {
          encode: v2.encode,
          decode: (text: string) => {
            if (!text.startsWith("v2:")) {
              void conn.hset(`${prefix}:cache:{${namespace}:race}`, "v", 'v2:{"n":3}');
            }
            return v2.decode(text);
          },
        },
      });
      caches.push(racing);
      await racing.ready();
      await old?.set("race", { n: 1 });
      loads = 0;
      expect(await racing.getOrSet("race", loader)).toEqual({ n: 3 });
      expect(loads).toBe(0);
      expect(await other.get("race")).toEqual({ n: 3 });
      // A codec that cannot read what it wrote is a bug of the codec: a typed error, after one reload, not a loop.
      const broken = replica({
        encode: v2.encode,
        decode: () => {
          throw new Error("broken");
        },
      });
      await broken.ready();
      loads = 0;
      await expect(broken.getOrSet("broken", loader)).rejects.toMatchObject({
        code: "ERR_CACHE_DECODE",
        cause: { message: "broken" },
      });
      expect(loads).toBe(2);
    });

    it("clear() empties the namespace in Redis and every L1 (as a user granted the documented +scan +unlink)", async () => {
      const [a, b] = await replicas(2);
      const clearing = connect(await clearUserUrl(url(), adminUrl()));
      clients.push(clearing);
      const clearer = new Cache(clearing, { namespace: (a as Cache).namespace, prefix, ttlMs: 60_000 });
      caches.push(clearer);
      await clearer.ready();
      for (let i = 0; i < 20; i++) await a?.set(`c${i}`, i, { tags: ["t"] });
      expect(await b?.get("c3")).toBe(3);
      await clearer.clear();
      for (let i = 0; i < 20; i++) expect(await clearer.get(`c${i}`)).toBeUndefined();
      // The other replicas' L1 copies go with the clear's invalidation message.
      await waitUntil(
        "A and B to drop c3",
        async () => (await a?.get("c3")) === undefined && (await b?.get("c3")) === undefined,
        2_000,
      );
      for (let i = 0; i < 20; i++) expect(await a?.get(`c${i}`)).toBeUndefined();
    });
  });
}

suite(
  "standalone",
  () => inject("coordisRedisUrl"),
  () => inject("coordisAdminRedisUrl"),
);
suite(
  "cluster",
  () => inject("coordisClusterUrl"),
  () => inject("coordisAdminClusterUrl"),
);

describe("gap detection", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => redis.disconnect());

  it("a hole in a publisher's sequence drops L1 (a lost message never leaves a stale read behind)", async () => {
    const rec = recordObserver();
    const b = new Cache(connect(inject("coordisRedisUrl")), { namespace: "gap", prefix, ttlMs: 60_000, observer: rec });
    // A writer whose messages never arrive.
    const silent = connect(inject("coordisAdminRedisUrl"));
    const raw = new PubSub(redis, { prefix, [INTERNAL_CHANNEL_KIND]: BUS_CHANNEL_KIND }); // the bus' channels
    try {
      await b.ready();
      await writeUnannounced(silent, b, "k", "old");
      expect(await b.get("k")).toBe("old");
      await writeUnannounced(silent, b, "k", "new"); // the invalidation is "lost"
      expect(await b.get("k")).toBe("old"); // undetectable so far: bounded by l1.ttlMs only
      await raw.publish("gap", { p: "other", s: 1, k: "unrelated" });
      await raw.publish("gap", { p: "other", s: 3, k: "unrelated" }); // s = 2 went missing
      await waitUntil("the gap", () => b.stats().gaps === 1, 2_000);
      expect(await b.get("k")).toBe("new");
      expect(rec.events.some((e) => e.type === "gap" && e.attributes?.reason === "sequence-gap")).toBe(true);
    } finally {
      await raw.close();
      await b.close();
      silent.disconnect();
    }
  });

  it("a first message from an unknown publisher that does not start at 1 counts as a gap", async () => {
    const b = new Cache(connect(inject("coordisRedisUrl")), { namespace: "gap2", prefix, ttlMs: 60_000 });
    const raw = new PubSub(redis, { prefix, [INTERNAL_CHANNEL_KIND]: BUS_CHANNEL_KIND }); // the bus' channels
    try {
      await b.ready();
      await raw.publish("gap2", { p: "late", s: 5, k: "x" });
      await waitUntil("the gap", () => b.stats().gaps === 1, 2_000);
    } finally {
      await raw.close();
      await b.close();
    }
  });
});
