import { connect, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { freePort, testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it, inject as provided } from "vitest";

const url = provided("coordisRedisUrl");
const prefix = testPrefix("fastify-answer-fields");
const BUDGET_FIELDS = [
  "ratelimit",
  "ratelimit-policy",
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
];

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

let n = 0;
const budgetFields = (headers: Record<string, unknown>) => BUDGET_FIELDS.filter((h) => headers[h] !== undefined);

/** A route limited twice: its own limit (onRequest) and the app's hook (preHandler), both with the legacy set. */
async function twoLimits(route: number, hook: number): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(coordis, { redis: shared, prefix: `${prefix}-${n++}` });
  app.get(
    "/x",
    {
      config: {
        coordis: {
          rateLimit: { rules: [{ name: "route", limit: route, windowMs: 60_000 }], headers: { legacy: true } },
        },
      },
      preHandler: app.coordis.rateLimitHook({
        group: "hook",
        rules: [{ name: "hook", limit: hook, windowMs: 30_000 }],
        headers: { legacy: true },
      }),
    },
    async () => "ok",
  );
  return app;
}

describe("an admitted request that two limits counted", () => {
  it("carries both limits' draft fields and the legacy set of the one with fewer units left (the hook's)", async () => {
    const app = await twoLimits(10, 3);
    try {
      const res = await app.inject({ method: "GET", url: "/x" });
      expect(res.statusCode).toBe(200);
      expect(res.headers["ratelimit-policy"]).toBe('"route";q=10;w=60, "hook";q=3;w=30');
      expect(res.headers.ratelimit).toBe('"route";r=9;t=60, "hook";r=2;t=30');
      expect([res.headers["x-ratelimit-limit"], res.headers["x-ratelimit-remaining"]]).toEqual(["3", "2"]);
      expect(res.headers["x-ratelimit-reset"]).toBe("30");
    } finally {
      await app.close();
    }
  });

  it("keeps the route's legacy set when the route's limit has fewer units left", async () => {
    const app = await twoLimits(2, 50);
    try {
      const res = await app.inject({ method: "GET", url: "/x" });
      expect(res.statusCode).toBe(200);
      expect(res.headers.ratelimit).toBe('"route";r=1;t=60, "hook";r=49;t=30');
      expect([res.headers["x-ratelimit-limit"], res.headers["x-ratelimit-remaining"]]).toEqual(["2", "1"]);
      expect(res.headers["x-ratelimit-reset"]).toBe("60");
    } finally {
      await app.close();
    }
  });

  it("a rejection by the second limit still carries that limit's fields alone", async () => {
    const app = await twoLimits(10, 1);
    try {
      expect((await app.inject({ method: "GET", url: "/x" })).statusCode).toBe(200);
      const res = await app.inject({ method: "GET", url: "/x" });
      expect(res.statusCode).toBe(429);
      expect(res.headers["ratelimit-policy"]).toBe('"hook";q=1;w=30');
      expect(res.headers.ratelimit).toBe('"hook";r=0;t=30');
      expect(res.headers["x-ratelimit-limit"]).toBe("1");
    } finally {
      await app.close();
    }
  });
});

/**
 * A route limited by the plugin defaults' rules and a hook of the app's that takes them too (`rateLimitHook()` without
 * rules): two budgets under one policy name. `cost` of each spends their budgets unevenly.
 */
async function sameRules(routeCost: number, hookCost: number): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(coordis, {
    redis: shared,
    prefix: `${prefix}-${n++}`,
    rateLimit: { rules: [{ name: "burst", limit: 5, windowMs: 60_000 }], headers: { legacy: true } },
  });
  app.get(
    "/x",
    {
      config: { coordis: { rateLimit: { cost: routeCost } } },
      preHandler: app.coordis.rateLimitHook({ group: "hook", cost: hookCost }),
    },
    async () => "ok",
  );
  return app;
}

describe("two limits of one request under the same policy (the plugin defaults' rules)", () => {
  it("list the policy once, with the units left of the limit that has fewer (the second's)", async () => {
    const app = await sameRules(1, 3);
    try {
      const res = await app.inject({ method: "GET", url: "/x" });
      expect(res.statusCode).toBe(200);
      expect(res.headers["ratelimit-policy"]).toBe('"burst";q=5;w=60');
      expect(res.headers.ratelimit).toBe('"burst";r=2;t=60');
      expect(res.headers["x-ratelimit-remaining"]).toBe("2");
    } finally {
      await app.close();
    }
  });

  it("list the policy once, with the units left of the limit that has fewer (the first's)", async () => {
    const app = await sameRules(4, 1);
    try {
      const res = await app.inject({ method: "GET", url: "/x" });
      expect(res.statusCode).toBe(200);
      expect(res.headers["ratelimit-policy"]).toBe('"burst";q=5;w=60');
      expect(res.headers.ratelimit).toBe('"burst";r=1;t=60');
    } finally {
      await app.close();
    }
  });
});

describe("a rejection by the fail-closed policy (Redis unreachable)", () => {
  it("is a 429 with Retry-After that says the store is unreachable and claims no budget", async () => {
    const down = connect(`redis://127.0.0.1:${await freePort()}`, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    const app = Fastify();
    await app.register(coordis, {
      redis: down,
      prefix: `${prefix}-${n++}`,
      rateLimit: {
        rules: [{ name: "m", limit: 5, windowMs: 60_000 }],
        onRedisError: "fail-closed",
        headers: { legacy: true, onAllowed: true },
      },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    try {
      const res = await app.inject({ method: "GET", url: "/x" });
      expect(res.statusCode).toBe(429);
      expect(res.headers["retry-after"]).toBe("1");
      expect(budgetFields(res.headers)).toEqual([]);
      const body = res.json();
      expect(body).toMatchObject({ status: 429, title: "Too Many Requests" });
      expect(body.detail).toMatch(/cannot reach its store/);
      expect(body.detail).not.toMatch(/exceeded/);
    } finally {
      await app.close();
      down.disconnect();
    }
  });
});
