import { connect, type RedisClient } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("fastify-prefix-root");
const rule = { rules: [{ name: "s", limit: 2, windowMs: 60_000 }] };

let redis: RedisClient;
beforeAll(() => {
  redis = connect(inject("coordisRedisUrl"));
});
afterAll(() => {
  redis.disconnect();
});

let n = 0;
/** `METHOD url -> status` of each request, in order. */
async function answers(app: FastifyInstance, requests: ReadonlyArray<readonly ["GET" | "HEAD", string]>) {
  const out: string[] = [];
  for (const [method, url] of requests) out.push(`${method} ${url} ${(await app.inject({ method, url })).statusCode}`);
  return out;
}

describe("the '/' route of a prefixed context (served at '/v1' and '/v1/')", () => {
  it("HEAD /v1/ spends the budget of GET /v1 and /v1/, as HEAD /v1 does", async () => {
    const app = Fastify();
    await app.register(coordis, { redis, prefix: `${prefix}-${n++}`, rateLimit: rule });
    await app.register(
      async (child) => {
        child.get("/", { config: { coordis: { rateLimit: true } } }, async () => "ok");
      },
      { prefix: "/v1" },
    );
    try {
      expect(
        await answers(app, [
          ["GET", "/v1"],
          ["GET", "/v1/"],
          ["HEAD", "/v1/"],
          ["HEAD", "/v1"],
        ]),
      ).toEqual(["GET /v1 200", "GET /v1/ 200", "HEAD /v1/ 429", "HEAD /v1 429"]);
    } finally {
      await app.close();
    }
  });

  it("a HEAD '/' route of the app's own there counts on the GET route's budget and needs its rules", async () => {
    const app = Fastify();
    await app.register(coordis, { redis, prefix: `${prefix}-${n++}`, rateLimit: rule });
    app.register(
      async (child) => {
        // Declared first: Fastify then adds no HEAD route of its own at /v2/ for the GET route.
        child.head(
          "/",
          { config: { coordis: { rateLimit: { rules: [{ name: "s", limit: 50, windowMs: 60_000 }] } } } },
          async () => "",
        );
        child.get("/", { config: { coordis: { rateLimit: true } } }, async () => "ok");
      },
      { prefix: "/v2" },
    );
    const failed = await app.ready().then(
      () => "declared",
      (err: unknown) => String(err),
    );
    expect(failed).toMatch(/route GET \/v2 counts on the budget of route HEAD \/v2\/ /);
    await app.close();
  });
});
