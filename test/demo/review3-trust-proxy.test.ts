import { buildApp, loadConfig } from "@coordis/demo";
import { testPrefix } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// TRUST_PROXY names the proxies believed (docker-compose: uniquelocal, nginx on the private network; here loopback,
// where injected requests come from): the client address is the X-Forwarded-For entry the proxy added. A hop count
// is refused: Fastify 5.12 trusts no proxy for one, so behind a proxy every client was the proxy's address (one API
// budget, one dashboard key, one stream cap for all), and a count cannot tell the proxy from a direct client anyway.
const apps: FastifyInstance[] = [];

async function replica(trustProxy: string): Promise<FastifyInstance> {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: testPrefix("demo-trust-proxy"),
    REPLICA_ID: "tp",
    LOG_LEVEL: "silent",
    TRUST_PROXY: trustProxy,
  });
  const app = await buildApp(config, { jobs: false, registry: new Registry() });
  apps.push(app);
  return app;
}

let behindProxy: FastifyInstance;
let direct: FastifyInstance;

beforeAll(async () => {
  behindProxy = await replica("loopback");
  direct = await replica("");
});

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

/** The dashboard key id a request from 127.0.0.1 with `forwardedFor` gets (one key per client address). */
async function keyIdOf(app: FastifyInstance, forwardedFor: string): Promise<string> {
  const res = await app.inject({ url: "/v1/dashboard", headers: { "x-forwarded-for": forwardedFor } });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { apiKey: { id: string } }).apiKey.id;
}

describe("demo TRUST_PROXY", () => {
  it("a trusted proxy's X-Forwarded-For entry is the client address", async () => {
    const a = await keyIdOf(behindProxy, "203.0.113.7");
    const b = await keyIdOf(behindProxy, "203.0.113.8");
    expect(a).not.toBe(b);
    // The proxy's own entry is the last: what the client wrote itself before it changes nothing.
    expect(await keyIdOf(behindProxy, "198.51.100.1, 203.0.113.7")).toBe(a);
    // Two clients behind the proxy spend two budgets of the public API.
    const spend = async (forwardedFor: string) =>
      (await behindProxy.inject({ url: "/v1/leaderboards/all/top", headers: { "x-forwarded-for": forwardedFor } }))
        .headers.ratelimit;
    expect(await spend("203.0.113.20")).toBe(await spend("203.0.113.21"));
  });

  it("a hop count is refused at start, naming the variable and what to give instead", () => {
    expect(() => loadConfig({ REDIS_URL: inject("coordisRedisUrl"), TRUST_PROXY: "1" })).toThrow(
      /TRUST_PROXY=1: a hop count .*uniquelocal/,
    );
  });

  it("off, X-Forwarded-For is ignored", async () => {
    const a = await keyIdOf(direct, "203.0.113.7");
    expect(await keyIdOf(direct, "203.0.113.8")).toBe(a);
  });
});
