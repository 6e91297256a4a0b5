import { buildApp, loadConfig } from "@coordis/demo";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_WAIT } from "./replicas.js";

// The dashboard's data routes while Redis does not answer (killed, or frozen past the command timeout): 503
// problem+json like every other route, never a 500, including the charts' series, which the demo reads with its own
// pipelined commands rather than through a primitive. A Redis of this file's own, so killing it disturbs no one.
const prefix = testPrefix("demo-down");
let redis: RedisServer;
let app: FastifyInstance;

beforeAll(async () => {
  redis = await startRedis({ leastPrivilege: true });
  const config = loadConfig({ REDIS_URL: redis.url, COORDIS_PREFIX: prefix, REPLICA_ID: "down", LOG_LEVEL: "silent" });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
});

afterAll(async () => {
  if (redis?.paused) redis.resume();
  await app?.close();
  await redis?.stop();
});

const get = (url: string) => app.inject({ method: "GET", url });

async function expectUnavailable(url: string): Promise<void> {
  const res = await get(url);
  expect(res.statusCode, `${url}: ${res.body}`).toBe(503);
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status: 503, title: "Service Unavailable" });
}

const ROUTES = ["/v1/activity", "/v1/queue", "/v1/dashboard", "/v1/jobs"];

describe("demo dashboard data while Redis is down", () => {
  it("answers 503 problem+json while Redis is killed, and 200 again once it is back", async () => {
    for (const url of ROUTES) expect((await get(url)).statusCode, url).toBe(200);
    await redis.kill();
    try {
      for (const url of ROUTES) await expectUnavailable(url);
    } finally {
      await redis.restart();
    }
    await waitUntil("the charts to answer again", async () => (await get("/v1/activity")).statusCode === 200, {
      ...DEMO_WAIT,
      timeoutMs: 20_000,
    });
  });

  it("answers 503 problem+json while Redis is frozen past the command timeout", async () => {
    await waitUntil("the charts to answer", async () => (await get("/v1/activity")).statusCode === 200, DEMO_WAIT);
    redis.pause();
    try {
      await expectUnavailable("/v1/activity");
      await expectUnavailable("/v1/queue");
    } finally {
      redis.resume();
    }
    await waitUntil(
      "the charts to answer again",
      async () => (await get("/v1/activity")).statusCode === 200,
      DEMO_WAIT,
    );
  });
});
