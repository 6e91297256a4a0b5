import { buildApp, loadConfig } from "@coordis/demo";
import { testPrefix } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// The dashboard's data routes read Redis tens of times per call: one budget per client address covers all of them,
// apart from the API budget (the page's polling must not eat a visitor's API calls).
const LIMIT = 6;
const BURST = 5;
let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(
    loadConfig({
      REDIS_URL: inject("coordisRedisUrl"),
      COORDIS_PREFIX: testPrefix("demo-dash-limit"),
      REPLICA_ID: "dash",
      DASHBOARD_RATE_LIMIT: String(LIMIT),
      RATE_LIMIT_BURST: String(BURST),
      RATE_LIMIT_BURST_WINDOW_MS: "600000",
      TRUST_PROXY: "true",
      LOG_LEVEL: "silent",
    }),
    { jobs: false, registry: new Registry() },
  );
});

afterAll(async () => {
  await app?.close();
});

const get = (url: string, address: string) =>
  app.inject({ method: "GET", url, headers: { "x-forwarded-for": address } });

describe("demo dashboard data routes", () => {
  it("share one budget per client address, and spend no API budget", async () => {
    const address = "10.9.0.1";
    const keyId = ((await get("/v1/dashboard", address)).json() as { apiKey: { id: string } }).apiKey.id;
    const urls = ["/v1/jobs", `/v1/ratelimit/${keyId}`, "/v1/queue", "/v1/activity", "/v1/dashboard"];
    const statuses = [];
    for (const url of urls) statuses.push((await get(url, address)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    // LIMIT calls made: every route now answers 429 to this address, as problem+json with Retry-After.
    for (const url of urls) {
      const res = await get(url, address);
      expect(res.statusCode, url).toBe(429);
      expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
    }
    // Another address has its own budget; the API budget of this one is whole.
    expect((await get("/v1/queue", "10.9.0.2")).statusCode).toBe(200);
    expect((await get("/v1/leaderboards/all/top?n=1", address)).statusCode).toBe(200);
    const peek = await app.coordis.peekRateLimit(`key:${keyId}`, { group: "api" });
    expect(peek.rules.find((r) => r.name === "burst")?.remaining).toBe(BURST);
  });
});
