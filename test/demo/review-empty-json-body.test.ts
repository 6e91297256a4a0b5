import { buildApp, loadConfig } from "@coordis/demo";
import { testPrefix } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// `POST /v1/admin/keys` takes an optional body ("no body: one" key), and clients often send
// `content-type: application/json` on a POST without a body (curl -H ... -X POST, fetch with default headers):
// Fastify's JSON parser answered that with a 400. An empty JSON body is no body; a route that needs one still says so.
const token = "empty-body-admin-token";
let app: FastifyInstance;

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: testPrefix("demo-empty-body"),
    REPLICA_ID: "eb",
    ADMIN_TOKEN: token,
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
});

afterAll(async () => {
  await app?.close();
});

const post = (url: string, headers: Record<string, string>, payload?: string) =>
  app.inject({ method: "POST", url, headers, ...(payload === undefined ? {} : { payload }) });

describe("demo empty JSON bodies", () => {
  it("issues one key for a POST /v1/admin/keys with content-type application/json and no body", async () => {
    const res = await post("/v1/admin/keys", { authorization: `Bearer ${token}`, "content-type": "application/json" });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json<{ keys: unknown[] }>().keys).toHaveLength(1);
  });

  it("still answers 400 where a body is required, and for malformed or poisoned JSON", async () => {
    const json = { "content-type": "application/json" };
    for (const payload of [undefined, " ", "{bad", '{"__proto__":{"x":1},"playerId":"a","score":1}']) {
      const res = await post("/v1/scores", json, payload);
      expect(res.statusCode, `${JSON.stringify(payload)}: ${res.body}`).toBe(400);
      expect(res.headers["content-type"]).toContain("application/problem+json");
    }
    const big = await post("/v1/scores", json, JSON.stringify({ playerId: "a", score: 1, name: "x".repeat(20_000) }));
    expect(big.statusCode).toBe(413);
  });
});
