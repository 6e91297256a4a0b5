import { connect, type RedisClient } from "@coordis/core";
import { type CoordisPluginOptions, coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import fastifyRateLimit from "@fastify/rate-limit";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-migration-global");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

/** Status codes of GET /a, /b, /a, /b... (`count` rounds) and then of /own `own` times. */
async function pattern(app: FastifyInstance, count: number, own: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    for (const path of ["/a", "/b"]) out.push((await app.inject({ method: "GET", url: path })).statusCode);
  }
  for (let i = 0; i < own; i++) out.push((await app.inject({ method: "GET", url: "/own" })).statusCode);
  return out;
}

let n = 0;
async function coordisApp(rateLimit: CoordisPluginOptions["rateLimit"], ownGroup: boolean): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(coordis, { redis: shared, prefix: `${prefix}-${n++}`, rateLimit });
  app.get("/a", async () => "a");
  app.get("/b", async () => "b");
  const own = { rules: [{ name: "own", limit: 2, windowMs: 60_000 }], ...(ownGroup ? { group: "own" } : {}) };
  app.get("/own", { config: { coordis: { rateLimit: own } } }, async () => "own");
  await app.ready();
  return app;
}

// The README's migration table maps @fastify/rate-limit's `global` (its default) row by row.
describe("migrating @fastify/rate-limit's global limit", () => {
  it("rateLimit: { global: true, group: 'global' } answers like @fastify/rate-limit's global: one budget across routes", async () => {
    const peer = Fastify();
    await peer.register(fastifyRateLimit, { global: true, max: 3, timeWindow: 60_000 });
    peer.get("/a", async () => "a");
    peer.get("/b", async () => "b");
    peer.get("/own", { config: { rateLimit: { max: 2, timeWindow: 60_000 } } }, async () => "own");
    await peer.ready();
    const expected = await pattern(peer, 3, 3);
    await peer.close();
    // The peer: 3 requests over /a and /b together, then /own's budget of its own.
    expect(expected).toEqual([200, 200, 200, 429, 429, 429, 200, 200, 429]);

    const rules = [{ name: "global", limit: 3, windowMs: 60_000 }];
    const mapped = await coordisApp({ global: true, group: "global", rules }, true);
    try {
      expect(await pattern(mapped, 3, 3)).toEqual(expected);
    } finally {
      await mapped.close();
    }
    // global alone (the mapping the table gave before) gives each route the whole budget: twice it over two routes.
    const perRoute = await coordisApp({ global: true, rules }, false);
    try {
      expect(await pattern(perRoute, 3, 3)).not.toEqual(expected);
    } finally {
      await perRoute.close();
    }
  });

  it("with the defaults' group, a route with rules of its own and no group of its own is refused when declared", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: shared,
      prefix: `${prefix}-${n++}`,
      rateLimit: { global: true, group: "global", rules: [{ name: "global", limit: 3, windowMs: 60_000 }] },
    });
    try {
      app.get("/a", async () => "a");
      const own = { rules: [{ name: "own", limit: 2, windowMs: 60_000 }] };
      expect(() => app.get("/own", { config: { coordis: { rateLimit: own } } }, async () => "own")).toThrow(
        /group "global"/,
      );
    } finally {
      await app.close();
    }
  });
});
