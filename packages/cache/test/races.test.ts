import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache, type CacheOptions } from "../src/index.js";

const prefix = testPrefix();

describe("Cache replicas racing on one key", () => {
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  let ns = 0;
  const client = () => {
    const c = connect(inject("coordisRedisUrl"));
    clients.push(c);
    return c;
  };
  /** `n` instances of one namespace, each on its own connection: n replicas. */
  async function replicas(n: number, options: Partial<CacheOptions> = {}) {
    const namespace = `races${++ns}`;
    const made = Array.from({ length: n }, () => new Cache(client(), { namespace, prefix, ttlMs: 60_000, ...options }));
    caches.push(...made);
    await Promise.all(made.map((c) => c.ready()));
    return made as [Cache, ...Cache[]];
  }
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    for (const c of clients) c.disconnect();
  });

  it("a set or delete in flight when its replica closes still evicts the old value from the other replicas' L1", async () => {
    // A long L1 lifetime: without the invalidation, B would serve the old value for a minute.
    const [a, b] = (await replicas(2, { l1: { ttlMs: 60_000 } })) as [Cache, Cache];
    await a.set("set-then-close", "old");
    await a.set("delete-then-close", "old");
    // The invalidations of A's sets may reach B just after B's first reads: read until B's L1 holds both.
    await waitUntil(
      "B's L1 to hold both",
      async () =>
        (await b.get("set-then-close")) === "old" &&
        (await b.get("delete-then-close")) === "old" &&
        b.stats().l1Entries === 2,
      2_000,
    );
    // Shutdown while a request is still writing: the call resolves, its change is in Redis...
    const writing = a.set("set-then-close", "new");
    const deleting = a.delete("delete-then-close");
    await a.close();
    await writing;
    expect(await deleting).toBe(true);
    // ...and every other replica stops serving the old value within the pub/sub bound.
    await waitUntil(
      "B to see the set and the delete",
      async () => (await b.get("set-then-close")) === "new" && (await b.get("delete-then-close")) === undefined,
      2_000,
    );
  });

  it("a loader that throws, or returns what cannot be encoded: typed error, nothing cached, the waiting replica takes over", async () => {
    const rec = recordObserver();
    // waitMs far beyond the test: the waiter may only get the key by taking the released lock, not by giving up.
    const [holder, waiter] = (await replicas(2, { lock: { ttlMs: 120_000, waitMs: 120_000 }, observer: rec })) as [
      Cache,
      Cache,
    ];
    const raw = client();
    const failures: Array<[string, () => unknown, (e: unknown) => void]> = [
      [
        "throws",
        () => {
          throw new Error("db down");
        },
        (e) => expect((e as Error).message).toBe("db down"),
      ],
      ["unencodable", () => ({ id: 10n }), (e) => expect(e).toMatchObject({ argument: "loader result" })],
    ];
    for (const [key, result, check] of failures) {
      let entered!: () => void;
      const loading = new Promise<void>((r) => (entered = r));
      let fail!: () => void;
      const gate = new Promise<void>((r) => (fail = r));
      const held = Array.from({ length: 3 }, () =>
        holder.getOrSet(key, async () => {
          entered();
          await gate;
          return result();
        }),
      );
      await loading; // the holder has the fill lock
      let waiterLoads = 0;
      const waited = waiter.getOrSet(key, () => {
        waiterLoads++;
        return `${key}: loaded by the waiter`;
      });
      // Two Redis calls: the first read found the lock held (else the waiter would have loaded), the second polls.
      const calls = waiter.stats().redisCalls;
      await waitUntil("the waiter to poll the held lock", () => waiter.stats().redisCalls >= calls + 2, 2_000);
      expect(waiterLoads).toBe(0);
      fail();
      for (const p of held) {
        const err = await p.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeDefined();
        check(err);
        if (key === "unencodable") expect(err).toBeInstanceOf(InvalidArgumentError);
      }
      expect(await waited).toBe(`${key}: loaded by the waiter`);
      expect(waiterLoads).toBe(1);
      expect(holder.stats().loads).toBe(key === "throws" ? 1 : 2); // one shared load per failure, never retried
      expect(await holder.get(key)).toBe(`${key}: loaded by the waiter`);
    }
    expect(rec.events.filter((e) => e.type === "lock-wait-timeout")).toHaveLength(0);
    // Nothing of the failed loads is left in Redis: the entries hold the waiter's values, no fill lock remains.
    for (const [key] of failures) {
      const entry = `${prefix}:cache:{${holder.namespace}:${key}}`;
      expect(await raw.hget(entry, "v")).toBe(JSON.stringify(`${key}: loaded by the waiter`));
      expect(await raw.exists(`${entry}:lock`)).toBe(0);
    }
  });

  it("a loader slower than lock.ttlMs: a waiting replica takes the expired lock and loads; the slow result is not written", async () => {
    const rec = recordObserver();
    const [slow, waiter, reader] = (await replicas(3, {
      l1: false,
      lock: { ttlMs: 300, waitMs: 60_000 },
      observer: rec,
    })) as [Cache, Cache, Cache];
    let entered!: () => void;
    const loading = new Promise<void>((r) => (entered = r));
    let tookOver!: () => void;
    const takeover = new Promise<void>((r) => (tookOver = r));
    const late = slow.getOrSet("slow", async () => {
      entered();
      await takeover; // still loading when the other replica has loaded and written
      return "late";
    });
    await loading;
    const fresh = waiter.getOrSet("slow", () => {
      tookOver();
      return "fresh";
    });
    expect(await fresh).toBe("fresh");
    expect(await late).toBe("late"); // the slow caller gets its own load...
    // ...but Redis keeps the value of the load that held the lock when it wrote.
    expect(await reader.get("slow")).toBe("fresh");
    expect(rec.events.filter((e) => e.type === "lock-wait-timeout")).toHaveLength(0);
    expect(slow.stats().loads + waiter.stats().loads).toBe(2);
  });

  it("concurrent set and delete of one key from three replicas: every replica ends on what Redis holds", async () => {
    const all = await replicas(3, { l1: { ttlMs: 60_000 } });
    const raw = client();
    const entry = `${prefix}:cache:{${all[0].namespace}:hot}`;
    for (let round = 0; round < 20; round++) {
      // Every replica reads the key into its L1 (or learns it is missing), then all of them write at once.
      await Promise.all(all.map((c) => c.get("hot")));
      await Promise.all(
        all.flatMap((c, i) => [
          round % 3 === i ? c.delete("hot") : c.set("hot", `r${round}-c${i}-a`),
          c.set("hot", `r${round}-c${i}-b`),
          i === round % 3 ? c.getOrSet("hot", () => `r${round}-c${i}-loaded`) : c.get("hot"),
        ]),
      );
      const stored = await raw.hget(entry, "v");
      const expected = stored === null ? undefined : JSON.parse(stored);
      await waitUntil(
        `round ${round}: every replica to serve ${String(expected)}`,
        async () => (await Promise.all(all.map((c) => c.get("hot")))).every((v) => v === expected),
        2_000,
      );
    }
  });
  it("the replica that changes a key does not keep serving what one of its reads in flight found before the change", async () => {
    const [a, b] = (await replicas(2, { l1: { ttlMs: 60_000 } })) as [Cache, Cache];
    // What Redis holds: a replica of the same namespace without L1.
    const truth = new Cache(client(), { namespace: a.namespace, prefix, ttlMs: 60_000, l1: false });
    caches.push(truth);
    for (let i = 0; i < 10; i++) {
      const k = `in-flight-${i}`;
      await b.set(k, "old", { tags: ["t"] });
      // A tagged set reads the tag's version first: A's read below goes out before the write and is answered with
      // the old value, its tag check after the write's answer.
      const changed = a.set(k, "new", { tags: ["t"] });
      await new Promise((resolve) => setImmediate(resolve));
      await Promise.all([changed, a.get(k)]);
      expect(await a.get(k), `round ${i}`).toBe("new");
    }
    // Two changes of one key at once on one replica: its L1 ends with what Redis ends with.
    for (let i = 0; i < 5; i++) {
      const k = `two-sets-${i}`;
      await Promise.all([a.set(k, "with-tag", { tags: ["t"] }), a.set(k, "no-tag")]);
      expect(await a.get(k), `round ${i}`).toBe(await truth.get(k));
    }
  });

  it("clear(): reads during its walk leave nothing behind in the replica's L1", async () => {
    // clear() walks the keys with SCAN, outside the least-privilege rules.
    const admin = connect(inject("coordisAdminRedisUrl"));
    clients.push(admin);
    const a = new Cache(admin, { namespace: `races-clear${++ns}`, prefix, ttlMs: 60_000, l1: { ttlMs: 60_000 } });
    caches.push(a);
    const keys = Array.from({ length: 300 }, (_, i) => `clear-${i}`);
    for (const k of keys) await a.set(k, k);
    await a.clear(); // L1 empty: every read below goes to Redis
    for (const k of keys) await a.set(k, k);
    const cleared = a.clear();
    let reading = true;
    const readers = (async () => {
      while (reading) {
        await Promise.all(keys.slice(0, 50).map((k) => a.get(k)));
        await new Promise((resolve) => setImmediate(resolve)); // L1 hits answer without I/O: let the walk go on
      }
    })();
    await cleared;
    reading = false;
    await readers;
    const left = (await Promise.all(keys.map((k) => a.get(k)))).filter((v) => v !== undefined);
    expect(left).toEqual([]);
  });
});

describe("Cache with lock.waitMs 0 (callers never wait for another replica's load)", () => {
  it("a stale entry served while another replica refreshes it does not collect a fill token per read", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    const admin = connect(inject("coordisAdminRedisUrl")); // HKEYS is outside the cache's ACL rules
    const options = { namespace: "races-nowait", prefix, ttlMs: 1, staleMs: 60_000, l1: false as const };
    const refresher = new Cache(redis, { ...options, lock: { waitMs: 0 } });
    const readerRedis = connect(inject("coordisRedisUrl"));
    const reader = new Cache(readerRedis, { ...options, lock: { waitMs: 0 } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    try {
      await Promise.all([refresher.ready(), reader.ready()]);
      await refresher.set("hot", "v1");
      await waitUntil("the entry to go stale", async () => (await refresher.get("hot")) === undefined, 2_000);
      let refreshing!: () => void;
      const started = new Promise<void>((r) => (refreshing = r));
      // The refresher takes the fill lock and hangs in its loader.
      expect(
        await refresher.getOrSet("hot", async () => {
          refreshing();
          await gate;
          return "v2";
        }),
      ).toBe("v1");
      await started;
      for (let i = 0; i < 50; i++) expect(await reader.getOrSet("hot", () => "never")).toBe("v1");
      // The entry holds its value, deadlines and tags: no field per stale read (they were never cleaned up).
      const fields = await admin.hkeys(`${prefix}:cache:{races-nowait:hot}`);
      expect(fields.sort()).toEqual(["f", "s", "t", "v"]);
    } finally {
      release();
      await Promise.all([refresher.close(), reader.close()]);
      redis.disconnect();
      readerRedis.disconnect();
      admin.disconnect();
    }
  });
});

describe("Cache background refresh", () => {
  it("a stale read that takes the fill lock while this replica is still refreshing the key gives the lock back", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    const admin = connect(inject("coordisAdminRedisUrl"));
    const options = { namespace: "races-refresh", prefix, ttlMs: 1, staleMs: 60_000, l1: false as const };
    const cache = new Cache(redis, { ...options, lock: { ttlMs: 60_000, waitMs: 0 } });
    const lockKey = `${prefix}:cache:{races-refresh:hot}:lock`;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    try {
      await cache.ready();
      await cache.set("hot", "v1");
      await waitUntil("the entry to go stale", async () => (await cache.get("hot")) === undefined, 2_000);
      let refreshing!: () => void;
      const started = new Promise<void>((r) => (refreshing = r));
      // The first stale read takes the fill lock and refreshes in the background; its loader hangs.
      const slowLoader = async () => {
        refreshing();
        await gate;
        return "v2";
      };
      expect(await cache.getOrSet("hot", slowLoader)).toBe("v1");
      await started;
      // Its lock ends (as it would after lock.ttlMs with a loader that slow); the next stale read takes a new one,
      // but this replica is already refreshing the key and starts no second load: the new lock must not stay held
      // (it would keep every other replica from refreshing the key for lock.ttlMs).
      expect(await admin.del(lockKey)).toBe(1);
      expect(await cache.getOrSet("hot", () => "never")).toBe("v1");
      await waitUntil("the second lock to be given back", async () => (await admin.exists(lockKey)) === 0, 2_000);
      // Another replica can take the lock now.
      expect(await admin.set(lockKey, "other", "PX", 60_000, "NX")).toBe("OK");
    } finally {
      release();
      await cache.close();
      redis.disconnect();
      admin.disconnect();
    }
  });
});

describe("Cache with values larger than a replica's L1 (l1.maxBytes)", () => {
  it("a value too large for L1 replaces the smaller one there and is served from Redis, loaded once", async () => {
    const options = { namespace: "races-huge", prefix, ttlMs: 60_000 };
    const clients = [connect(inject("coordisRedisUrl")), connect(inject("coordisRedisUrl"))] as const;
    const a = new Cache(clients[0], options);
    const b = new Cache(clients[1], { ...options, l1: { maxBytes: 1_000_000 } });
    const huge = (tag: string) => `${tag}:${"x".repeat(4_000_000)}`;
    try {
      await Promise.all([a.ready(), b.ready()]);
      await a.set("blob", "small");
      await waitUntil(
        "B's L1 to hold the small value",
        async () => {
          return (await b.get("blob")) === "small" && b.stats().l1Entries === 1;
        },
        2_000,
      );
      await a.set("blob", huge("set"));
      await waitUntil("B to read the large value", async () => (await b.get("blob")) === huge("set"), 2_000);
      // B never falls back to the small value: it is not in L1 any more, and the large one does not fit there.
      for (let i = 0; i < 5; i++) expect(await b.get("blob")).toBe(huge("set"));
      expect(b.stats().l1Entries).toBe(0);
      let loads = 0;
      const loader = () => {
        loads++;
        return huge("loaded");
      };
      const first = await Promise.all([b.getOrSet("blob-2", loader), b.getOrSet("blob-2", loader)]);
      expect(first).toEqual([huge("loaded"), huge("loaded")]);
      expect(await b.getOrSet("blob-2", loader)).toBe(huge("loaded")); // from Redis: L1 cannot hold it
      expect(await a.getOrSet("blob-2", loader)).toBe(huge("loaded"));
      expect(loads).toBe(1);
      expect(b.stats().l1Entries).toBe(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
      for (const c of clients) c.disconnect();
    }
  });
});
