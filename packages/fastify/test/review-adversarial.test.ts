import { createHash } from "node:crypto";
import { InvalidArgumentError } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { type FaultProxy, startProxy, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-adversarial");

const clients = sharedClients();

let n = 0;
const freshPrefix = () => `${prefix}-${n++}`;

describe("adversarial review", () => {
  it("a client cannot spend a hashed key's ban counter by sending 'h:<sha256 of ban:key>' as its key", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: clients.redis,
      prefix: freshPrefix(),
      rateLimit: {
        rules: [{ name: "m", limit: 1, windowMs: 60_000 }],
        ban: 1,
        key: (req) => String(req.headers["x-api-key"] ?? "anonymous"),
      },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    await app.ready();
    try {
      const as = (key: string) => app.inject({ method: "GET", url: "/x", headers: { "x-api-key": key } });
      // The victim's key is stored hashed (braces); the attacker names the hash of its ban counter's text.
      const victim = "{victim}";
      const attacker = `h:${createHash("sha256").update(`ban:${victim}`, "utf8").digest("hex")}`;
      expect((await as(victim)).statusCode).toBe(200);
      expect((await as(attacker)).statusCode).toBe(200);
      expect((await as(attacker)).statusCode).toBe(429);
      expect((await as(attacker)).statusCode).toBe(403);
      // The victim was limited once (its own 429), never banned by the attacker's rejections.
      expect((await as(victim)).statusCode).toBe(429);
    } finally {
      await app.close();
    }
  });

  it("a second registration in the same context is refused before it opens a connection", async () => {
    const proxy = await startProxy({ target: url });
    const app = Fastify();
    try {
      await app.register(coordis, { redis: clients.redis, prefix: freshPrefix() });
      const err = await app.register(coordis, { url: proxy.url, prefix: freshPrefix() }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(/already registered/);
      expect(proxy.stats().accepted).toBe(0);
    } finally {
      await app.close();
      await proxy.close();
    }
  });

  it("a registration nested in a context that has one is refused: its routes would be limited twice", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: clients.redis,
      prefix: freshPrefix(),
      rateLimit: { rules: [{ name: "m", limit: 1, windowMs: 60_000 }] },
    });
    app.register(async (child) => {
      await child.register(coordis, {
        redis: clients.redis,
        prefix: freshPrefix(),
        rateLimit: { rules: [{ name: "m", limit: 5, windowMs: 60_000 }] },
      });
      child.get("/y", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    });
    try {
      // Before: both registrations limited /y (two budgets, two script calls); the first answer said 4 left (the
      // inner limit's fields), the second was a 429 of the outer limit.
      const err = await app.ready().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(/already registered in this context or a parent one/);
    } finally {
      await app.close();
    }
  });

  it("a route-level preHandler that answers first: the limit placed after it spends nothing", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: clients.redis,
      prefix: freshPrefix(),
      rateLimit: { rules: [{ name: "m", limit: 2, windowMs: 60_000 }], hook: "preHandler" },
    });
    app.get(
      "/x",
      {
        config: { coordis: { rateLimit: true } },
        preHandler: async (req, reply) => {
          if (req.headers.authorization === undefined) return reply.code(401).send({ error: "no" });
        },
      },
      async () => "ok",
    );
    await app.ready();
    try {
      for (let i = 0; i < 5; i++) expect((await app.inject({ url: "/x" })).statusCode).toBe(401);
      const ok = await app.inject({ url: "/x", headers: { authorization: "a" } });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers.ratelimit).toBe('"m";r=1;t=60');
    } finally {
      await app.close();
    }
  });

  it("concurrent requests with costs at exactly the limit: admitted costs sum to the limit, over real HTTP", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: clients.redis,
      prefix: freshPrefix(),
      rateLimit: { rules: [{ name: "m", limit: 30, windowMs: 60_000 }], cost: (req) => Number(req.headers["x-cost"]) },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    const address = await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      const costs = Array.from({ length: 60 }, (_, i) => (i % 3) + 1);
      const answers = await Promise.all(
        costs.map((c) => fetch(`${address}/x`, { headers: { "x-cost": String(c) } }).then((r) => r.status)),
      );
      const spent = costs.filter((_, i) => answers[i] === 200).reduce((a, b) => a + b, 0);
      const left = await app.coordis.peekRateLimit("127.0.0.1", { route: "GET /x" });
      expect(spent + left.remaining).toBe(30);
      expect(answers.every((s) => s === 200 || s === 429)).toBe(true);
      // Every rejected cost was more than what was left when it was decided: at the end, none of them fits.
      const rejected = costs.filter((_, i) => answers[i] === 429);
      expect(rejected.every((c) => c > left.remaining)).toBe(true);
    } finally {
      await app.close();
    }
  });

  it("two replicas on one Redis, requests racing over real HTTP: exactly the limit admitted in all", async () => {
    const p = freshPrefix();
    const replica = async () => {
      const app = Fastify();
      await app.register(coordis, {
        redis: clients.redis,
        prefix: p,
        rateLimit: { rules: [{ name: "m", limit: 25, windowMs: 60_000 }] },
      });
      app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
      return { app, address: await app.listen({ port: 0, host: "127.0.0.1" }) };
    };
    const [a, b] = [await replica(), await replica()];
    try {
      const answers = await Promise.all(
        Array.from({ length: 80 }, (_, i) => fetch(`${(i % 2 === 0 ? a : b).address}/x`).then((r) => r.status)),
      );
      expect(answers.filter((s) => s === 200)).toHaveLength(25);
      expect(answers.filter((s) => s === 429)).toHaveLength(55);
    } finally {
      await a.app.close();
      await b.app.close();
    }
  });

  it("odd keys (control characters, 512 and 513 bytes of multi-byte text) each get a budget of their own", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: clients.redis,
      prefix: freshPrefix(),
      rateLimit: {
        rules: [{ name: "m", limit: 1, windowMs: 60_000 }],
        group: "g",
        key: (req) => keys[Number(req.headers["x-i"])] as string,
      },
    });
    // "g:" + key is exactly 512 bytes (kept as it is) and 513 bytes (hashed), around the limit of a Redis name.
    const keys = ["a\u0000b", "a\nb", "a\u0000c", `${"é".repeat(255)}`, `${"é".repeat(255)}x`, `${"é".repeat(255)}y`];
    expect(Buffer.byteLength(`g:${keys[3]}`)).toBe(512);
    expect(Buffer.byteLength(`g:${keys[4]}`)).toBe(513);
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    await app.ready();
    try {
      const call = (i: number) => app.inject({ url: "/x", headers: { "x-i": String(i) } }).then((r) => r.statusCode);
      const first = [];
      for (let i = 0; i < keys.length; i++) first.push(await call(i));
      expect(first).toEqual(keys.map(() => 200));
      const second = [];
      for (let i = 0; i < keys.length; i++) second.push(await call(i));
      expect(second).toEqual(keys.map(() => 429));
    } finally {
      await app.close();
    }
  });

  it("Redis restarted (scripts and counts gone): lone and batched requests, ban checks too, serve again, never a 500", async () => {
    const server = await startRedis();
    const app = Fastify();
    await app.register(coordis, {
      url: server.url,
      prefix: freshPrefix(),
      connectOptions: { commandTimeoutMs: 500, connectTimeoutMs: 500 },
      rateLimit: { rules: [{ name: "m", limit: 1_000, windowMs: 60_000 }], ban: 5 },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    await app.ready();
    const burst = async (count: number) =>
      (await Promise.all(Array.from({ length: count }, () => app.inject({ url: "/x" })))).map((r) => r.statusCode);
    try {
      // Every script the route uses is loaded: the ban peek, the plain consume (a lone request), the batched consume.
      expect(await burst(1)).toEqual([200]);
      expect(await burst(10)).toEqual(Array(10).fill(200));
      await server.restart();
      const seen: number[] = [];
      await waitUntil(
        "the route to serve again",
        async () => {
          seen.push((await app.inject({ url: "/x" })).statusCode);
          return seen.at(-1) === 200;
        },
        10_000,
      );
      expect(seen.every((s) => s === 200 || s === 503)).toBe(true);
      expect(await burst(10)).toEqual(Array(10).fill(200));
    } finally {
      await app.close();
      await server.stop();
    }
  });

  describe("Redis dropping out mid-request", () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startProxy({ target: url });
    });
    afterAll(async () => {
      await proxy.close();
    });

    it("requests in flight when Redis goes silent get 503, and the route serves again once it is back", async () => {
      const app = Fastify();
      await app.register(coordis, {
        url: proxy.url,
        prefix: freshPrefix(),
        connectOptions: { commandTimeoutMs: 300, connectTimeoutMs: 300 },
        rateLimit: { rules: [{ name: "m", limit: 100, windowMs: 60_000 }] },
      });
      app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
      await app.ready();
      try {
        expect((await app.inject({ url: "/x" })).statusCode).toBe(200);
        proxy.setLatency(100);
        // Ten requests waiting on their limiter calls (batched) when Redis goes silent.
        const inFlight = Array.from({ length: 10 }, () => app.inject({ url: "/x" }));
        proxy.blackhole();
        const answers = await Promise.all(inFlight);
        for (const a of answers) {
          expect(a.statusCode).toBe(503);
          expect(a.headers["retry-after"]).toBe("1");
          expect(a.headers["content-type"]).toMatch(/^application\/problem\+json/);
        }
        proxy.setLatency(0);
        proxy.heal();
        const seen: number[] = [];
        await waitUntil(
          "the route to serve again",
          async () => {
            seen.push((await app.inject({ url: "/x" })).statusCode);
            return seen.at(-1) === 200;
          },
          10_000,
        );
        expect(seen.every((s) => s === 200 || s === 503)).toBe(true);
      } finally {
        await app.close();
      }
    });
  });
});
