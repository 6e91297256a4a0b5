import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type CoordisPluginOptions, coordis, type RouteRateLimit } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it, inject as provided } from "vitest";

const url = provided("coordisRedisUrl");
const prefix = testPrefix("fastify-turn-off");
const one = [{ name: "m", limit: 1, windowMs: 60_000 }];

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

let n = 0;
async function appWith(
  rateLimit: CoordisPluginOptions["rateLimit"],
  routes: (app: FastifyInstance) => void,
): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(coordis, { redis: shared, prefix: `${prefix}-${n++}`, rateLimit });
  routes(app);
  await app.ready();
  return app;
}

async function codes(app: FastifyInstance, url: string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push((await app.inject({ method: "GET", url })).statusCode);
  return out;
}

/** What declaring a route with `rateLimit` under the plugin defaults `defaults` throws. */
async function declareError(defaults: CoordisPluginOptions["rateLimit"], rateLimit: unknown): Promise<unknown> {
  const app = Fastify();
  await app.register(coordis, { redis: shared, prefix: `${prefix}-${n++}`, rateLimit: defaults });
  try {
    app.get("/x", { config: { coordis: { rateLimit: rateLimit as RouteRateLimit } } }, async () => "ok");
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await app.close();
  }
}

describe("a route turns off the plugin defaults' ban and allow list", () => {
  it("ban: false on a route: no 403 there, while the defaults' ban holds on the other routes", async () => {
    const app = await appWith({ rules: one, ban: 1 }, (a) => {
      a.get("/banning", { config: { coordis: { rateLimit: true } } }, async () => "ok");
      a.get("/no-ban", { config: { coordis: { rateLimit: { ban: false } } } }, async () => "ok");
    });
    try {
      expect(await codes(app, "/banning", 3)).toEqual([200, 429, 403]);
      expect(await codes(app, "/no-ban", 4)).toEqual([200, 429, 429, 429]);
    } finally {
      await app.close();
    }
  });

  it("ban: false on a route sharing a group with a banning route: a key banned there is answered by the rules here", async () => {
    const app = await appWith({ rules: one, ban: 1, group: "shared" }, (a) => {
      a.get("/banning", { config: { coordis: { rateLimit: true } } }, async () => "ok");
      a.get("/no-ban", { config: { coordis: { rateLimit: { ban: false } } } }, async () => "ok");
      a.get("/hook", { preHandler: a.coordis.rateLimitHook({ ban: false }) }, async () => "ok");
    });
    try {
      expect(await codes(app, "/banning", 3)).toEqual([200, 429, 403]);
      // The shared budget is spent: 429, never the 403 of a ban this route does not have.
      expect(await codes(app, "/no-ban", 2)).toEqual([429, 429]);
      expect(await codes(app, "/hook", 2)).toEqual([429, 429]);
      expect(await codes(app, "/banning", 1)).toEqual([403]);
    } finally {
      await app.close();
    }
  });

  it("allowList: false (or []) on a route: keys the defaults' allow list lets through are limited there", async () => {
    // app.inject's requests come from 127.0.0.1.
    for (const allowList of [["127.0.0.1"], (_req: unknown, key: string) => key === "127.0.0.1"]) {
      const app = await appWith({ rules: one, allowList }, (a) => {
        a.get("/allowed", { config: { coordis: { rateLimit: true } } }, async () => "ok");
        a.get("/off", { config: { coordis: { rateLimit: { allowList: false } } } }, async () => "ok");
        a.get("/empty", { config: { coordis: { rateLimit: { allowList: [] } } } }, async () => "ok");
      });
      try {
        expect(await codes(app, "/allowed", 3)).toEqual([200, 200, 200]);
        const off = await app.inject({ method: "GET", url: "/off" });
        expect(off.headers.ratelimit).toBe('"m";r=0;t=60');
        expect(await codes(app, "/off", 1)).toEqual([429]);
        expect(await codes(app, "/empty", 2)).toEqual([200, 429]);
      } finally {
        await app.close();
      }
    }
  });

  it("@fastify/rate-limit's ban: -1, ban: 0 and null values are refused, naming the setting and `false`", async () => {
    const name = "route GET /x: config.coordis.rateLimit";
    for (const ban of [-1, 0]) {
      const err = await declareError({ rules: one, ban: 3 }, { ban });
      expect(err, String(ban)).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(`${name}.ban`);
      expect(String(err)).toContain("false for no ban");
    }
    for (const [setting, value] of [
      ["ban", null],
      ["ban", true],
      ["allowList", null],
      ["allowList", true],
    ] as const) {
      const err = await declareError({ rules: one }, { [setting]: value });
      expect(err, `${setting}: ${value}`).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(`${name}.${setting}`);
    }
  });
});

describe("a route's header setting left undefined", () => {
  it("takes the defaults' value, as every other setting does (undefined is not given, false turns it off)", async () => {
    const app = await appWith({ rules: one, headers: { draft: false, legacy: true } }, (a) => {
      const legacy: boolean | undefined = undefined;
      a.get(
        "/x",
        { config: { coordis: { rateLimit: { headers: { draft: undefined, legacy, retryAfter: false } } } } },
        async () => "ok",
      );
    });
    try {
      const res = await app.inject({ method: "GET", url: "/x" });
      expect(res.statusCode).toBe(200);
      expect(res.headers.ratelimit).toBeUndefined();
      expect(res.headers["x-ratelimit-remaining"]).toBe("0");
      const rejected = await app.inject({ method: "GET", url: "/x" });
      expect(rejected.statusCode).toBe(429);
      expect(rejected.headers["retry-after"]).toBeUndefined();
    } finally {
      await app.close();
    }
  });
});
