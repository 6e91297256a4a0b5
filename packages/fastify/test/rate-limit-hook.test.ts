import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("fastify-hook");
let n = 0;
const freshPrefix = () => `${prefix}-${n++}`;

let shared: RedisClient;
beforeAll(() => {
  shared = connect(inject("coordisRedisUrl"));
});
afterAll(() => {
  shared.disconnect();
});

const rules = [{ name: "probe", limit: 3, windowMs: 60_000 }];

// The plugin limits routes; what is on no route (the not-found handler) or a hook an app places itself is limited
// with coordis.rateLimitHook(settings), as @fastify/rate-limit's fastify.rateLimit() does.
describe("coordis.rateLimitHook", () => {
  it("limits the not-found handler: scanning unknown URLs uses up one budget, then 429 with the usual headers", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules, global: true } });
    app.setNotFoundHandler({ preHandler: app.coordis.rateLimitHook({ group: "not-found" }) }, (_req, reply) =>
      reply.code(404).send({ missing: true }),
    );
    app.get("/ok", async () => "ok");
    try {
      const statuses: number[] = [];
      for (const url of ["/a", "/b", "/c", "/d"]) statuses.push((await app.inject({ url })).statusCode);
      expect(statuses).toEqual([404, 404, 404, 429]);
      const limited = await app.inject({ url: "/e" });
      expect(limited.statusCode).toBe(429);
      expect(limited.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(limited.headers["retry-after"]).toBeDefined();
      expect(limited.headers["ratelimit-policy"]).toMatch(/"probe";q=3;w=60/);
      // A route's own budget is another one.
      expect((await app.inject({ url: "/ok" })).statusCode).toBe(200);
      // The budget is the group's: peekRateLimit reads it by that name.
      const peek = await app.coordis.peekRateLimit("127.0.0.1", { group: "not-found" });
      expect(peek.allowed).toBe(false);
    } finally {
      await app.close();
    }
  });

  it("works as a route's preHandler, with a key from what an earlier hook set", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules } });
    app.get(
      "/me",
      {
        onRequest: async (req) => {
          (req as unknown as { user: string }).user = String(req.headers["x-user"]);
        },
        preHandler: app.coordis.rateLimitHook({
          group: "me",
          key: (req) => (req as unknown as { user: string }).user,
          rules: [{ name: "me", limit: 1, windowMs: 60_000 }],
        }),
      },
      async () => "me",
    );
    try {
      const as = async (user: string) => (await app.inject({ url: "/me", headers: { "x-user": user } })).statusCode;
      expect([await as("ann"), await as("ann"), await as("bob")]).toEqual([200, 429, 200]);
    } finally {
      await app.close();
    }
  });

  it("refuses bad settings with InvalidArgumentError naming them: no group, a hook phase, unknown keys, bad rules", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules } });
    try {
      const refused = (settings: unknown) => {
        try {
          app.coordis.rateLimitHook(settings as never);
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidArgumentError);
          return (err as InvalidArgumentError).argument;
        }
        return "accepted";
      };
      expect(refused(undefined)).toBe("settings.group");
      expect(refused(true)).toBe("settings.group");
      expect(refused({ group: "g", hook: "preHandler" })).toBe("settings.hook");
      expect(refused({ group: "g", nope: 1 })).toBe("settings.nope");
      expect(refused({ group: "g", rules: [{ name: "x", limit: 0, windowMs: 1_000 }] })).toBe(
        "settings.rules[0].limit",
      );
      expect(refused(null)).toBe("settings");
      expect(refused(false)).toBe("settings");
      expect(refused({ group: "g" })).toBe("accepted");
      // A group has one set of rules, whoever shares it: a second hook of the group with other rules is refused.
      expect(refused({ group: "g", rules: [{ name: "probe", limit: 3, windowMs: 60_000 }] })).toBe("accepted");
      expect(refused({ group: "g", rules: [{ name: "probe", limit: 30, windowMs: 60_000 }] })).toBe("settings.rules");
    } finally {
      await app.close();
    }
  });

  it("takes the defaults' group when the plugin defaults one", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: freshPrefix(), rateLimit: { rules, group: "everything" } });
    app.setNotFoundHandler({ preHandler: app.coordis.rateLimitHook() }, (_req, reply) => reply.code(404).send());
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await app.inject({ url: `/x${i}` })).statusCode);
      expect(statuses).toEqual([404, 404, 404, 429]);
    } finally {
      await app.close();
    }
  });

  it("rateLimitHook() called per request (the same settings each time) does not grow the process-wide group ledger", async () => {
    const ledgers = (globalThis as Record<symbol, Map<string, Map<string, unknown[]>>>)[
      Symbol.for("@coordis/fastify.group-ledgers.v1")
    ];
    const p = freshPrefix();
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: p, rateLimit: { rules } });
    app.get("/per-request", async (req, reply) => {
      const hook = app.coordis.rateLimitHook({ group: "per-request" });
      await new Promise<void>((resolve) => hook(req, reply, () => resolve()));
      return "ok";
    });
    try {
      for (let i = 0; i < 50; i++) await app.inject({ url: "/per-request" });
      const scope = [...(ledgers?.entries() ?? [])].find(([name]) => name.endsWith(` ${p}`));
      expect(scope?.[1].get("per-request")?.length).toBe(1);
    } finally {
      await app.close();
    }
  });
});
