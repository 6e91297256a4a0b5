import { setTimeout as sleep } from "node:timers/promises";
import { type CoordisObserver, connect, type RedisClient } from "@coordis/core";
import {
  banKey,
  type CoordisPluginOptions,
  coordis,
  type RateLimitExceededContext,
  routeGroup,
} from "@coordis/fastify";
import { freePort, startProxy, testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it, inject as provided } from "vitest";

const url = provided("coordisRedisUrl");
const prefix = testPrefix("fastify-ban");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

let n = 0;
async function appWith(redis: RedisClient, rateLimit: CoordisPluginOptions["rateLimit"]): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(coordis, { redis, prefix: `${prefix}-${n++}`, rateLimit });
  app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
  await app.ready();
  return app;
}

const get = (app: FastifyInstance) => app.inject({ method: "GET", url: "/x" });

describe("ban", () => {
  it("a banned key gets 403 until the longest rule window has passed, even when a shorter rule admits again", async () => {
    const contexts: RateLimitExceededContext[] = [];
    const app = await appWith(shared, {
      rules: [
        { name: "burst", limit: 1, windowMs: 300 },
        { name: "hourly", limit: 100, windowMs: 3_600_000 },
      ],
      ban: 1,
      errorResponseBuilder: (_req, ctx) => {
        contexts.push(ctx);
        return { status: ctx.statusCode };
      },
    });
    try {
      expect((await get(app)).statusCode).toBe(200);
      expect((await get(app)).statusCode).toBe(429); // the one 429 the ban allows
      const first = await get(app);
      expect(first.statusCode).toBe(403);
      // Retry-After names the end of the ban (the hourly window), not the burst rule's next second.
      expect(Number(first.headers["retry-after"])).toBeGreaterThan(3_500);
      await sleep(350); // the burst window ends: the delay under test, not a synchronisation
      const later = await get(app);
      expect(later.statusCode).toBe(403);
      expect(Number(later.headers["retry-after"])).toBeGreaterThan(3_500);
      expect(contexts.map((c) => [c.statusCode, c.ban, c.rule, c.max])).toEqual([
        [429, false, "burst", 1],
        [403, true, "ban", 1],
        [403, true, "ban", 1],
      ]);
      expect(contexts[2]?.ttl).toBeGreaterThan(3_500_000);
    } finally {
      await app.close();
    }
  });

  it("a client cannot count on another key's ban counter by choosing a key that starts with 'ban:'", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: shared,
      prefix: `${prefix}-${n++}`,
      rateLimit: {
        // A rule named like the ban counter's, on the same window: the attacker's budget would be the victim's bans.
        rules: [{ name: "ban", limit: 100, windowMs: 60_000 }],
        ban: 1,
        key: (req) => String(req.headers["x-api-key"] ?? "anonymous"),
      },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    await app.ready();
    try {
      const as = (key: string) => app.inject({ method: "GET", url: "/x", headers: { "x-api-key": key } });
      for (let i = 0; i < 3; i++) expect((await as("ban:victim")).statusCode).toBe(200);
      // The victim was never limited: it is not banned.
      expect((await as("victim")).statusCode).toBe(200);
      // The same with a victim key that is stored hashed (braces): the two hashed keys differ as well.
      for (let i = 0; i < 3; i++) expect((await as("ban:{victim}")).statusCode).toBe(200);
      expect((await as("{victim}")).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it("resetting banKey with a limiter whose rule is named 'ban' lifts a ban", async () => {
    const app = await appWith(shared, { rules: [{ name: "m", limit: 1, windowMs: 60_000 }], ban: 1 });
    try {
      expect((await get(app)).statusCode).toBe(200);
      expect((await get(app)).statusCode).toBe(429);
      expect((await get(app)).statusCode).toBe(403);
      const key = banKey(routeGroup("GET", "/x"), "127.0.0.1");
      await app.coordis.rateLimiter([{ name: "ban", limit: 1, windowMs: 1_000 }]).reset(key);
      // No longer banned; the route's own budget is still spent.
      expect((await get(app)).statusCode).toBe(429);
    } finally {
      await app.close();
    }
  });

  it("the ban ends with its window", async () => {
    const app = await appWith(shared, { rules: [{ name: "burst", limit: 1, windowMs: 300 }], ban: 1 });
    try {
      const seen = [];
      for (let i = 0; i < 3; i++) seen.push((await get(app)).statusCode);
      expect(seen).toEqual([200, 429, 403]);
      await sleep(350); // the ban's window (opened by the 429) ends: the delay under test
      expect((await get(app)).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it("100 concurrent requests on one key: exactly the limit admitted, exactly `ban` 429s, the rest 403", async () => {
    const app = await appWith(shared, { rules: [{ name: "m", limit: 10, windowMs: 60_000 }], ban: 5 });
    try {
      const answers = await Promise.all(Array.from({ length: 100 }, () => get(app)));
      const count = (code: number) => answers.filter((a) => a.statusCode === code).length;
      expect([count(200), count(429), count(403)]).toEqual([10, 5, 85]);
      expect((await get(app)).statusCode).toBe(403);
    } finally {
      await app.close();
    }
  });

  it("Redis unreachable with onRedisError 'fail-closed': 429 by the policy, nobody is banned", async () => {
    const down = connect(`redis://127.0.0.1:${await freePort()}`, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    const app = await appWith(down, {
      rules: [{ name: "m", limit: 5, windowMs: 60_000 }],
      ban: 1,
      onRedisError: "fail-closed",
    });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await get(app);
        expect(res.statusCode).toBe(429);
        expect(res.json()).toMatchObject({ status: 429, title: "Too Many Requests" });
        expect(res.headers["retry-after"]).toBe("1");
      }
    } finally {
      await app.close();
      down.disconnect();
    }
  });

  it("Redis unreachable with onRedisError 'fail-open': a request meets one command timeout, not one per limiter", async () => {
    const proxy = await startProxy({ target: url });
    const redis = connect(proxy.url, { commandTimeoutMs: 300 });
    redis.on("error", () => {});
    // The limiter calls that went to Redis and failed (a call the policy decides without trying Redis reports none).
    const failed: string[] = [];
    const observer: CoordisObserver = { onOperation: (e) => void (e.error !== undefined && failed.push(e.op)) };
    const app = Fastify();
    await app.register(coordis, {
      redis,
      prefix: `${prefix}-${n++}`,
      observer,
      rateLimit: { rules: [{ name: "m", limit: 5, windowMs: 60_000 }], ban: 1, onRedisError: "fail-open" },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    await app.ready();
    try {
      const before = await get(app);
      expect(before.statusCode).toBe(200);
      expect(before.headers.ratelimit).toBe('"m";r=4;t=60');
      proxy.blackhole();
      // The ban is read first (it meets the outage); the route's own limiter learns it from there, without a call.
      const during = await get(app);
      expect(during.statusCode).toBe(200);
      expect(failed).toEqual(["peek"]);
      // Admitted uncounted: no budget is claimed (a full one would invite the client to spend it).
      expect(during.headers.ratelimit).toBeUndefined();
      expect(during.headers["ratelimit-policy"]).toBeUndefined();
      expect((await get(app)).statusCode).toBe(200);
      expect(failed).toEqual(["peek"]);
    } finally {
      await app.close();
      redis.disconnect();
      await proxy.close();
    }
  });

  it("Redis unreachable with the default policy: 503, as on a route without ban", async () => {
    const down = connect(`redis://127.0.0.1:${await freePort()}`, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    const app = await appWith(down, { rules: [{ name: "m", limit: 5, windowMs: 60_000 }], ban: 1 });
    try {
      const res = await get(app);
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ status: 503, title: "Service Unavailable" });
      // When to try again: the limiter asks Redis again after a second.
      expect(res.headers["retry-after"]).toBe("1");
    } finally {
      await app.close();
      down.disconnect();
    }
  });

  it("Redis unreachable, no ban: 503 with Retry-After, unless the route turned Retry-After off", async () => {
    const down = connect(`redis://127.0.0.1:${await freePort()}`, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    const app = await appWith(down, { rules: [{ name: "m", limit: 5, windowMs: 60_000 }] });
    const quiet = await appWith(down, {
      rules: [{ name: "m", limit: 5, windowMs: 60_000 }],
      headers: { retryAfter: false },
    });
    try {
      const res = await get(app);
      expect(res.statusCode).toBe(503);
      expect(res.headers["retry-after"]).toBe("1");
      const off = await get(quiet);
      expect(off.statusCode).toBe(503);
      expect(off.headers["retry-after"]).toBeUndefined();
    } finally {
      await app.close();
      await quiet.close();
      down.disconnect();
    }
  });
});
