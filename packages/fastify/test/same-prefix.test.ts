import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type CoordisPluginOptions, coordis } from "@coordis/fastify";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it, inject as provided } from "vitest";

const url = provided("coordisRedisUrl");
const prefix = testPrefix("fastify-same-prefix");
const two = [{ name: "m", limit: 2, windowMs: 60_000 }];
const hundred = [{ name: "m", limit: 100, windowMs: 60_000 }];

let shared: RedisClient;
let other: RedisServer;
let otherClient: RedisClient;
beforeAll(async () => {
  shared = connect(url);
  other = await startRedis();
  otherClient = connect(other.url);
});
afterAll(async () => {
  shared.disconnect();
  otherClient.disconnect();
  await other.stop();
});

let n = 0;

/** A registration of the plugin on `app` (or a child context of it) and one route `path` limited by `rateLimit`. */
async function withRoute(
  app: FastifyInstance,
  options: CoordisPluginOptions,
  path: string,
  rateLimit: true | { rules?: typeof two; group?: string },
): Promise<void> {
  await app.register(coordis, options);
  app.get(path, { config: { coordis: { rateLimit } } }, async () => "ok");
}

async function codes(app: FastifyInstance, url: string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push((await app.inject({ method: "GET", url })).statusCode);
  return out;
}

/** What declaring `path` on a second app with `options` throws (undefined when it is declared). */
async function secondAppError(
  options: CoordisPluginOptions,
  path: string,
  rateLimit: true | { rules?: typeof two; group?: string },
): Promise<unknown> {
  const app = Fastify();
  try {
    await withRoute(app, options, path, rateLimit);
    await app.ready();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await app.close();
  }
}

describe("registrations of the plugin sharing a prefix", () => {
  it("two sibling contexts sharing a group under other rules: the second route is refused, naming the first", async () => {
    const p = `${prefix}-${n++}`;
    const app = Fastify();
    app.register(async (child) => withRoute(child, { redis: shared, prefix: p }, "/a", { rules: two, group: "api" }));
    app.register(async (child) =>
      withRoute(child, { redis: shared, prefix: p }, "/b", { rules: hundred, group: "api" }),
    );
    const err = await app.ready().then(
      () => undefined,
      (e: unknown) => e,
    );
    await app.close();
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe("route GET /b: config.coordis.rateLimit.rules");
    expect(String(err)).toContain(
      `route GET /a, declared in another registration of @coordis/fastify with prefix "${p}"`,
    );
    expect(String(err)).toContain("different prefixes");
  });

  it("two apps with one route each: refused under other rules, one shared budget under the same rules", async () => {
    const p = `${prefix}-${n++}`;
    const a = Fastify();
    await withRoute(a, { redis: shared, prefix: p }, "/x", { rules: two });
    await a.ready();
    try {
      // The same route under other rules in a second app: the two would count one budget in Redis.
      const err = await secondAppError({ redis: shared, prefix: p }, "/x", { rules: hundred });
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe("route GET /x: config.coordis.rateLimit.rules");
      // A shared group, and a group that is another one followed by ":", likewise.
      const g = Fastify();
      await withRoute(g, { redis: shared, prefix: `${p}-g` }, "/g", { rules: two, group: "api" });
      await g.ready();
      try {
        const group = await secondAppError({ redis: shared, prefix: `${p}-g` }, "/h", { rules: hundred, group: "api" });
        expect(group).toBeInstanceOf(InvalidArgumentError);
        expect((group as InvalidArgumentError).argument).toBe("route GET /h: config.coordis.rateLimit.rules");
        const nested = await secondAppError({ redis: shared, prefix: `${p}-g` }, "/v2", {
          rules: two,
          group: "api:v2",
        });
        expect(nested).toBeInstanceOf(InvalidArgumentError);
        expect((nested as InvalidArgumentError).argument).toBe("route GET /v2: config.coordis.rateLimit.group");
      } finally {
        await g.close();
      }
      // The same rules: two replicas of one app in one process, one budget per key, as across processes.
      const b = Fastify();
      await withRoute(b, { redis: shared, prefix: p }, "/x", { rules: two });
      await b.ready();
      try {
        expect(await codes(a, "/x", 1)).toEqual([200]);
        expect(await codes(b, "/x", 2)).toEqual([200, 429]);
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
  });

  it("an app registered before another app with the prefix closed is still checked against the apps after it", async () => {
    const p = `${prefix}-${n++}`;
    const first = Fastify();
    await withRoute(first, { redis: shared, prefix: p }, "/x", { rules: two, group: "api" });
    await first.ready();
    const waiting = Fastify();
    await waiting.register(coordis, { redis: shared, prefix: p });
    await first.close();
    const third = Fastify();
    await withRoute(third, { redis: shared, prefix: p }, "/y", { rules: two, group: "api" });
    await third.ready();
    try {
      let err: unknown;
      try {
        waiting.get("/z", { config: { coordis: { rateLimit: { rules: hundred, group: "api" } } } }, async () => "ok");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(String(err)).toContain("route GET /y, declared in another registration");
    } finally {
      await third.close();
      await waiting.close();
    }
  });

  it("two apps built by one factory, each with its own rules function: accepted, one budget (replicas)", async () => {
    const p = `${prefix}-${n++}`;
    const build = async () => {
      const app = Fastify();
      await app.register(coordis, { redis: shared, prefix: p });
      // A closure per app: never the same function object as the other app's.
      const rules = () => two;
      app.get("/f", { config: { coordis: { rateLimit: { rules, group: "plans" } } } }, async () => "ok");
      await app.ready();
      return app;
    };
    const a = await build();
    const b = await build();
    try {
      expect(await codes(a, "/f", 1)).toEqual([200]);
      expect(await codes(b, "/f", 2)).toEqual([200, 429]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("other rules are accepted on another Redis server, with another prefix, or once the other app closed", async () => {
    const p = `${prefix}-${n++}`;
    const a = Fastify();
    await withRoute(a, { redis: shared, prefix: p }, "/x", { rules: two, group: "api" });
    await a.ready();
    try {
      expect(await secondAppError({ redis: otherClient, prefix: p }, "/x", { rules: hundred, group: "api" })).toBe(
        undefined,
      );
      expect(
        await secondAppError({ redis: shared, prefix: `${p}-other` }, "/x", { rules: hundred, group: "api" }),
      ).toBe(undefined);
    } finally {
      await a.close();
    }
    expect(await secondAppError({ redis: shared, prefix: p }, "/x", { rules: hundred, group: "api" })).toBe(undefined);
  });
});
