import { connect, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("fastify-route-identity");
const rule = (limit: number) => ({ rules: [{ name: "s", limit, windowMs: 60_000 }] });

let redis: RedisClient;
beforeAll(() => {
  redis = connect(inject("coordisRedisUrl"));
});
afterAll(() => {
  redis.disconnect();
});

let n = 0;
/** The status codes of `count` requests. */
async function statuses(
  app: FastifyInstance,
  count: number,
  request: { method?: "GET" | "HEAD" | "POST"; url: string; headers?: Record<string, string> },
) {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push((await app.inject(request)).statusCode);
  return out;
}

describe("which route a request's budget belongs to", () => {
  it("HEAD shares the budget of the route that serves GET, also when that route has several methods", async () => {
    const app = Fastify();
    await app.register(coordis, { redis, prefix: `${prefix}-${n++}`, rateLimit: rule(2) });
    app.route({
      method: ["GET", "POST"],
      url: "/mm",
      config: { coordis: { rateLimit: true } },
      handler: async () => "ok",
    });
    try {
      expect(await statuses(app, 2, { method: "GET", url: "/mm" })).toEqual([200, 200]);
      expect(await statuses(app, 1, { method: "HEAD", url: "/mm" })).toEqual([429]);
      expect(await statuses(app, 1, { method: "POST", url: "/mm" })).toEqual([429]);
    } finally {
      await app.close();
    }
  });

  it("routes of one method and URL with different constraints have their own budgets and rules", async () => {
    const app = Fastify();
    await app.register(coordis, { redis, prefix: `${prefix}-${n++}` });
    const limited = (limit: number) => ({ coordis: { rateLimit: rule(limit) } });
    app.get("/x", { constraints: { version: "1.0.0" }, config: limited(1) }, async () => "v1");
    app.get("/x", { constraints: { version: "2.0.0" }, config: limited(100) }, async () => "v2");
    try {
      const v2 = await app.inject({ url: "/x", headers: { "accept-version": "2.0.0" } });
      expect(v2.headers.ratelimit).toBe('"s";r=99;t=60');
      expect(await statuses(app, 2, { url: "/x", headers: { "accept-version": "1.0.0" } })).toEqual([200, 429]);
      expect(await statuses(app, 1, { url: "/x", headers: { "accept-version": "2.0.0" } })).toEqual([200]);
    } finally {
      await app.close();
    }
  });

  it("a route declared before the plugin loaded stays limited when a later route has its method and URL", async () => {
    const app = Fastify();
    // Not awaited: the first /y is declared before the plugin loads, the second in a plugin that loads after it.
    app.register(coordis, { redis, prefix: `${prefix}-${n++}`, rateLimit: rule(1) });
    app.get("/y", { constraints: { version: "1.0.0" }, config: { coordis: { rateLimit: true } } }, async () => "v1");
    app.register(async (child) => {
      child.get(
        "/y",
        { constraints: { version: "2.0.0" }, config: { coordis: { rateLimit: true } } },
        async () => "v2",
      );
    });
    await app.ready();
    try {
      expect(await statuses(app, 2, { url: "/y", headers: { "accept-version": "1.0.0" } })).toEqual([200, 429]);
    } finally {
      await app.close();
    }
  });
});
