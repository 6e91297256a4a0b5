import {
  assertSafeClient,
  clientSafetyProblems,
  connect,
  InvalidArgumentError,
  type RedisClient,
  safeClusterOptions,
  safeRedisOptions,
} from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { type FaultProxy, startProxy, testPrefix, waitUntil } from "@coordis/testing";
import fastifyRateLimit from "@fastify/rate-limit";
import Fastify from "fastify";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-traps");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

let n = 0;
const freshPrefix = () => `${prefix}-${n++}`;

describe("safe defaults", () => {
  it("routes without a group have their own budgets, with the same rules or unnamed ones", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: shared,
      prefix: freshPrefix(),
      rateLimit: { rules: [{ name: "m", limit: 2, windowMs: 60_000 }] },
    });
    app.get("/a", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    app.get("/b", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    app.post(
      "/login",
      { config: { coordis: { rateLimit: { rules: [{ limit: 2, windowMs: 60_000 }] } } } },
      async () => "ok",
    );
    app.get(
      "/feed",
      { config: { coordis: { rateLimit: { rules: [{ limit: 100, windowMs: 60_000 }] } } } },
      async () => "ok",
    );
    try {
      // Same default rules on two routes: two budgets.
      for (let i = 0; i < 2; i++) expect((await app.inject({ method: "GET", url: "/a" })).statusCode).toBe(200);
      expect((await app.inject({ method: "GET", url: "/a" })).statusCode).toBe(429);
      expect((await app.inject({ method: "GET", url: "/b" })).statusCode).toBe(200);
      // Unnamed rules of different routes: two budgets.
      for (let i = 0; i < 3; i++) expect((await app.inject({ method: "GET", url: "/feed" })).statusCode).toBe(200);
      const login = [];
      for (let i = 0; i < 3; i++) login.push((await app.inject({ method: "POST", url: "/login" })).statusCode);
      expect(login).toEqual([200, 200, 429]);
      const feed = await app.inject({ method: "GET", url: "/feed" });
      expect(feed.statusCode).toBe(200);
      expect(feed.headers.ratelimit).toMatch(/;r=96;/);
    } finally {
      await app.close();
    }
  });

  it("routes sharing a group must have identical, named rules (error when the route is declared)", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix() });
    app.get(
      "/a",
      { config: { coordis: { rateLimit: { group: "api", rules: [{ name: "m", limit: 5, windowMs: 60_000 }] } } } },
      async () => 1,
    );
    // The same rules in the same group: fine.
    app.get(
      "/b",
      { config: { coordis: { rateLimit: { group: "api", rules: [{ name: "m", limit: 5, windowMs: 60_000 }] } } } },
      async () => 1,
    );
    const different = () =>
      app.get(
        "/c",
        { config: { coordis: { rateLimit: { group: "api", rules: [{ name: "m", limit: 50, windowMs: 60_000 }] } } } },
        async () => 1,
      );
    expect(different).toThrow(InvalidArgumentError);
    expect(different).toThrow(/GET \/a/);
    // Spelling out a default (the algorithm, a burst equal to the limit) is the same rule: fine.
    app.get(
      "/e",
      {
        config: {
          coordis: {
            rateLimit: { group: "api", rules: [{ name: "m", limit: 5, windowMs: 60_000, algorithm: "fixed-window" }] },
          },
        },
      },
      async () => 1,
    );
    const bucket = (extra: { burst?: number }) => ({
      config: {
        coordis: {
          rateLimit: {
            group: "bucket",
            rules: [{ name: "b", limit: 5, windowMs: 60_000, algorithm: "token-bucket" as const, ...extra }],
          },
        },
      },
    });
    app.get("/f", bucket({}), async () => 1);
    app.get("/g", bucket({ burst: 5 }), async () => 1);
    expect(() => app.get("/h", bucket({ burst: 6 }), async () => 1)).toThrow(/GET \/f/);
    expect(() =>
      app.get(
        "/d",
        { config: { coordis: { rateLimit: { group: "other", rules: [{ limit: 5, windowMs: 60_000 }] } } } },
        async () => 1,
      ),
    ).toThrow(/named rules/);
    // One budget: 5 calls in all through /a and /e, then both are limited.
    const statuses: number[] = [];
    for (const url of ["/a", "/e", "/a", "/e", "/a", "/e", "/a"]) {
      statuses.push((await app.inject({ method: "GET", url })).statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    await app.close();
  });

  it("rule sets that differ only by a spelled-out default share one limiter; a bad rule never borrows a good one's", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix() });
    const plain = [{ name: "m", limit: 5, windowMs: 60_000 }];
    const spelled = [{ name: "m", limit: 5, windowMs: 60_000, algorithm: "fixed-window" as const }];
    expect(app.coordis.rateLimiter(spelled)).toBe(app.coordis.rateLimiter(plain));
    const bucket = [{ name: "b", limit: 5, windowMs: 60_000, algorithm: "gcra" as const }];
    expect(app.coordis.rateLimiter([{ ...bucket[0], burst: 5 }] as never)).toBe(app.coordis.rateLimiter(bucket));
    // Unnamed, an explicit burst is another rule (its default name says so), hence another limiter.
    const unnamed = [{ limit: 5, windowMs: 60_000, algorithm: "token-bucket" as const }];
    expect(app.coordis.rateLimiter([{ ...unnamed[0], burst: 5 }] as never)).not.toBe(app.coordis.rateLimiter(unnamed));
    // A limiter's own normalized rules (with their capacity) can be passed again: the same limiter.
    const limiter = app.coordis.rateLimiter(bucket);
    expect(app.coordis.rateLimiter(limiter.rules as never)).toBe(limiter);
    expect(() => app.coordis.rateLimiter([{ ...bucket[0], capacity: 6 }] as never)).toThrow(InvalidArgumentError);
    // A typo or a window rule's burst is refused, although the set of valid rules it resembles exists already.
    expect(() => app.coordis.rateLimiter([{ ...plain[0], limt: 6 }] as never)).toThrow(InvalidArgumentError);
    expect(() => app.coordis.rateLimiter([{ ...plain[0], burst: 5 }] as never)).toThrow(InvalidArgumentError);
    await app.close();
  });

  it("a group that is another group followed by ':' is refused when the route is declared (they would share keys)", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix() });
    const rules = [{ name: "m", limit: 5, windowMs: 60_000 }];
    app.get("/a", { config: { coordis: { rateLimit: { group: "api", rules } } } }, async () => 1);
    // Key "v2:<id>" of group "api" would be key "<id>" of group "api:v2"; "api:ban" holds api's ban counters.
    for (const group of ["api:v2", "api:ban"]) {
      const declare = () =>
        app.get(`/${group}`, { config: { coordis: { rateLimit: { group, rules } } } }, async () => 1);
      expect(declare, group).toThrow(InvalidArgumentError);
      expect(declare, group).toThrow(/group "api" \(route GET \/a\)/);
    }
    // The other way round too, and a longer name that only starts the same is fine.
    app.get("/b", { config: { coordis: { rateLimit: { group: "web:v1", rules } } } }, async () => 1);
    expect(() => app.get("/c", { config: { coordis: { rateLimit: { group: "web", rules } } } }, async () => 1)).toThrow(
      /share Redis keys/,
    );
    app.get("/d", { config: { coordis: { rateLimit: { group: "apis", rules } } } }, async () => 1);
    await app.ready();
    await app.close();
  });

  it("an un-awaited register still limits the routes declared right after it", async () => {
    const app = Fastify();
    // The usual Fastify style: register is not awaited, routes follow at once.
    app.register(coordis, {
      redis: shared,
      prefix: freshPrefix(),
      rateLimit: { rules: [{ name: "m", limit: 2, windowMs: 60_000 }] },
    });
    app.get("/early", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    app.get("/free", async () => "ok");
    try {
      await app.ready();
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await app.inject({ method: "GET", url: "/early" })).statusCode);
      expect(codes).toEqual([200, 200, 429]);
      const res = await app.inject({ method: "GET", url: "/early" });
      expect(res.headers["ratelimit-policy"]).toBe('"m";q=2;w=60');
      const free = await app.inject({ method: "GET", url: "/free" });
      expect(free.statusCode).toBe(200);
      expect(free.headers.ratelimit).toBeUndefined();
    } finally {
      await app.close();
    }
  });

  it("a cleanup registered with coordis.onClose that throws: the others still run, the plugin's connection closes", async () => {
    const app = Fastify({ logger: false });
    await app.register(coordis, { url, prefix: freshPrefix() });
    const redis = app.coordis.redis;
    await redis.ping();
    const ran: string[] = [];
    app.coordis.onClose(() => ran.push("first registered"));
    app.coordis.onClose(() => {
      throw new Error("cleanup failed");
    });
    app.coordis.onClose(async () => ran.push("last registered"));
    await expect(app.close()).rejects.toThrow("cleanup failed");
    expect(ran).toEqual(["last registered", "first registered"]);
    expect(redis.status).toBe("end");
  });

  it("with global limits and a route declared before the plugin, an unknown URL is still a 404", async () => {
    const app = Fastify({ logger: false });
    app.get("/early", async () => "ok");
    app.register(coordis, {
      redis: shared,
      prefix: freshPrefix(),
      rateLimit: { global: true, rules: [{ name: "g", limit: 100, windowMs: 60_000 }] },
    });
    try {
      await app.ready();
      for (const url of ["/nope", "/early/deeper"]) {
        const res = await app.inject({ method: "GET", url });
        expect(res.statusCode, `${url}: ${res.body}`).toBe(404);
      }
      const early = await app.inject({ method: "GET", url: "/early" });
      expect(early.statusCode).toBe(200);
      expect(early.headers["ratelimit-policy"]).toBe('"g";q=100;w=60');
    } finally {
      await app.close();
    }
  });

  it("an un-awaited register with a misconfigured early route answers 500 naming the route, never unlimited", async () => {
    const app = Fastify({ logger: false });
    app.register(coordis, { redis: shared, prefix: freshPrefix() });
    app.get("/early", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    try {
      await app.ready();
      const res = await app.inject({ method: "GET", url: "/early" });
      expect(res.statusCode).toBe(500);
      expect(res.json().detail).toContain("GET /early");
    } finally {
      await app.close();
    }
  });

  it("a key function returning undefined is a 500 naming the route, not a shared bucket", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix() });
    app.get(
      "/k",
      {
        config: {
          coordis: {
            rateLimit: {
              rules: [{ name: "m", limit: 1, windowMs: 60_000 }],
              key: (req) => req.headers["x-api-key"] as string,
            },
          },
        },
      },
      async () => "ok",
    );
    try {
      const anonymous = await app.inject({ method: "GET", url: "/k" });
      expect(anonymous.statusCode).toBe(500);
      expect(anonymous.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(anonymous.json().detail).toContain("GET /k");
      expect((await app.inject({ method: "GET", url: "/k" })).statusCode).toBe(500);
      // Nothing was counted under a shared "undefined" key: a real caller still has its budget.
      const alice = await app.inject({ method: "GET", url: "/k", headers: { "x-api-key": "alice" } });
      expect(alice.statusCode).toBe(200);
      const empty = await app.inject({ method: "GET", url: "/k", headers: { "x-api-key": "" } });
      expect(empty.statusCode).toBe(500);
    } finally {
      await app.close();
    }
  });

  it("a cost function returning no valid cost is a 500 naming the route and the range, and counts nothing", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix() });
    app.get(
      "/c",
      {
        config: {
          coordis: {
            rateLimit: {
              rules: [{ name: "m", limit: 5, windowMs: 60_000 }],
              cost: (req) => Number(req.headers["x-cost"]),
            },
          },
        },
      },
      async () => "ok",
    );
    try {
      for (const bad of ["0", "0.5", "6", "abc"]) {
        const res = await app.inject({ method: "GET", url: "/c", headers: { "x-cost": bad } });
        expect(res.statusCode, bad).toBe(500);
        expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
        expect(res.json().detail).toContain("GET /c");
        expect(res.json().detail).toContain("from 1 to 5");
      }
      // Nothing was taken: the whole budget is there.
      const full = await app.inject({ method: "GET", url: "/c", headers: { "x-cost": "5" } });
      expect(full.statusCode).toBe(200);
      expect(full.headers.ratelimit).toBe('"m";r=0;t=60');
    } finally {
      await app.close();
    }
  });
});

describe("user-supplied clients", () => {
  it("rejects a client that re-sends unanswered commands or has no command timeout, naming the fix", async () => {
    const unsafe = new Redis(url, { lazyConnect: true });
    const app = Fastify();
    app.register(coordis, { redis: unsafe });
    const err = await app.ready().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe("options.redis");
    expect((err as Error).message).toMatch(/autoResendUnfulfilledCommands/);
    expect((err as Error).message).toMatch(/commandTimeout/);
    expect((err as Error).message).toMatch(/safeRedisOptions/);
    expect(unsafe.status).toBe("wait"); // never connected, nothing sent
    await app.close().catch(() => undefined);
    unsafe.disconnect();

    const safe = new Redis(url, { ...safeRedisOptions, lazyConnect: true });
    const ok = Fastify();
    await ok.register(coordis, { redis: safe });
    await ok.ready();
    await ok.close();
    safe.disconnect();
  });
  it("checks a Cluster client's node options the same way", () => {
    const nodes = [{ host: "127.0.0.1", port: 1 }];
    const unsafe = new Cluster(nodes, { lazyConnect: true });
    // Safe nodes, but the Cluster re-sends a command whose node connection closed (retryDelayOnFailover 100 ms) or
    // that was refused with CLUSTERDOWN or TRYAGAIN (100 ms), from a queue of its own.
    const resends = new Cluster(nodes, { lazyConnect: true, redisOptions: { ...safeRedisOptions } });
    const clusterDownOnly = new Cluster(nodes, {
      ...safeClusterOptions,
      retryDelayOnClusterDown: 100,
      lazyConnect: true,
      redisOptions: { ...safeRedisOptions },
    });
    const safe = new Cluster(nodes, {
      ...safeClusterOptions,
      lazyConnect: true,
      redisOptions: { ...safeRedisOptions },
    });
    expect(() => assertSafeClient(unsafe, "options.redis")).toThrow(/redisOptions: \{ \.\.\.safeRedisOptions/);
    expect(() => assertSafeClient(resends, "options.redis")).toThrow(/retryDelayOnFailover/);
    expect(() => assertSafeClient(resends, "options.redis")).toThrow(/\.\.\.safeClusterOptions/);
    expect(clientSafetyProblems(resends)).toHaveLength(3);
    expect(() => assertSafeClient(resends, "options.redis")).toThrow(/retryDelayOnClusterDown/);
    expect(() => assertSafeClient(clusterDownOnly, "options.redis")).toThrow(/CLUSTERDOWN/);
    expect(clientSafetyProblems(clusterDownOnly)).toHaveLength(1);
    expect(() => assertSafeClient(safe, "options.redis")).not.toThrow();
    expect(() => assertSafeClient(shared, "options.redis")).not.toThrow(); // from connect()
    const fromConnect = connect("redis+cluster://127.0.0.1:1", { clusterOptions: { lazyConnect: true } });
    expect(clientSafetyProblems(fromConnect)).toEqual([]);
    fromConnect.disconnect();
    unsafe.disconnect();
    resends.disconnect();
    clusterDownOnly.disconnect();
    safe.disconnect();
  });
});

describe("close after an outage", () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    proxy = await startProxy({ target: url });
  });
  afterAll(async () => {
    await proxy.close();
  });

  it("app.close() resolves promptly while the plugin's client is reconnecting", async () => {
    const app = Fastify();
    await app.register(coordis, {
      url: proxy.url,
      prefix: freshPrefix(),
      connectOptions: { commandTimeoutMs: 300, connectTimeoutMs: 300 },
      rateLimit: { rules: [{ name: "m", limit: 100, windowMs: 60_000 }] },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    await app.ready();
    expect((await app.inject({ method: "GET", url: "/x" })).statusCode).toBe(200);
    proxy.blackhole();
    expect((await app.inject({ method: "GET", url: "/x" })).statusCode).toBe(503);
    proxy.dropConnections();
    const redis = app.coordis.redis;
    // Wait until the client is between connection attempts (it cannot reach Redis through the blackhole).
    await waitUntil("the client to be between connection attempts", () => redis.status === "reconnecting", {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    const started = performance.now();
    const outcome = await Promise.race([
      app.close().then(() => "closed"),
      new Promise((r) => setTimeout(() => r("hung"), 5_000)),
    ]);
    expect(outcome).toBe("closed");
    expect(performance.now() - started).toBeLessThan(3_000);
    proxy.heal();
  });
});

describe("beside @fastify/rate-limit", () => {
  it("both plugins registered, each reading its own route config", async () => {
    const app = Fastify();
    await app.register(fastifyRateLimit, { global: false });
    await app.register(coordis, { redis: shared, prefix: freshPrefix() });
    app.get("/old", { config: { rateLimit: { max: 2, timeWindow: 60_000 } } }, async () => "ok");
    app.get(
      "/new",
      { config: { coordis: { rateLimit: { rules: [{ name: "m", limit: 1, windowMs: 60_000 }] } } } },
      async () => "ok",
    );
    app.get(
      "/both",
      {
        config: {
          rateLimit: { max: 3, timeWindow: 60_000 },
          coordis: { rateLimit: { rules: [{ name: "m", limit: 1, windowMs: 60_000 }] } },
        },
      },
      async () => "ok",
    );
    try {
      const old = [];
      for (let i = 0; i < 3; i++) old.push((await app.inject({ method: "GET", url: "/old" })).statusCode);
      expect(old).toEqual([200, 200, 429]);
      const first = await app.inject({ method: "GET", url: "/old" });
      expect(first.headers.ratelimit).toBeUndefined(); // Coordis does not touch it
      const fresh = [];
      for (let i = 0; i < 2; i++) fresh.push((await app.inject({ method: "GET", url: "/new" })).statusCode);
      expect(fresh).toEqual([200, 429]);
      const both = await app.inject({ method: "GET", url: "/both" });
      expect(both.statusCode).toBe(200);
      expect(both.headers["x-ratelimit-limit"]).toBe("3");
      expect(both.headers["ratelimit-policy"]).toBe('"m";q=1;w=60');
      expect((await app.inject({ method: "GET", url: "/both" })).statusCode).toBe(429);
    } finally {
      await app.close();
    }
  });

  it("a Coordis-shaped config.rateLimit is an error telling where it moved", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix() });
    expect(() => app.get("/x", { config: { rateLimit: true } as never }, async () => 1)).toThrow(
      /config\.coordis\.rateLimit/,
    );
    await app.close();
  });
});
