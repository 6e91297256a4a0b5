import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-peek");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

let n = 0;
async function makeApp(): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(coordis, {
    redis: shared,
    prefix: `${prefix}-${n++}`,
    rateLimit: { rules: [{ name: "burst", limit: 10, windowMs: 60_000 }] },
  });
  // The README's route with rules of its own.
  app.post(
    "/login",
    { config: { coordis: { rateLimit: { rules: [{ name: "login", limit: 2, windowMs: 60_000 }] } } } },
    async () => "ok",
  );
  app.route({
    method: ["POST", "PUT"],
    url: "/items",
    config: { coordis: { rateLimit: { rules: [{ name: "items", limit: 1, windowMs: 60_000 }] } } },
    handler: async () => "ok",
  });
  app.get(
    "/tiny",
    { config: { coordis: { rateLimit: { group: "tiny", rules: [{ name: "tiny", limit: 1, windowMs: 60_000 }] } } } },
    async () => "ok",
  );
  app.get("/free", async () => "ok");
  await app.ready();
  return app;
}

describe("peekRateLimit reads the budget a route's requests spend", () => {
  it("by route: the route's own rules, and a route of several methods by any of them", async () => {
    const app = await makeApp();
    try {
      for (let i = 0; i < 3; i++) await app.inject({ method: "POST", url: "/login" });
      const login = await app.coordis.peekRateLimit("127.0.0.1", { route: "POST /login" });
      expect(login.allowed).toBe(false);
      expect(login.rule).toBe("login");
      expect(login.remaining).toBe(0);

      expect((await app.inject({ method: "PUT", url: "/items" })).statusCode).toBe(200);
      for (const route of ["POST /items", "PUT /items", "POST,PUT /items"]) {
        const items = await app.coordis.peekRateLimit("127.0.0.1", { route });
        expect(items.allowed, route).toBe(false);
        expect(items.rule, route).toBe("items");
      }
    } finally {
      await app.close();
    }
  });

  it("by route or group: a route in a shared group reads the group's budget by its rules", async () => {
    const app = await makeApp();
    try {
      expect((await app.inject({ method: "GET", url: "/tiny" })).statusCode).toBe(200);
      expect((await app.inject({ method: "GET", url: "/tiny" })).statusCode).toBe(429);
      for (const options of [{ route: "GET /tiny" }, { route: "HEAD /tiny" }, { group: "tiny" }]) {
        const state = await app.coordis.peekRateLimit("127.0.0.1", options);
        expect(state.allowed, JSON.stringify(options)).toBe(false);
        expect(state.rule, JSON.stringify(options)).toBe("tiny");
      }
    } finally {
      await app.close();
    }
  });

  it("a route without a limit, or that does not exist, is an InvalidArgumentError naming it", async () => {
    const app = await makeApp();
    try {
      for (const route of ["GET /free", "GET /login", "GET /nope"]) {
        const err = await app.coordis.peekRateLimit("127.0.0.1", { route }).catch((e: unknown) => e);
        expect(err, route).toBeInstanceOf(InvalidArgumentError);
        expect((err as Error).message, route).toContain(`no rate-limited route "${route}"`);
      }
    } finally {
      await app.close();
    }
  });
});
