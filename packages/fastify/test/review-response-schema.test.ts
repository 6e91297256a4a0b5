import { connect, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { freePort, testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance, type FastifySchema } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-response-schema");

let shared: RedisClient;
beforeAll(() => {
  shared = connect(url);
});
afterAll(() => {
  shared.disconnect();
});

// An app's own error shape, as apps documented with @fastify/swagger declare it for every error status.
const appError = {
  type: "object",
  required: ["statusCode", "error", "message"],
  properties: { statusCode: { type: "integer" }, error: { type: "string" }, message: { type: "string" } },
};
const schemas: Record<string, FastifySchema> = {
  "4xx and 5xx": { response: { 200: { type: "string" }, "4xx": appError, "5xx": appError } },
  "429 and 503, without required fields": {
    response: {
      200: { type: "string" },
      429: { ...appError, required: [] },
      500: { ...appError, required: [] },
      503: { ...appError, required: [] },
    },
  },
  default: { response: { 200: { type: "string" }, default: appError } },
};

let n = 0;
async function appWith(redis: RedisClient): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  await app.register(coordis, {
    redis,
    prefix: `${prefix}-${n++}`,
    rateLimit: { rules: [{ name: "one", limit: 1, windowMs: 60_000 }] },
  });
  for (const [i, schema] of Object.values(schemas).entries()) {
    app.get(`/r${i}`, { schema, config: { coordis: { rateLimit: true } } }, async () => "ok");
    app.get(
      `/bad-key${i}`,
      { schema, config: { coordis: { rateLimit: { key: () => undefined as unknown as string } } } },
      async () => "ok",
    );
  }
  await app.ready();
  return app;
}

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number) {
  expect(res.statusCode).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(["detail", "status", "title", "type"]);
  expect(body.status).toBe(status);
}

describe("the plugin's problem+json answers on routes with response schemas for error statuses", () => {
  it("429 and 500 keep their problem details whatever the route's schema for the status", async () => {
    const app = await appWith(shared);
    try {
      for (const [i, what] of Object.keys(schemas).entries()) {
        expect((await app.inject({ method: "GET", url: `/r${i}` })).statusCode, what).toBe(200);
        const limited = await app.inject({ method: "GET", url: `/r${i}` });
        expectProblem(limited, 429);
        expect(limited.json().detail, what).toContain('"one"');
        expect(limited.headers["retry-after"], what).toBeDefined();
        const badKey = await app.inject({ method: "GET", url: `/bad-key${i}` });
        expectProblem(badKey, 500);
        expect(badKey.json().detail, what).toContain(`GET /bad-key${i}`);
      }
    } finally {
      await app.close();
    }
  });

  it("503 while Redis is unreachable keeps its problem details", async () => {
    const down = connect(`redis://127.0.0.1:${await freePort()}`, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    const app = await appWith(down);
    try {
      for (const [i] of Object.keys(schemas).entries()) {
        const res = await app.inject({ method: "GET", url: `/r${i}` });
        expectProblem(res, 503);
        expect(res.json()).toMatchObject({ title: "Service Unavailable" });
      }
    } finally {
      await app.close();
      down.disconnect();
    }
  });
});
