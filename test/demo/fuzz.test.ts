import { buildApp, loadConfig } from "@coordis/demo";
import { testPrefix } from "@coordis/testing";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// Every route of the demo, fed invalid params, queries and bodies in-process (fastify.inject): 4xx, never 5xx,
// and every error is an application/problem+json document.
const token = "fuzz-token";
let app: FastifyInstance;

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: testPrefix("demo-fuzz"),
    ADMIN_TOKEN: token,
    REPLICA_ID: "fuzz",
    // Budgets large enough that validation, not the limiter, answers.
    RATE_LIMIT_BURST: "1000000",
    RATE_LIMIT_DAILY: "1000000000",
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
});

afterAll(async () => {
  await app?.close();
});

interface RouteSpec {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  body?: boolean;
  admin?: boolean;
}

const ROUTES: RouteSpec[] = [
  { method: "POST", path: "/v1/scores", body: true },
  { method: "GET", path: "/v1/leaderboards/:board/top" },
  { method: "GET", path: "/v1/leaderboards/:board/players/:id" },
  { method: "GET", path: "/v1/players/:id" },
  { method: "PUT", path: "/v1/players/:id", body: true },
  { method: "DELETE", path: "/v1/players/:id", admin: true },
  { method: "GET", path: "/v1/audit" },
  { method: "GET", path: "/v1/audit/verify", admin: true },
  { method: "POST", path: "/v1/admin/ratelimit/:key/reset", admin: true },
  { method: "POST", path: "/v1/admin/keys", body: true, admin: true },
  { method: "GET", path: "/v1/ratelimit/:key" },
  { method: "GET", path: "/v1/dashboard" },
  { method: "GET", path: "/v1/jobs" },
  { method: "GET", path: "/v1/queue" },
  { method: "GET", path: "/v1/activity" },
  { method: "POST", path: "/v1/admin/queue/dead/:id/retry", admin: true },
  { method: "GET", path: "/healthz" },
  { method: "GET", path: "/readyz" },
  { method: "GET", path: "/assets/:file" },
  { method: "GET", path: "/" },
];
// Streams take no input and never end, so inject() cannot exercise them; their behaviour is tested end to end.
const STREAMS = ["/v1/events", "/v1/audit/stream"];

const hostile = fc.constantFrom(
  "",
  " ",
  "{x}",
  "a".repeat(600),
  "../../etc/passwd",
  "%00",
  "daily",
  "all",
  "-1",
  "1e400",
  "NaN",
  "null",
  "__proto__",
  "\u0000",
  "\ud800",
  "🎲",
);
const paramValue = fc.oneof(hostile, fc.string({ maxLength: 80 }), fc.string({ unit: "grapheme", maxLength: 20 }));
const queryValue = fc.oneof(hostile, fc.string({ maxLength: 40 }), fc.integer().map(String), fc.double().map(String));
const query = fc.dictionary(fc.constantFrom("n", "radius", "cursor", "limit", "x", "__proto__"), queryValue, {
  maxKeys: 3,
});
const jsonBody = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record(
    {
      playerId: fc.oneof(paramValue, fc.jsonValue({ maxDepth: 1 })),
      score: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null), fc.bigInt().map(String)),
      name: fc.oneof(paramValue, fc.jsonValue({ maxDepth: 1 })),
    },
    { requiredKeys: [] },
  ),
);
const body = fc.oneof(
  jsonBody.map((v) => ({ type: "application/json", payload: JSON.stringify(v) ?? "null" })),
  fc.string({ maxLength: 200 }).map((s) => ({ type: "application/json", payload: s })),
  fc.string({ maxLength: 50 }).map((s) => ({ type: "text/plain", payload: s })),
  fc.constant({ type: "application/json", payload: `{"playerId":"${"x".repeat(40_000)}","score":1}` }),
  fc.constant({ type: "application/x-www-form-urlencoded", payload: "playerId=a&score=1" }),
);
const headers = fc.record(
  {
    "x-api-key": fc.oneof(
      hostile,
      fc.string({ maxLength: 80 }),
      // Well formed, but not issued by this service.
      fc
        .tuple(fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/), fc.stringMatching(/^[A-Za-z0-9_-]{43}$/))
        .map(([id, sig]) => `${id}.${sig}`),
    ),
    authorization: fc.oneof(fc.constant(`Bearer ${token}`), fc.string({ maxLength: 40 })),
  },
  { requiredKeys: [] },
);

function fill(path: string, values: string[]): string {
  let i = 0;
  // Percent-encode the UTF-8 bytes (lone surrogates become U+FFFD) so any string can be sent.
  const encode = (v: string) => [...Buffer.from(v, "utf8")].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
  return path.replace(/:[a-z]+/g, () => encode(values[i++] ?? ""));
}

describe("demo fuzz", () => {
  it("covers every documented route", async () => {
    const doc = (app as unknown as { swagger(): unknown }).swagger() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const fuzzed = new Set(ROUTES.map((r) => `${r.method} ${r.path.replace(/:([a-z]+)/g, "{$1}")}`));
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods)) {
        const id = `${method.toUpperCase()} ${path}`;
        if (!STREAMS.includes(path)) expect(fuzzed, id).toContain(id);
      }
    }
  });

  for (const route of ROUTES) {
    it(`${route.method} ${route.path}: invalid input is 4xx problem+json, never 5xx`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(paramValue, { minLength: 2, maxLength: 2 }),
          query,
          body,
          headers,
          async (params, q, b, h) => {
            const search = new URLSearchParams(q).toString();
            const auth = route.admin && h.authorization === undefined ? { authorization: `Bearer ${token}` } : {};
            const res = await app.inject({
              method: route.method,
              url: `${fill(route.path, params)}${search === "" ? "" : `?${search}`}`,
              headers: { ...h, ...auth, ...(route.body ? { "content-type": b.type } : {}) },
              ...(route.body ? { payload: b.payload } : {}),
            });
            expect(res.statusCode, res.body).toBeLessThan(500);
            if (res.statusCode >= 400)
              expect(res.headers["content-type"], res.body).toMatch(/^application\/problem\+json/);
          },
        ),
        { numRuns: 40 },
      );
    });
  }

  it("takes body values only of their schema's types, and titles every error with its status' reason phrase", async () => {
    for (const payload of [
      { playerId: "a", score: true },
      { playerId: "a", score: null },
      { playerId: "a", score: "5" },
      { playerId: 123, score: 5 },
      { playerId: ["a"], score: 5 },
    ]) {
      const res = await app.inject({ method: "POST", url: "/v1/scores", payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().title).toBe("Bad Request");
    }
    // Querystrings are text: "5" is still the number 5 there.
    expect((await app.inject({ method: "GET", url: "/v1/leaderboards/all/top?n=5" })).statusCode).toBe(200);
    const post = (type: string, payload: string) =>
      app.inject({ method: "POST", url: "/v1/scores", headers: { "content-type": type }, payload });
    const cases: Array<[Promise<{ statusCode: number; json(): { title: string } }>, number, string]> = [
      [post("text/plain", "x"), 415, "Unsupported Media Type"],
      [post("application/x-www-form-urlencoded", "a=1"), 415, "Unsupported Media Type"],
      [post("application/json", "{"), 400, "Bad Request"],
      [post("application/json", `{"playerId":"a","score":1,"pad":"${"x".repeat(20_000)}"}`), 413, "Payload Too Large"],
    ];
    for (const [answer, status, title] of cases) {
      const res = await answer;
      expect(res.statusCode).toBe(status);
      expect(res.json().title).toBe(title);
    }
  });

  it("takes path parameters as long as their schemas allow (a 200-character job id)", async () => {
    const res = await app.inject({
      method: "POST",
      url: `/v1/admin/queue/dead/${"j".repeat(200)}/retry`,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.statusCode, res.body).toBe(404);
    const over = await app.inject({
      method: "POST",
      url: `/v1/admin/queue/dead/${"j".repeat(201)}/retry`,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(over.statusCode, over.body).toBe(400);
  });

  it("renaming a player renames it on every leaderboard", async () => {
    const id = `renamed-${Date.now()}`;
    const created = await app.inject({
      method: "POST",
      url: "/v1/scores",
      payload: { playerId: id, name: "Ada", score: 7 },
    });
    expect(created.statusCode, created.body).toBe(201);
    const renamed = await app.inject({ method: "PUT", url: `/v1/players/${id}`, payload: { name: "Lovelace" } });
    expect(renamed.statusCode, renamed.body).toBe(200);
    for (const board of ["all", "daily"]) {
      const res = await app.inject({ method: "GET", url: `/v1/leaderboards/${board}/players/${id}` });
      expect(res.statusCode, res.body).toBe(200);
      expect(JSON.stringify(res.json())).toContain('"Lovelace"');
      expect(JSON.stringify(res.json())).not.toContain('"Ada"');
    }
  });

  it("admin: the token is checked before the body, and issuing keys needs no body", async () => {
    const wrong = await app.inject({
      method: "POST",
      url: "/v1/admin/keys",
      headers: { authorization: "Bearer nope" },
      payload: { count: "many" },
    });
    expect(wrong.statusCode).toBe(401);
    const none = await app.inject({
      method: "POST",
      url: "/v1/admin/keys",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(none.statusCode).toBe(201);
    expect((none.json() as { keys: unknown[] }).keys).toHaveLength(1);
  });

  it("answers clear 400s for typical mistakes", async () => {
    const cases = [
      { method: "POST" as const, url: "/v1/scores", payload: { playerId: "a", score: -1 }, match: /score/ },
      { method: "POST" as const, url: "/v1/scores", payload: { score: 1 }, match: /playerId/ },
      { method: "GET" as const, url: "/v1/leaderboards/weekly/top", match: /board/ },
      { method: "GET" as const, url: "/v1/leaderboards/all/top?n=1000", match: /n/ },
      { method: "GET" as const, url: "/v1/audit?cursor=abc", match: /cursor/ },
      { method: "GET" as const, url: `/v1/audit?cursor=99999999999999999999-0`, match: /after|before|stream id/ },
    ];
    for (const c of cases) {
      const res = await app.inject({ method: c.method, url: c.url, ...(c.payload ? { payload: c.payload } : {}) });
      expect(res.statusCode, `${c.url}: ${res.body}`).toBe(400);
      expect(res.json().detail).toMatch(c.match);
    }
    const big = await app.inject({
      method: "POST",
      url: "/v1/scores",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({ playerId: "a", score: 1, pad: "x".repeat(20_000) }),
    });
    expect(big.statusCode).toBe(413);
  });
});
