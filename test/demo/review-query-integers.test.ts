import { buildApp, loadConfig } from "@coordis/demo";
import { testPrefix } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// An integer of a query is converted from text, but only from a whole number: `?n=1.5` is a 400, not the top 1
// (TypeBox's conversion alone truncates it, and reads `0x2`, ` 2` or `1e1` as numbers too).
let app: FastifyInstance;

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: testPrefix("demo-query-integers"),
    REPLICA_ID: "qi",
    RATE_LIMIT_BURST: "1000000",
    RATE_LIMIT_DAILY: "1000000000",
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  for (let i = 1; i <= 3; i++) {
    const res = await app.inject({ method: "POST", url: "/v1/scores", payload: { playerId: `q${i}`, score: i } });
    expect(res.statusCode).toBe(201);
  }
});

afterAll(async () => {
  await app?.close();
});

describe("demo query integers", () => {
  it.each([
    "/v1/leaderboards/all/top?n=1.5",
    "/v1/leaderboards/all/top?n=2.9",
    "/v1/leaderboards/all/top?n=0x2",
    "/v1/leaderboards/all/top?n=%202",
    "/v1/leaderboards/all/top?n=1e1",
    "/v1/leaderboards/all/players/q2?radius=1.5",
    "/v1/audit?limit=2.5",
  ])("answers %s with a 400 problem naming the integer", async (url) => {
    const res = await app.inject({ method: "GET", url });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json<{ detail: string }>().detail).toMatch(/must be integer/);
  });

  it("still converts whole numbers", async () => {
    const top = await app.inject({ method: "GET", url: "/v1/leaderboards/all/top?n=2" });
    expect(top.statusCode, top.body).toBe(200);
    expect(top.json<{ entries: unknown[] }>().entries).toHaveLength(2);
    const around = await app.inject({ method: "GET", url: "/v1/leaderboards/all/players/q2?radius=1" });
    expect(around.statusCode, around.body).toBe(200);
    expect(around.json<{ neighbours: unknown[] }>().neighbours).toHaveLength(3);
  });
});
