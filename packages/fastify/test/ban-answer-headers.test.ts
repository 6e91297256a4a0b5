import { connect, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it, inject as provided } from "vitest";

const url = provided("coordisRedisUrl");
const prefix = testPrefix("fastify-ban-headers");
const one = [{ name: "strict", limit: 1, windowMs: 60_000 }];
const ten = [{ name: "all", limit: 10, windowMs: 60_000 }];
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

describe("the fields of a 403 (ban) answer", () => {
  it("a ban's 403 carries Retry-After until the ban ends and no budget field, legacy set included", async () => {
    const app = Fastify();
    await app.register(coordis, {
      redis: shared,
      prefix: `${prefix}-${n++}`,
      rateLimit: { rules: one, ban: 1, headers: { legacy: true } },
    });
    app.get("/x", { config: { coordis: { rateLimit: true } } }, async () => "ok");
    try {
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await app.inject({ method: "GET", url: "/x" }));
      expect(answers.map((a) => a.statusCode)).toEqual([200, 429, 403]);
      expect(budgetFields(answers[1]?.headers ?? {})).toEqual(BUDGET_FIELDS);
      const banned = answers[2]?.headers ?? {};
      expect(budgetFields(banned)).toEqual([]);
      expect(Number(banned["retry-after"])).toBeGreaterThan(55);
    } finally {
      await app.close();
    }
  });

  it("a rejection by a second limit of the request carries its own fields, none of the first limit's", async () => {
    const app = Fastify();
    await app.register(coordis, { redis: shared, prefix: `${prefix}-${n++}` });
    app.get(
      "/login",
      {
        // The route's own limit (onRequest, legacy fields on) admits; the app's stricter hook (preHandler) rejects.
        config: { coordis: { rateLimit: { rules: ten, headers: { legacy: true } } } },
        preHandler: app.coordis.rateLimitHook({ group: "login", rules: one, ban: 1 }),
      },
      async () => "ok",
    );
    try {
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await app.inject({ method: "GET", url: "/login" }));
      expect(answers.map((a) => a.statusCode)).toEqual([200, 429, 403]);
      const rejected = answers[1]?.headers ?? {};
      expect(rejected.ratelimit).toBe('"strict";r=0;t=60');
      expect(rejected["ratelimit-policy"]).toBe('"strict";q=1;w=60');
      expect(rejected["x-ratelimit-remaining"]).toBeUndefined();
      const banned = answers[2]?.headers ?? {};
      expect(budgetFields(banned)).toEqual([]);
      expect(Number(banned["retry-after"])).toBeGreaterThan(55);
    } finally {
      await app.close();
    }
  });
});
