import { connect, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { RateLimiter } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify");
const rules = [
  { name: "burst", limit: 3, windowMs: 60_000 },
  { name: "daily", limit: 5, windowMs: 86_400_000 },
];

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

let appCount = 0;
async function makeApp(extra: { trustProxy?: boolean } = {}): Promise<FastifyInstance> {
  const app = Fastify({ trustProxy: extra.trustProxy ?? false });
  // A prefix per app, so every app starts with full budgets.
  await app.register(coordis, {
    redis: shared,
    prefix: `${prefix}-${appCount++}`,
    metrics: { registry: new Registry() },
    rateLimit: { rules },
  });
  app.get("/limited", { config: { coordis: { rateLimit: true } } }, async () => ({ ok: true }));
  app.get(
    "/by-key",
    {
      config: {
        coordis: { rateLimit: { key: (req) => String(req.headers["x-api-key"] ?? "anonymous"), group: "api" } },
      },
    },
    async () => ({ ok: true }),
  );
  app.get(
    "/tiny",
    { config: { coordis: { rateLimit: { rules: [{ name: "tiny", limit: 1, windowMs: 30_000 }], group: "tiny" } } } },
    async () => ({ ok: true }),
  );
  app.get("/free", async () => ({ ok: true }));
  await app.ready();
  return app;
}

describe("@coordis/fastify rate limits", () => {
  it("sets the draft-11 headers on every limited response and answers 429 as problem+json", async () => {
    const app = await makeApp();
    try {
      const policy = '"burst";q=3;w=60, "daily";q=5;w=86400';
      for (let i = 1; i <= 3; i++) {
        const res = await app.inject({ method: "GET", url: "/limited" });
        expect(res.statusCode).toBe(200);
        expect(res.headers["ratelimit-policy"]).toBe(policy);
        expect(res.headers.ratelimit).toMatch(new RegExp(`^"burst";r=${3 - i};t=(59|60)$`));
        expect(res.headers["retry-after"]).toBeUndefined();
      }
      const res = await app.inject({ method: "GET", url: "/limited" });
      expect(res.statusCode).toBe(429);
      expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
      const retry = Number(res.headers["retry-after"]);
      expect(retry).toBeGreaterThanOrEqual(1);
      expect(retry).toBeLessThanOrEqual(60);
      expect(res.headers["ratelimit-policy"]).toBe(policy);
      expect(res.headers.ratelimit).toBe(`"burst";r=0;t=${retry}`);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(["detail", "status", "title", "type"]);
      expect(body).toMatchObject({ type: "about:blank", title: "Too Many Requests", status: 429 });
      expect(body.detail).toContain('"burst"');

      const free = await app.inject({ method: "GET", url: "/free" });
      expect(free.statusCode).toBe(200);
      expect(free.headers.ratelimit).toBeUndefined();
      expect(free.headers["ratelimit-policy"]).toBeUndefined();

      // A route with its own rules and group has its own budget and policy.
      const tiny = await app.inject({ method: "GET", url: "/tiny" });
      expect(tiny.statusCode).toBe(200);
      expect(tiny.headers["ratelimit-policy"]).toBe('"tiny";q=1;w=30');
      expect((await app.inject({ method: "GET", url: "/tiny" })).statusCode).toBe(429);
    } finally {
      await app.close();
    }
  });

  it("keys by the key function; hostile keys are hashed, not rejected", async () => {
    const app = await makeApp();
    try {
      const call = (key: string) => app.inject({ method: "GET", url: "/by-key", headers: { "x-api-key": key } });
      for (let i = 0; i < 3; i++) expect((await call("alice")).statusCode).toBe(200);
      expect((await call("alice")).statusCode).toBe(429);
      expect((await call("bob")).statusCode).toBe(200);
      const hostile = `{evil}${"x".repeat(600)}`;
      for (let i = 0; i < 3; i++) expect((await call(hostile)).statusCode).toBe(200);
      expect((await call(hostile)).statusCode).toBe(429);
      const state = await app.coordis.peekRateLimit("alice", { group: "api" });
      expect(state.allowed).toBe(false);
      expect(state.rules.map((r) => r.remaining)).toEqual([0, 2]);
    } finally {
      await app.close();
    }
  });

  it("HEAD requests share the GET route's budget, and peekRateLimit reads a route's own budget by route", async () => {
    const app = await makeApp();
    try {
      const codes = [];
      for (const method of ["HEAD", "GET", "HEAD", "GET"] as const) {
        codes.push((await app.inject({ method, url: "/limited" })).statusCode);
      }
      expect(codes).toEqual([200, 200, 200, 429]);
      for (const route of ["GET /limited", "HEAD /limited"]) {
        const state = await app.coordis.peekRateLimit("127.0.0.1", { route });
        expect(state.allowed, route).toBe(false);
        expect(state.rules.map((r) => r.remaining)).toEqual([0, 2]);
      }
      // Another route's budget is its own.
      expect((await app.coordis.peekRateLimit("127.0.0.1", { route: "GET /by-key" })).allowed).toBe(true);
    } finally {
      await app.close();
    }
  });

  it("uses X-Forwarded-For only when Fastify trusts the proxy", async () => {
    const plain = await makeApp();
    const proxied = await makeApp({ trustProxy: true });
    try {
      const call = (app: FastifyInstance, ip: string) =>
        app.inject({ method: "GET", url: "/limited", headers: { "x-forwarded-for": ip } });
      // Without trustProxy every forwarded address is the same socket address: one budget.
      const plainCodes = [];
      for (let i = 0; i < 4; i++) plainCodes.push((await call(plain, `10.0.0.${i}`)).statusCode);
      expect(plainCodes).toEqual([200, 200, 200, 429]);
      // With trustProxy each forwarded client has its own budget.
      const proxiedCodes = [];
      for (let i = 0; i < 4; i++) proxiedCodes.push((await call(proxied, `10.0.0.${i}`)).statusCode);
      expect(proxiedCodes).toEqual([200, 200, 200, 200]);
    } finally {
      await plain.close();
      await proxied.close();
    }
  });

  it("rejects bad rules when the route is registered", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix });
    expect(() =>
      app.get(
        "/x",
        { config: { coordis: { rateLimit: { rules: [{ name: "bad name", limit: 1, windowMs: 1000 }] } } } },
        async () => 1,
      ),
    ).toThrow(/rules/);
    expect(() => app.get("/y", { config: { coordis: { rateLimit: true } } }, async () => 1)).toThrow(/no rules/);
    await app.close();
  });
});

describe("@coordis/fastify lifecycle and metrics", () => {
  it("closes the connection it opened on close, and leaves a given one open", async () => {
    const own = Fastify();
    await own.register(coordis, { url, prefix });
    await own.ready();
    const redis = own.coordis.redis;
    expect(await redis.ping()).toBe("PONG");
    let closedHook = false;
    own.coordis.onClose(() => {
      closedHook = true;
    });
    await own.close();
    expect(closedHook).toBe(true);
    expect(redis.status).toBe("end");

    const given = Fastify();
    await given.register(coordis, { redis: shared, prefix });
    await given.ready();
    await given.close();
    expect(await shared.ping()).toBe("PONG");
  });

  it("serves the registry at /metrics with the decisions counted", async () => {
    const app = await makeApp();
    try {
      await app.inject({ method: "GET", url: "/limited" });
      const res = await app.inject({ method: "GET", url: "/metrics" });
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-type"]).toMatch(/^text\/plain/);
      expect(res.body).toMatch(/coordis_ratelimit_decisions_total\{[^}]*outcome="allowed"[^}]*\} 1/);
      expect(app.coordis.options({ a: 1 })).toMatchObject({ a: 1, prefix: app.coordis.prefix });
    } finally {
      await app.close();
    }
  });

  it("options(extra) keeps a prefix given in extra, and an observer given there hears the events beside the metrics", async () => {
    const app = await makeApp();
    try {
      const heard: string[] = [];
      const mine = { onOperation: (e: { op: string; outcome: string }) => heard.push(`${e.op}:${e.outcome}`) };
      const own = `${prefix}-own`;
      const opts = app.coordis.options({ rules, prefix: own, observer: mine });
      expect(opts.prefix).toBe(own);
      expect(app.coordis.options({ rules }).prefix).toBe(app.coordis.prefix);
      const limiter = new RateLimiter(app.coordis.redis, opts);
      expect((await limiter.consume("options-extra")).allowed).toBe(true);
      expect(heard).toEqual(["consume:allowed"]);
      // Counted by the plugin's metrics too, and the state is under the prefix given.
      const res = await app.inject({ method: "GET", url: "/metrics" });
      expect(res.body).toMatch(/coordis_ratelimit_decisions_total\{[^}]*outcome="allowed"[^}]*\} 1/);
      expect(await shared.exists(`${own}:rl:{options-extra}`)).toBe(1);
      expect(await shared.exists(`${app.coordis.prefix}:rl:{options-extra}`)).toBe(0);
      // What is no observer, or no options object, is refused, naming it.
      for (const bad of [null, "x", { onOperation: 1 }]) {
        expect(() => app.coordis.options({ observer: bad as never })).toThrow(/extra\.observer/);
      }
      for (const bad of [null, 1, [1]]) expect(() => app.coordis.options(bad as never)).toThrow(/"extra"/);
    } finally {
      await app.close();
    }
  });

  it("can move or drop the metrics route", async () => {
    const moved = Fastify();
    await moved.register(coordis, {
      redis: shared,
      prefix,
      metrics: { path: "/internal/metrics", registry: new Registry() },
    });
    const none = Fastify();
    await none.register(coordis, { redis: shared, prefix });
    try {
      expect((await moved.inject({ method: "GET", url: "/internal/metrics" })).statusCode).toBe(200);
      expect((await moved.inject({ method: "GET", url: "/metrics" })).statusCode).toBe(404);
      expect((await none.inject({ method: "GET", url: "/metrics" })).statusCode).toBe(404);
      expect(none.coordis.metrics).toBeUndefined();
    } finally {
      await moved.close();
      await none.close();
    }
  });
});
