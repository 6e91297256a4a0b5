import { randomBytes } from "node:crypto";
import { buildApp, loadConfig } from "@coordis/demo";
import { testPrefix } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// The demo's API keys, in-process against the suite's Redis: only keys the service issued get a budget of their own,
// every other x-api-key is refused before the limiter runs, and the dashboard's key is per client address.
const token = "apikeys-admin-token";
const BURST = 5;
let app: FastifyInstance;
const prefix = testPrefix("demo-keys");

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: prefix,
    ADMIN_TOKEN: token,
    REPLICA_ID: "keys",
    // One long window, so nothing refills while a test runs.
    RATE_LIMIT_BURST: String(BURST),
    RATE_LIMIT_BURST_WINDOW_MS: "600000",
    // Addresses come from X-Forwarded-For, so one test can act as several clients.
    TRUST_PROXY: "true",
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
});

afterAll(async () => {
  await app?.close();
});

let addressCount = 0;
/** A client address of its own per call (X-Forwarded-For, trusted here), so tests never share an address budget. */
const freshAddress = () => `10.1.${Math.floor(addressCount / 250)}.${(addressCount++ % 250) + 1}`;
const top = (address: string, key?: string) =>
  app.inject({
    method: "GET",
    url: "/v1/leaderboards/all/top?n=1",
    headers: { "x-forwarded-for": address, ...(key === undefined ? {} : { "x-api-key": key }) },
  });
const issue = async (count: number) => {
  const res = await app.inject({
    method: "POST",
    url: "/v1/admin/keys",
    headers: { authorization: `Bearer ${token}`, "x-forwarded-for": freshAddress() },
    payload: { count },
  });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { keys: Array<{ id: string; key: string }> }).keys;
};
const remaining = async (id: string) => {
  const res = await app.inject({ method: "GET", url: `/v1/ratelimit/${id}` });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { rules: Array<{ name: string; remaining: number }> }).rules.find((r) => r.name === "burst")
    ?.remaining;
};
const statuses = (responses: Array<{ statusCode: number }>) => {
  const counts: Record<number, number> = {};
  for (const r of responses) counts[r.statusCode] = (counts[r.statusCode] ?? 0) + 1;
  return counts;
};
const randomKey = () => `${randomBytes(9).toString("base64url")}.${randomBytes(32).toString("base64url")}`;

describe("demo API keys", () => {
  it("gives rotating unissued keys no budget: 30 random keys from one address get no 200", async () => {
    const address = freshAddress();
    const wellFormed = [];
    for (let i = 0; i < 30; i++) wellFormed.push(await top(address, randomKey()));
    expect(statuses(wellFormed)).toEqual({ 401: 30 });
    const anything = [];
    for (let i = 0; i < 30; i++) anything.push(await top(address, `k${i}-${randomBytes(4).toString("hex")}`));
    expect(statuses(anything)).toEqual({ 400: 30 });
    for (const r of [...wellFormed, ...anything]) {
      expect(r.headers["content-type"]).toMatch(/^application\/problem\+json/);
      // Refused before the limiter: no budget was consulted, so no RateLimit fields.
      expect(r.headers.ratelimit).toBeUndefined();
    }
    // The address budget is whole: the first BURST keyless requests pass, the rest are limited.
    const keyless = [];
    for (let i = 0; i < BURST + 3; i++) keyless.push(await top(address));
    expect(statuses(keyless)).toEqual({ 200: BURST, 429: 3 });
  });

  it("validates x-api-key on every route before any budget is spent", async () => {
    const long = "a".repeat(2_000);
    const urls = [
      "/v1/leaderboards/all/top",
      "/v1/leaderboards/daily/players/ada",
      "/v1/players/ada",
      "/v1/audit",
      "/v1/dashboard",
      "/v1/jobs",
      "/v1/ratelimit/someone",
      "/healthz",
    ];
    for (const url of urls) {
      for (const value of [long, "demo", "", "a.b", `${"x".repeat(33)}.${"y".repeat(43)}`]) {
        const res = await app.inject({ method: "GET", url, headers: { "x-api-key": value } });
        expect(res.statusCode, `${url} with a ${value.length}-character key: ${res.body}`).toBe(400);
        expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
        expect(res.headers.ratelimit).toBeUndefined();
      }
      const forged = await app.inject({ method: "GET", url, headers: { "x-api-key": randomKey() } });
      expect(forged.statusCode, `${url} with a forged key`).toBe(401);
      expect(forged.headers["www-authenticate"]).toMatch(/^ApiKey /);
    }
    // A malformed key on a limited POST is refused before the limiter (no RateLimit fields) and before the body.
    const post = await app.inject({
      method: "POST",
      url: "/v1/scores",
      headers: { "x-api-key": "not a key", "x-forwarded-for": freshAddress() },
      payload: { playerId: "ada", score: 1 },
    });
    expect(post.statusCode).toBe(400);
    expect(post.headers.ratelimit).toBeUndefined();
  });

  it("budgets each issued key on its own, and a tampered key is refused without touching it", async () => {
    const [a, b] = (await issue(2)) as [{ id: string; key: string }, { id: string; key: string }];
    expect(a.key.startsWith(`${a.id}.`)).toBe(true);
    expect(a.id).not.toBe(b.id);
    const address = freshAddress();
    // Tampering: a's id with b's signature, a flipped character, a's id alone.
    const sig = (k: string) => k.slice(k.indexOf(".") + 1);
    // The last of the signature's 43 characters holds 4 bits of it and 2 that decode to nothing: flip one of each.
    const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = B64URL.indexOf(a.key.slice(-1));
    const flipped = (bit: number) => `${a.key.slice(0, -1)}${B64URL[last ^ bit]}`;
    for (const bad of [`${a.id}.${sig(b.key)}`, flipped(32), flipped(1)]) {
      expect((await top(address, bad)).statusCode).toBe(401);
    }
    expect((await top(address, a.id)).statusCode).toBe(400);
    expect(await remaining(a.id)).toBe(BURST);

    const spent = [];
    for (let i = 0; i < BURST + 2; i++) spent.push(await top(address, a.key));
    expect(statuses(spent)).toEqual({ 200: BURST, 429: 2 });
    expect(spent[0]?.headers.ratelimit).toMatch(new RegExp(`^"burst";r=${BURST - 1};t=\\d+$`));
    expect(await remaining(a.id)).toBe(0);
    // b and the address are untouched.
    expect(await remaining(b.id)).toBe(BURST);
    expect((await top(address, b.key)).statusCode).toBe(200);
    expect((await top(address)).statusCode).toBe(200);
  });

  it("hands the dashboard a key per client address that nobody else can spend", async () => {
    const [visitor, stranger] = [freshAddress(), freshAddress()];
    const snapshot = async (address: string) => {
      const res = await app.inject({ method: "GET", url: "/v1/dashboard", headers: { "x-forwarded-for": address } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as {
        apiKey: { id: string; key: string };
        ratelimit: { key: string; rules: Array<{ name: string; remaining: number }> };
      };
    };
    const mine = await snapshot(visitor);
    expect(mine.ratelimit.key).toBe(mine.apiKey.id);
    expect((await snapshot(visitor)).apiKey).toEqual(mine.apiKey);
    const theirs = await snapshot(stranger);
    expect(theirs.apiKey.id).not.toBe(mine.apiKey.id);

    // The stranger tries the old shared key string, its own key's signature on the visitor's id, and random keys.
    const attempts = [];
    for (let i = 0; i < 10; i++) attempts.push(await top(stranger, "demo"));
    for (let i = 0; i < 10; i++)
      attempts.push(await top(stranger, `${mine.apiKey.id}.${theirs.apiKey.key.split(".")[1]}`));
    expect(attempts.every((r) => r.statusCode === 400 || r.statusCode === 401)).toBe(true);
    expect((await snapshot(visitor)).ratelimit.rules.find((r) => r.name === "burst")?.remaining).toBe(BURST);

    // The visitor's own key works and spends only its own budget.
    expect((await top(visitor, mine.apiKey.key)).statusCode).toBe(200);
    expect(await remaining(mine.apiKey.id)).toBe(BURST - 1);
    expect(await remaining(theirs.apiKey.id)).toBe(BURST);
  });

  it("counts an IPv6 client by its /64: new addresses from one network neither get a budget nor a dashboard key of their own", async () => {
    // A host picks its addresses from a whole /64: keyed by full address, each request from a new one would start a
    // fresh budget (and the dashboard would hand it a fresh key with one).
    const net = `2001:db8:${(addressCount++).toString(16)}:1`;
    const keyless = [];
    for (let i = 0; i < BURST + 3; i++) keyless.push(await top(`${net}::${(i + 1).toString(16)}`));
    expect(statuses(keyless)).toEqual({ 200: BURST, 429: 3 });
    // The next /64 is another client, with a budget of its own.
    expect((await top(`2001:db8:${(addressCount++).toString(16)}:2::1`)).statusCode).toBe(200);

    const dashboardKey = async (address: string) => {
      const res = await app.inject({ method: "GET", url: "/v1/dashboard", headers: { "x-forwarded-for": address } });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as { apiKey: { id: string } }).apiKey.id;
    };
    expect(await dashboardKey(`${net}::a`)).toBe(await dashboardKey(`${net}:ffff:ffff:ffff:fffe`));
    expect(await dashboardKey(`${net}::a`)).not.toBe(
      await dashboardKey(`2001:db8:${(addressCount++).toString(16)}:3::a`),
    );
  });

  it("shares the signing secret through Redis when API_KEY_SECRET is not set", async () => {
    const [issued] = await issue(1);
    const other = await buildApp(
      loadConfig({
        REDIS_URL: inject("coordisRedisUrl"),
        COORDIS_PREFIX: prefix,
        REPLICA_ID: "keys-2",
        // A replica of the same service: the same limits (a second registration with this prefix in this process
        // under other rules for the same budgets is refused).
        RATE_LIMIT_BURST: String(BURST),
        RATE_LIMIT_BURST_WINDOW_MS: "600000",
        LOG_LEVEL: "silent",
      }),
      { jobs: false, registry: new Registry() },
    );
    try {
      const headers = { "x-api-key": issued?.key as string };
      expect((await other.inject({ method: "GET", url: "/v1/leaderboards/all/top", headers })).statusCode).toBe(200);
      const own = await other.inject({ method: "GET", url: "/v1/dashboard" });
      expect((own.json() as { apiKey: unknown }).apiKey).toEqual(
        ((await app.inject({ method: "GET", url: "/v1/dashboard" })).json() as { apiKey: unknown }).apiKey,
      );
    } finally {
      await other.close();
    }
  });

  it("issues keys only to the admin", async () => {
    const bare = await app.inject({
      method: "POST",
      url: "/v1/admin/keys",
      headers: { authorization: `Bearer ${token}` },
      payload: {},
    });
    expect(bare.statusCode, bare.body).toBe(201);
    expect((bare.json() as { keys: unknown[] }).keys).toHaveLength(1);
    for (const auth of [undefined, "Bearer nope"]) {
      const res = await app.inject({
        method: "POST",
        url: "/v1/admin/keys",
        headers: auth === undefined ? {} : { authorization: auth },
        payload: { count: 1 },
      });
      expect(res.statusCode).toBe(401);
    }
    const res = await app.inject({
      method: "POST",
      url: "/v1/admin/keys",
      headers: { authorization: `Bearer ${token}` },
      payload: { count: 101 },
    });
    expect(res.statusCode).toBe(400);
  });
});
