import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { LRUCache } from "lru-cache";
import { afterAll, describe, expect, inject, it, vi } from "vitest";
import { Cache, type CacheOptions } from "../src/index.js";

const prefix = testPrefix();

describe("Cache L1 bounds and coherence under adversarial input", () => {
  const clients = sharedClients();
  const caches: Cache[] = [];
  let ns = 0;
  async function replicas(n: number, options: Partial<CacheOptions> = {}) {
    const namespace = `review4-${++ns}`;
    const made = Array.from(
      { length: n },
      () => new Cache(clients.redis, { namespace, prefix, ttlMs: 60_000, checkEvictionPolicy: false, ...options }),
    );
    caches.push(...made);
    await Promise.all(made.map((c) => c.ready()));
    return made as [Cache, ...Cache[]];
  }
  const connections: RedisClient[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    for (const c of connections) c.disconnect();
  });

  it("l1.maxBytes counts an entry's tags: entries with tiny values and many long tags cannot outgrow it", async () => {
    const maxBytes = 20_000;
    const [a] = await replicas(1, { l1: { maxBytes, maxEntries: 1_000 } });
    // 32 tags of 250 characters: about 8 kB of tag text per entry, for a one-character value.
    const tags = (i: number) =>
      Array.from({ length: 32 }, (_, t) => `${String(i).padStart(3, "0")}-${t}-`.padEnd(250, "x"));
    const tagChars = 32 * 250;
    for (let i = 0; i < 50; i++) await a.set(`k${i}`, 1, { tags: tags(i) });
    // L1 keeps what maxBytes allows: what it holds of the tags alone stays within it.
    expect(a.stats().l1Entries).toBeGreaterThan(0);
    expect(a.stats().l1Entries * tagChars).toBeLessThanOrEqual(maxBytes);
    // The same through reads of what Redis holds (entries read from L2 carry their tags too).
    const [writer, reader] = (await replicas(2, { l1: { maxBytes, maxEntries: 1_000 } })) as [Cache, Cache];
    for (let i = 0; i < 50; i++) await writer.set(`r${i}`, 1, { tags: tags(i) });
    for (let i = 0; i < 50; i++) expect(await reader.get(`r${i}`)).toBe(1);
    expect(reader.stats().l1Entries * tagChars).toBeLessThanOrEqual(maxBytes);
  });

  it("a tag invalidation evicts the tagged entries without walking the whole L1 (each replica hears every one)", async () => {
    const [a, b] = (await replicas(2, { l1: { maxEntries: 10_000, ttlMs: 60_000 } })) as [Cache, Cache];
    for (let i = 0; i < 2_000; i++) await a.set(`plain${i}`, i); // one at a time: each set bumps L1's epoch
    await a.set("tagged", 1, { tags: ["t"] });
    await a.set("other", 2, { tags: ["u"] });
    expect(a.stats().l1Entries).toBe(2_002);
    const walks = [vi.spyOn(LRUCache.prototype, "entries"), vi.spyOn(LRUCache.prototype, "forEach")];
    try {
      await b.invalidateTag("t"); // heard by A over the bus
      await a.invalidateTag("u"); // A's own
      await waitUntil("A to evict the entry tagged t", () => a.stats().l1Entries === 2_000, 2_000);
      for (const walk of walks) expect(walk).not.toHaveBeenCalled();
    } finally {
      for (const walk of walks) walk.mockRestore();
    }
    expect(await a.get("tagged")).toBeUndefined();
    expect(await a.get("plain7")).toBe(7);
  });

  it("an instance without the bus (a writer-only worker) still announces its changes: no replica keeps the old value", async () => {
    // The reader keeps what it reads for a minute: only an invalidation can make it drop the old value.
    const [reader] = await replicas(1, { l1: { ttlMs: 60_000 } });
    const namespace = reader.namespace;
    const writer = new Cache(clients.redis, { namespace, prefix, ttlMs: 60_000, l1: false, bus: false });
    caches.push(writer);
    await writer.set("k", "old");
    await writer.set("gone", "old");
    await writer.set("tagged", "old", { tags: ["t"] });
    // The announcements of these first writes may reach the reader just after its first reads: read until its L1
    // holds all three.
    await waitUntil(
      "the reader's L1 to hold the three entries",
      async () => {
        for (const k of ["k", "gone", "tagged"]) expect(await reader.get(k)).toBe("old");
        return reader.stats().l1Entries === 3;
      },
      2_000,
    );
    await writer.set("k", "new");
    await writer.delete("gone");
    await writer.invalidateTag("t");
    await waitUntil(
      "the reader to drop what it held",
      async () =>
        (await reader.get("k")) === "new" &&
        (await reader.get("gone")) === undefined &&
        (await reader.get("tagged")) === undefined,
      2_000,
    );
  });

  it("a value JSON would store as something else, or cannot store at all: typed error, nothing sent, nothing lost", async () => {
    const [a, b] = (await replicas(2)) as [Cache, Cache];
    await a.set("v", "good");
    await waitUntil("B's L1 to hold v", async () => (await b.get("v")) === "good" && b.stats().l1Entries === 1, 2_000);
    let deep: Record<string, unknown> = {};
    const nested = deep;
    for (let i = 0; i < 100_000; i++) deep = deep.a = {};
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: Array<[string, unknown]> = [
      ["nested 100,000 deep", nested],
      ["a cycle", cyclic],
      ["a BigInt", 1n],
      [
        "a throwing toJSON",
        {
          toJSON: () => {
            throw new Error("boom");
          },
        },
      ],
      [
        "a throwing getter",
        {
          get x() {
            throw new Error("getter");
          },
        },
      ],
      [
        "a Proxy that throws",
        new Proxy(
          {},
          {
            ownKeys: () => {
              throw new Error("proxy");
            },
          },
        ),
      ],
      ["undefined", undefined],
      ["NaN", Number.NaN],
      ["a Map", new Map([[1, 2]])],
    ];
    for (const [what, value] of bad) {
      const calls = a.stats().redisCalls;
      await expect(a.set("v", value), what).rejects.toMatchObject({
        constructor: InvalidArgumentError,
        argument: "value",
      });
      expect(a.stats().redisCalls, `${what}: nothing sent`).toBe(calls);
      await expect(
        a.getOrSet(`loaded`, () => value),
        what,
      ).rejects.toMatchObject({
        constructor: InvalidArgumentError,
        argument: "loader result",
      });
    }
    // Nothing lost: the old value stays in Redis and in B's L1; no load left a lock or an entry behind.
    expect(await a.get("v")).toBe("good");
    expect(await b.get("v")).toBe("good");
    expect(await clients.admin.exists(`${prefix}:cache:{${a.namespace}:loaded}`)).toBe(0);
    expect(await clients.admin.exists(`${prefix}:cache:{${a.namespace}:loaded}:lock`)).toBe(0);
  });

  /**
   * Three replicas on their own connections; loads (reading a "database" with a random delay) run concurrently with
   * set, delete and "database change + invalidateTag" made one at a time (as a write-through application does). After
   * each change, once every replica has heard of it, no replica reads anything but the database's value or nothing;
   * at the end every replica's getOrSet converges on it. Fails if a load that read the database before a change writes
   * its value over it (in Redis or in an L1).
   */
  async function fuzz(seed: number, options: Partial<CacheOptions>): Promise<string[]> {
    let state = seed;
    const rnd = () => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state / 0x7fffffff;
    };
    const namespace = `review4-fuzz-${++ns}`;
    const heard = [0, 0, 0];
    const reps = heard.map((_, i) => {
      const redis = connect(inject("coordisRedisUrl"));
      connections.push(redis);
      const observer = {
        onEvent: (e: { type: string; attributes?: Record<string, unknown> }) => {
          if (e.type === "invalidation" && e.attributes?.kind === "tag") heard[i] = (heard[i] ?? 0) + 1;
        },
      };
      const base = { namespace, prefix, ttlMs: 60_000, staleMs: 60_000, checkEvictionPolicy: false };
      return new Cache(redis, { ...base, l1: { ttlMs: 60_000 }, observer, ...options });
    });
    caches.push(...reps);
    await Promise.all(reps.map((c) => c.ready()));
    const db = new Map<string, number>();
    let version = 0;
    const keys = ["a", "b"];
    const wrong: string[] = [];
    const pending: Promise<unknown>[] = [];
    let changes: Promise<unknown> = Promise.resolve();
    const change = (writer: Cache, fn: () => Promise<unknown>, tag: boolean) => {
      const step = async () => {
        const before = [...heard];
        await fn();
        // A tag invalidation of its own after the change: once a replica heard it, it heard the change too.
        await writer.invalidateTag("sync");
        const w = reps.indexOf(writer);
        const expected = (i: number) => (before[i] ?? 0) + (tag ? 2 : 1);
        await waitUntil(
          "every replica to hear of the change",
          () => heard.every((n, i) => i === w || n >= expected(i)),
          { timeoutMs: 2_000, intervalMs: 1 },
        );
        for (const k of keys) {
          for (const [i, r] of reps.entries()) {
            const got = await r.get(k);
            if (got !== undefined && got !== (db.get(k) ?? 0))
              wrong.push(`${k}: replica ${i} read ${got}, db ${db.get(k)}`);
          }
        }
      };
      changes = changes.then(step);
      pending.push(changes);
    };
    for (let i = 0; i < 300; i++) {
      const r = reps[Math.floor(rnd() * 3)] as Cache;
      const k = keys[Math.floor(rnd() * keys.length)] as string;
      const x = rnd();
      const delay = Math.floor(rnd() * 5);
      const tags = [`t-${k}`];
      const load = async () => {
        const v = db.get(k) ?? 0;
        await new Promise((resolve) => setTimeout(resolve, delay));
        return v;
      };
      if (x < 0.55) pending.push(r.getOrSet(k, load, { tags }));
      else if (x < 0.8)
        change(
          r,
          () => {
            db.set(k, ++version);
            return r.set(k, version, { tags });
          },
          false,
        );
      else if (x < 0.9)
        change(
          r,
          () => {
            db.delete(k);
            return r.delete(k);
          },
          false,
        );
      else
        change(
          r,
          () => {
            db.set(k, ++version);
            return r.invalidateTag(`t-${k}`);
          },
          true,
        );
      // Let some of them overlap, others not.
      if (rnd() < 0.3) await new Promise((resolve) => setTimeout(resolve, Math.floor(rnd() * 3)));
    }
    await Promise.all(pending);
    for (const k of keys) {
      const latest = () => db.get(k) ?? 0;
      await waitUntil(
        `every replica to converge on ${k}`,
        async () => {
          const got = await Promise.all(reps.map((r) => r.getOrSet(k, latest, { tags: [`t-${k}`] })));
          return got.every((g) => g === latest());
        },
        3_000,
      );
    }
    return wrong;
  }

  it("set, delete and tag invalidations racing loads on three replicas (fuzzed): no replica reads an overwritten value", async () => {
    for (const seed of [1, 2, 3, 4, 5]) expect(await fuzz(seed, {}), `seed ${seed}`).toEqual([]);
    // Entries stale within 3 ms (background refreshes) and fill locks that expire mid-load.
    for (const seed of [6, 7, 8, 9, 10]) {
      expect(await fuzz(seed, { ttlMs: 3, lock: { ttlMs: 4, waitMs: 50 } }), `seed ${seed}`).toEqual([]);
    }
  });
});
