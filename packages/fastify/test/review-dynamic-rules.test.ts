import { connect, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import type { Rule } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-dynamic-rules");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

describe("rules chosen per request", () => {
  it("rule sets a rules function returns that are invalid do not count against the cap on distinct rule sets", async () => {
    const app = Fastify({ logger: false });
    // Per plan; a suspended plan's limit of 0 is no valid rule (those requests fail), over and over.
    const plans: Record<string, Rule[]> = {
      suspended: [{ name: "plan", limit: 0, windowMs: 60_000 }],
      pro: [{ name: "plan", limit: 100, windowMs: 60_000 }],
    };
    try {
      await app.register(coordis, {
        redis: shared,
        prefix,
        rateLimit: { key: (req) => String(req.headers["x-user"]) },
      });
      app.get(
        "/r",
        {
          config: {
            coordis: { rateLimit: { rules: (req) => plans[String(req.headers["x-plan"])] as Rule[] } },
          },
        },
        async () => "ok",
      );
      await app.ready();
      const call = (plan: string) =>
        app.inject({ method: "GET", url: "/r", headers: { "x-plan": plan, "x-user": "u" } });
      for (let i = 0; i < 300; i++) expect((await call("suspended")).statusCode).toBe(500);
      // One valid rule set so far: the first pro request is served, not refused as one rule set too many.
      const pro = await call("pro");
      expect(pro.statusCode, pro.body).toBe(200);
      expect(pro.headers["ratelimit-policy"]).toBe('"plan";q=100;w=60');
    } finally {
      await app.close();
    }
  });
});
