import { randomBytes } from "node:crypto";
import { connect, entityKeys, type RedisClient } from "@coordis/core";
import { ApiKeys, buildApp, loadConfig } from "@coordis/demo";
import { testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DEMO_WAIT } from "./replicas.js";

// Two replicas sharing the API key secret they agreed on through Redis, and Redis losing it (a restart without
// persistence, a FLUSHALL): a replica started afterwards writes a new secret, and the running ones must follow it.
const prefix = testPrefix("demo-secret");
const apps: FastifyInstance[] = [];
let admin: RedisClient;

beforeAll(async () => {
  for (const id of ["a", "b"]) {
    const config = loadConfig({
      REDIS_URL: inject("coordisRedisUrl"),
      COORDIS_PREFIX: prefix,
      REPLICA_ID: id,
      RATE_LIMIT_BURST: "1000000",
      RATE_LIMIT_DAILY: "1000000000",
      LOG_LEVEL: "silent",
    });
    apps.push(await buildApp(config, { jobs: false, registry: new Registry(), secretCheckMs: 50 }));
  }
  admin = connect(inject("coordisAdminRedisUrl"));
});

afterAll(async () => {
  admin?.disconnect();
  for (const app of apps) await app.close();
});

const status = (app: FastifyInstance, key: string) =>
  app
    .inject({ method: "GET", url: "/v1/leaderboards/all/top?n=1", headers: { "x-api-key": key } })
    .then((r) => r.statusCode);

describe("the demo's shared API key secret", () => {
  it("replicas adopt the secret a replica wrote after Redis lost the one they shared", async () => {
    const [a, b] = apps as [FastifyInstance, FastifyInstance];
    const key = entityKeys(prefix, "apikeys", "secret").base;
    const before = new ApiKeys((await admin.get(key)) as string).issue();
    expect(await status(a, before)).toBe(200);
    expect(await status(b, before)).toBe(200);
    // Redis loses the secret and a replica starting now writes its own (SET NX finds the key gone).
    const fresh = randomBytes(32).toString("base64url");
    await admin.set(key, fresh);
    const after = new ApiKeys(fresh).issue();
    await waitUntil(
      "both replicas to verify keys of the new shared secret",
      async () => (await status(a, after)) === 200 && (await status(b, after)) === 200,
      DEMO_WAIT,
    );
    expect(await status(a, before)).toBe(401);
    // And the key gone again: a replica writes its own secret back, so every replica still agrees.
    await admin.del(key);
    await waitUntil("the secret to be written back", async () => (await admin.get(key)) === fresh, DEMO_WAIT);
    expect(await status(b, after)).toBe(200);
  });
});
