import { connect, InvalidArgumentError, type RedisClient, RedisUnavailableError } from "@coordis/core";
import {
  countCommands,
  type RedisServer,
  recordObserver,
  startRedis,
  testPrefix,
  waitUntil,
  withDeadline,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Cache, type CacheOptions, MAX_TAGS } from "../src/index.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix();

describe("Cache on its own server (faults, round trips, input checks)", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  let ns = 0;
  async function make(options: Partial<CacheOptions> = {}, commandTimeoutMs = 2_000) {
    const c = connect(server.url, { commandTimeoutMs });
    c.on("error", () => {});
    clients.push(c);
    const cache = new Cache(c, { namespace: `f${++ns}`, prefix, ttlMs: 60_000, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  }
  beforeAll(async () => {
    // The cache runs as the least-privilege user plus the documented optional `+config|get`, which its start-up
    // check of maxmemory-policy needs (without it the check is skipped: see the README's ACL section).
    server = await startRedis({
      config: { maxmemory: "100mb", "maxmemory-policy": "noeviction" },
      leastPrivilege: { extraRules: ["+config|get"] },
    });
  });
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    for (const c of clients) c.disconnect();
    await server.stop();
  });

  it("warns once when the cache's Redis is noeviction with maxmemory set, and not with allkeys-lru", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const rec = recordObserver();
      await make({ observer: rec });
      expect(rec.events.filter((e) => e.type === "eviction-policy")).toHaveLength(1);
      expect(warn).toHaveBeenCalledTimes(1);
      const admin = server.adminClient();
      await admin.config("SET", "maxmemory-policy", "allkeys-lru");
      const rec2 = recordObserver();
      await make({ observer: rec2 });
      expect(rec2.events.filter((e) => e.type === "eviction-policy")).toHaveLength(0);
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  it("round trips: L1 hit 0, L2 hit 1, miss 2 (read+lock, write+unlock) when nobody waits, set 2", async () => {
    const a = await make();
    const b = await make({}, 2_000);
    const other = new Cache(clients.at(-1) as RedisClient, { namespace: `f${ns - 1}`, prefix, ttlMs: 60_000 });
    caches.push(other);
    await other.ready();
    await a.getOrSet("warm-up", () => 0); // loads the scripts into the fresh server's script cache
    await b.set("warm-up-2", 0);
    const miss = await countCommands(server, () => a.getOrSet("rt", () => 1));
    expect(miss.sent).toEqual({ evalsha: 2 });
    const l1 = await countCommands(server, () => a.getOrSet("rt", () => 1));
    expect(l1.roundTrips).toBe(0);
    const l2 = await countCommands(server, () => other.getOrSet("rt", () => 1));
    expect(l2.roundTrips).toBe(1);
    const set = await countCommands(server, () => b.set("rt2", { x: 1 }));
    expect(set.sent).toEqual({ evalsha: 1, publish: 1 });
  });

  it("a load another replica waits for is published once, and the waiter gets its value; one nobody waits for is not", async () => {
    const holder = await make();
    const rec = recordObserver();
    const c = connect(server.url, { commandTimeoutMs: 2_000 });
    c.on("error", () => {});
    clients.push(c);
    const waiter = new Cache(c, { namespace: holder.namespace, prefix, ttlMs: 60_000, observer: rec });
    caches.push(waiter);
    await waiter.ready();
    const keyInvalidations = () =>
      rec.events.filter((e) => e.type === "invalidation" && e.attributes?.kind === "key").length;
    await holder.getOrSet("warm-up", () => 0);
    const solo = await countCommands(server, () => holder.getOrSet("solo", () => 1));
    expect(solo.sent).toEqual({ evalsha: 2 });
    let started!: () => void;
    const loading = new Promise<void>((r) => (started = r));
    let finish!: () => void;
    const gate = new Promise<void>((r) => (finish = r));
    const held = holder.getOrSet("shared", async () => {
      started();
      await gate;
      return 7;
    });
    await loading;
    const waited = waiter.getOrSet("shared", () => 8);
    const admin = server.adminClient();
    const entry = `${prefix}:cache:{${holder.namespace}:shared}`;
    await waitUntil("the waiter to mark the entry", async () => (await admin.hget(entry, "q")) === "1", 5_000);
    finish();
    expect(await held).toBe(7);
    expect(await waited).toBe(7);
    expect(await admin.hgetall(entry)).not.toHaveProperty("q");
    // The holder's messages arrive in the order it sent them: had "solo" been published, it would count here too.
    await waitUntil("the waiter to hear the load", () => keyInvalidations() >= 1, 5_000);
    expect(keyInvalidations()).toBe(1);
  });

  it("bad input is rejected with InvalidArgumentError naming the argument, before any Redis command", async () => {
    const a = await make();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const cases: Array<[string, () => Promise<unknown>]> = [
      ["key", () => a.getOrSet("", () => 1)],
      ["key", () => a.getOrSet("a{b}", () => 1)],
      ["key", () => a.get("x".repeat(600))],
      ["loader", () => a.getOrSet("k", "nope" as never)],
      ["options.ttlMs", () => a.getOrSet("k", () => 1, { ttlMs: 0 })],
      ["options.ttlMs", () => a.set("k", 1, { ttlMs: 1.5 })],
      ["options.staleMs", () => a.set("k", 1, { staleMs: -1 })],
      ["options.tags[1]", () => a.set("k", 1, { tags: ["ok", "{bad}"] })],
      ["options.tags", () => a.set("k", 1, { tags: "t" as never })],
      ["value", () => a.set("k", 10n)],
      ["value", () => a.set("k", [() => 1])], // JSON stores null in an array (as a property: left out)
      ["value", () => a.set("k", [Symbol("x")])],
      ["value", () => a.set("k", cyclic)],
      ["value", () => a.set("k", Number.NaN)],
      ["value", () => a.set("k", new Map())],
      ["value", () => a.set("k", undefined)],
      ["tag", () => a.invalidateTag("")],
    ];
    const { roundTrips } = await countCommands(server, async () => {
      for (const [argument, call] of cases) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, argument).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).argument).toBe(argument);
      }
    });
    expect(roundTrips).toBe(0);
    const bad: Array<[string, Partial<CacheOptions>]> = [
      ["options.namespace", { namespace: "a:b" }],
      ["options.namespace", { namespace: "" }],
      ["options.ttlMs", { ttlMs: -5 }],
      ["options.staleMs", { staleMs: Number.POSITIVE_INFINITY }],
      ["options.l1.maxEntries", { l1: { maxEntries: 0 } }],
      ["options.l1.ttlMs", { l1: { ttlMs: 0 } }],
      ["options.prefix", { prefix: "{x}" }],
      ["options.lock.ttlMs", { lock: { ttlMs: 0 } }],
      ["options.breaker.failures", { breaker: { failures: 0 } }],
    ];
    for (const [argument, opts] of bad) {
      expect(() => new Cache(clients[0] as RedisClient, { namespace: "ok", ttlMs: 1000, ...opts }), argument).toThrow(
        expect.objectContaining({ argument }),
      );
    }
    // A missing ttlMs says it is required, not that undefined is no duration.
    expect(() => new Cache(clients[0] as RedisClient, { namespace: "ok" } as CacheOptions)).toThrow(
      expect.objectContaining({ argument: "options.ttlMs", message: expect.stringMatching(/required/) }),
    );
    // Dates are accepted and come back as ISO strings (documented).
    await a.set("date", { at: new Date(0) });
    expect(await a.get("date")).toEqual({ at: "1970-01-01T00:00:00.000Z" });
  });

  it("the tag limit counts distinct tags: 40 copies of one tag are one tag, 33 distinct tags are refused untouched", async () => {
    const a = await make();
    await a.set("many-copies", "v", { tags: Array.from({ length: 40 }, () => "shop:1") });
    expect(await a.get("many-copies")).toBe("v");
    await a.invalidateTag("shop:1");
    expect(await a.get("many-copies")).toBeUndefined();
    const distinct = Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`);
    await a.set("kept", "old");
    const err = await a.set("kept", "new", { tags: distinct }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe("options.tags");
    expect((err as Error).message).toContain(`${MAX_TAGS} distinct tags (got ${MAX_TAGS + 1})`);
    expect(await a.get("kept")).toBe("old");
    const huge = await a.set("kept", "new", { tags: Array.from({ length: 10_000 }, () => "x") }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(huge).toBeInstanceOf(InvalidArgumentError);
    expect(await a.get("kept")).toBe("old");
  });

  it("an unknown option key (a typo) is an InvalidArgumentError naming it: nothing is sent, no loader runs", async () => {
    const a = await make();
    const client = clients[0] as RedisClient;
    let loads = 0;
    const loader = () => {
      loads++;
      return 1;
    };
    const calls: Array<[string, () => unknown]> = [
      ["options.ttl", () => new Cache(client, { namespace: "typo", ttl: 1000 } as never)],
      ["options.namespce", () => new Cache(client, { namespce: "typo", ttlMs: 1000 } as never)],
      ["options.prefx", () => new Cache(client, { namespace: "typo", ttlMs: 1000, prefx: "app" } as never)],
      ["options.l1.maxEntires", () => new Cache(client, { namespace: "t", ttlMs: 1, l1: { maxEntires: 5 } } as never)],
      ["options.lock.wait", () => new Cache(client, { namespace: "t", ttlMs: 1, lock: { wait: 5 } } as never)],
      [
        "options.breaker.cooldown",
        () => new Cache(client, { namespace: "t", ttlMs: 1, breaker: { cooldown: 5 } } as never),
      ],
      ["options.ttl", () => a.set("k", 1, { ttl: 1000 } as never)],
      ["options.tag", () => a.getOrSet("k", loader, { tag: ["x"] } as never)],
      ["options.stale", () => a.getOrSet("k", loader, { stale: 10 } as never)],
    ];
    const { roundTrips } = await countCommands(server, async () => {
      for (const [argument, call] of calls) {
        const err = await Promise.resolve()
          .then(call)
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err, argument).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).argument).toBe(argument);
        expect((err as Error).message).toContain("unknown option (known: ");
      }
    });
    expect(roundTrips).toBe(0);
    expect(loads).toBe(0);
  });

  it("B's subscriber is killed while A changes a key: B never serves the old value afterwards", async () => {
    const a = await make();
    const rec = recordObserver();
    const b = await make({ observer: rec });
    // Same namespace for A and B: re-create B on A's namespace.
    const bb = new Cache(clients.at(-1) as RedisClient, {
      namespace: a.namespace,
      prefix,
      ttlMs: 60_000,
      observer: rec,
    });
    caches.push(bb);
    await bb.ready();
    await b.close();
    let oracle = 1;
    await a.set("k", oracle);
    // The invalidation of A's set may reach B just after B's first read: read until B's L1 holds the value.
    await waitUntil("an L1 hit", async () => (await bb.get("k")) === 1 && tiers(rec).at(-1) === "l1/hit", 2_000);
    for (let round = 0; round < 3; round++) {
      const gaps = bb.stats().gaps;
      const admin = server.adminClient();
      await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
      await waitUntil("B to notice the lost subscriber", () => bb.stats().gaps > gaps, 2_000);
      await a.set("k", ++oracle); // B may or may not receive this message
      // From now on every read of B returns the oracle's value: through L2 while unsubscribed, and from a flushed
      // L1 once resubscribed.
      const deadline = performance.now() + 600;
      while (performance.now() < deadline) {
        expect(await bb.get("k")).toBe(oracle);
        await new Promise((r) => setTimeout(r, 5));
      }
      await waitUntil("B to resubscribe", () => bb.stats().busHealthy, 5_000);
      expect(await bb.get("k")).toBe(oracle);
    }
    expect(rec.events.some((e) => e.type === "gap" && e.attributes?.reason === "disconnected")).toBe(true);
    expect(rec.events.some((e) => e.type === "gap" && e.attributes?.reason === "resubscribed")).toBe(true);
    // L1 is used again after the resubscription.
    await waitUntil("an L1 hit", async () => (await bb.get("k")) === oracle && tiers(rec).at(-1) === "l1/hit", 2_000);
  });

  it("a delete during a load is not undone when the load's write reaches Redis after a stall longer than lock.ttlMs", async () => {
    const a = await make({ lock: { ttlMs: 300 }, checkEvictionPolicy: false });
    const fresh = await make({ namespace: a.namespace, l1: false, lock: { ttlMs: 300 }, checkEvictionPolicy: false });
    const value = a.getOrSet("undone", async () => {
      await fresh.delete("undone"); // the key changes while the load runs
      await new Promise((r) => setTimeout(r, 20));
      // Redis stalls for longer than lock.ttlMs while the load's write is on its way.
      server.pause();
      setTimeout(() => server.resume(), 450);
      return "loaded before the delete";
    });
    try {
      expect(await value).toBe("loaded before the delete"); // the caller still gets its load...
    } finally {
      if (server.paused) server.resume();
    }
    // ...but Redis keeps the delete: a replica without L1 does not read the older value.
    expect(await fresh.get("undone")).toBeUndefined();
  });

  it("with the circuit open, set, delete, invalidateTag and clear fail at once: nothing is sent, not even the announcement", async () => {
    const a = await make({ breaker: { failures: 1, cooldownMs: 60_000 } }, 1_000);
    const calls: Array<[string, () => Promise<unknown>]> = [
      ["set", () => a.set("x", 2)],
      ["delete", () => a.delete("x")],
      ["invalidateTag", () => a.invalidateTag("t")],
      ["clear", () => a.clear()],
    ];
    await a.set("before", 1);
    server.pause();
    try {
      await expect(a.set("opens", 1)).rejects.toBeInstanceOf(RedisUnavailableError);
      expect(a.stats().circuit).toBe("open");
      // Well under the 1 s command timeout each would wait for (the announcement goes through pub/sub).
      for (const [what, call] of calls) {
        await expect(withDeadline(call(), 500, what), what).rejects.toBeInstanceOf(RedisUnavailableError);
      }
    } finally {
      server.resume();
    }
    // Redis answers again, the circuit is still open: the calls still send nothing, so another replica is told
    // nothing and keeps its L1. A third replica's announcement, published after them, arrives after anything they
    // would have published (one channel, one Redis): once it is there, theirs would have been too.
    const rec = recordObserver();
    const b = await make({ namespace: a.namespace, observer: rec });
    const c = await make({ namespace: a.namespace });
    await b.set("kept", 1);
    for (const [what, call] of calls) {
      await expect(call(), what).rejects.toBeInstanceOf(RedisUnavailableError);
    }
    await c.delete("marker");
    await rec.waitForEvent((e) => e.type === "invalidation", {
      what: "the third replica's invalidation",
      timeoutMs: 5_000,
    });
    expect(rec.events.filter((e) => e.type === "invalidation").map((e) => e.attributes?.kind)).toEqual(["key"]);
    expect(rec.events.filter((e) => e.type === "gap")).toEqual([]);
    expect(b.stats().l1Entries).toBe(1);
  });

  it("Redis killed: getOrSet answers via the loader, the breaker limits Redis calls, recovery after restart", async () => {
    const rec = recordObserver();
    const a = await make({ observer: rec, breaker: { failures: 2, cooldownMs: 400 } }, 200);
    expect(await a.getOrSet("warm", () => "w")).toBe("w");
    await server.kill();
    // Losing Redis also loses the invalidation bus: a gap. L1 entries from before it are dropped (another replica
    // may have changed them meanwhile), so the loader answers; what it loads is kept in L1 for l1.ttlMs, so the
    // loader is not called again for every request while Redis is down.
    await rec.waitForEvent((e) => e.type === "gap", { what: "the gap to be detected", timeoutMs: 5_000 });
    expect(await a.getOrSet("warm", () => "other")).toBe("other");
    expect(await a.getOrSet("warm", () => "third")).toBe("other");
    const before = a.stats().redisCalls;
    const started = performance.now();
    let loads = 0;
    for (let i = 0; i < 60; i++) {
      expect(
        await a.getOrSet(`cold-${i}`, () => {
          loads++;
          return i;
        }),
      ).toBe(i);
    }
    const elapsed = performance.now() - started;
    const calls = a.stats().redisCalls - before;
    expect(loads).toBe(60);
    // Without the breaker: 60 calls, each paying the 200 ms timeout (12 s). With it: a few probes per cooldown.
    expect(calls).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 400) + 1);
    expect(a.stats().shortCircuited).toBeGreaterThan(40);
    expect(a.stats().circuit).not.toBe("closed");
    expect(rec.events.some((e) => e.type === "degraded")).toBe(true);
    await server.restart();
    await waitUntil(
      "the circuit to close",
      async () => {
        await a.getOrSet(`probe-${performance.now()}`, () => 1);
        return a.stats().circuit === "closed";
      },
      10_000,
    );
    expect(rec.events.some((e) => e.type === "recovered")).toBe(true);
    await a.set("after", "back");
    const fresh = await make({ l1: false });
    const again = new Cache(clients.at(-1) as RedisClient, { namespace: a.namespace, prefix, ttlMs: 60_000 });
    caches.push(again);
    expect(await again.get("after")).toBe("back");
    expect(fresh).toBeDefined();
  });
});
