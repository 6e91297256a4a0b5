import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify, { type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("fastify-fidelity");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(inject("coordisRedisUrl"));
});
afterAll(() => {
  shared.disconnect();
});

let n = 0;
const freshPrefix = () => `${prefix}-${n++}`;
const rules = [{ name: "m", limit: 2, windowMs: 60_000 }];

/** What a team moving from @fastify/rate-limit relies on without reading further than the migration table. */
describe("migrating from @fastify/rate-limit", () => {
  it("the limit runs after the route's own onRequest hooks, so a key can come from what they set", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules } });
    app.get(
      "/x",
      {
        onRequest: async (req: FastifyRequest & { user?: string }) => {
          req.user = String(req.headers["x-user"]);
        },
        config: {
          coordis: { rateLimit: { key: (req) => (req as FastifyRequest & { user?: string }).user as string } },
        },
      },
      async () => "ok",
    );
    try {
      const as = async (user: string) =>
        (await app.inject({ method: "GET", url: "/x", headers: { "x-user": user } })).statusCode;
      expect([await as("alice"), await as("alice"), await as("alice"), await as("bob")]).toEqual([200, 200, 429, 200]);
    } finally {
      await app.close();
    }
  });

  it("a HEAD route of the app's own with other rules than the GET route of its URL is refused when declared", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules } });
    app.head(
      "/doc",
      { config: { coordis: { rateLimit: { rules: [{ name: "m", limit: 1_000, windowMs: 60_000 }] } } } },
      async () => "",
    );
    let error: unknown;
    try {
      app.get("/doc", { config: { coordis: { rateLimit: true } } }, async () => "ok");
      await app.ready();
    } catch (err) {
      error = err;
    } finally {
      await app.close().catch(() => {});
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/HEAD \/doc/);
    // The HEAD route Fastify adds (same settings) shares the GET route's budget, as before.
    const same = Fastify();
    await same.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules } });
    same.get("/doc", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    try {
      const codes = [];
      for (const method of ["HEAD", "GET", "HEAD"] as const)
        codes.push((await same.inject({ method, url: "/doc" })).statusCode);
      expect(codes).toEqual([200, 200, 429]);
    } finally {
      await same.close();
    }
  });

  it("the default key groups IPv6 clients by their /64 and an IPv4-mapped address with its IPv4 one", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules } });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    try {
      const from = async (remoteAddress: string) =>
        (await app.inject({ method: "GET", url: "/x", remoteAddress })).statusCode;
      // One client picking addresses in its /64.
      expect([
        await from("2001:db8:1:2::1"),
        await from("2001:db8:1:2::2"),
        await from("2001:db8:1:2:ffff::9"),
      ]).toEqual([200, 200, 429]);
      // Another /64: its own budget.
      expect(await from("2001:db8:1:3::1")).toBe(200);
      expect([await from("192.0.2.7"), await from("::ffff:192.0.2.7"), await from("192.0.2.7")]).toEqual([
        200, 200, 429,
      ]);
    } finally {
      await app.close();
    }
  });

  it("an errorResponseBuilder that throws its body reaches the app's error handler, as @fastify/rate-limit's does", async () => {
    const app = Fastify();
    app.setErrorHandler((err: { statusCode?: number; msg?: string }, _req, reply) => {
      reply.code(err.statusCode ?? 500).send({ wrapped: true, msg: err.msg });
    });
    await app.register(coordis, {
      redis: shared,
      prefix: freshPrefix(),
      rateLimit: {
        rules: [{ name: "m", limit: 1, windowMs: 60_000 }],
        errorResponseBuilder: (_req, ctx) => {
          throw Object.assign(new Error("limited"), { statusCode: ctx.statusCode, msg: `only ${ctx.max}` });
        },
      },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    try {
      expect((await app.inject({ method: "GET", url: "/x" })).statusCode).toBe(200);
      const limited = await app.inject({ method: "GET", url: "/x" });
      expect(limited.statusCode).toBe(429);
      expect(limited.json()).toEqual({ wrapped: true, msg: "only 1" });
    } finally {
      await app.close();
    }
  });

  it("a fixed cost above the capacity of the rules a rules function picked: a 500 problem naming the route", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules, cost: 5 } });
    const big = [{ name: "big", limit: 100, windowMs: 60_000 }];
    const small = [{ name: "small", limit: 2, windowMs: 60_000 }];
    app.get(
      "/plan",
      { config: { coordis: { rateLimit: { rules: (req) => (req.headers["x-plan"] === "free" ? small : big) } } } },
      async () => "ok",
    );
    try {
      expect((await app.inject({ method: "GET", url: "/plan" })).statusCode).toBe(200);
      const free = await app.inject({ method: "GET", url: "/plan", headers: { "x-plan": "free" } });
      expect(free.statusCode).toBe(500);
      expect(free.headers["content-type"]).toMatch(/application\/problem\+json/);
      expect(free.json().detail).toMatch(/GET \/plan/);
    } finally {
      await app.close();
    }
  });
});
