import { buildApp, loadConfig } from "@coordis/demo";
import { testPrefix } from "@coordis/testing";
import type { FastifyInstance, InjectOptions } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// The admin endpoints compare the bearer token "before the body is looked at" (README): a caller without the token
// must get the same 401 whatever it sends, not a 400 naming the JSON parser's complaint, a 415 or a 413, which tell
// it what the route reads and make the replica parse up to BODY_LIMIT bytes for it. Checking the token earlier must
// not let guesses past the admin rate limit (60 a minute per address), which runs before it.
const token = "review2-admin-auth-token";
let app: FastifyInstance;

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: testPrefix("demo-admin-auth"),
    REPLICA_ID: "aa",
    ADMIN_TOKEN: token,
    LOG_LEVEL: "silent",
    TRUST_PROXY: "true",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
});

afterAll(async () => {
  await app?.close();
});

let addresses = 0;
/** Each call from an address of its own, so the admin limit stays out of the way unless a test means it. */
const call = (options: InjectOptions, address = `10.77.0.${++addresses}`) =>
  app.inject({ ...options, headers: { "x-forwarded-for": address, ...options.headers } });

const BODIES: Array<[string, Record<string, string>, string]> = [
  ["malformed JSON", { "content-type": "application/json" }, "{bad"],
  ["a text/plain body", { "content-type": "text/plain" }, "count=5"],
  ["an unknown media type", { "content-type": "application/x-www-form-urlencoded" }, "count=5"],
  ["a body over BODY_LIMIT", { "content-type": "application/json" }, JSON.stringify({ count: "x".repeat(20_000) })],
  ["a poisoned body", { "content-type": "application/json" }, '{"__proto__":{"admin":true}}'],
];

const ROUTES: Array<[InjectOptions["method"], string]> = [
  ["POST", "/v1/admin/keys"],
  ["DELETE", "/v1/players/someone"],
  ["POST", "/v1/admin/ratelimit/abc/reset"],
  ["POST", "/v1/admin/queue/dead/x/retry"],
];

describe("demo admin auth comes before the body", () => {
  it("answers 401 to a caller without the token whatever body it sends", async () => {
    for (const [method, url] of ROUTES) {
      for (const auth of [undefined, "Bearer wrong", "Basic Zm9vOmJhcg==", "Bearer", `bearer  ${token}x`]) {
        for (const [what, headers, payload] of BODIES) {
          const res = await call({
            method,
            url,
            headers: { ...headers, ...(auth === undefined ? {} : { authorization: auth }) },
            payload,
          });
          expect(res.statusCode, `${method} ${url} with ${what}, authorization ${auth}: ${res.body}`).toBe(401);
          expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
          expect(res.headers["www-authenticate"]).toBe('Bearer realm="coordis-demo"');
        }
      }
    }
  });

  it("still looks at the body of a caller with the token", async () => {
    const auth = { authorization: `Bearer ${token}` };
    const expected = [400, 415, 415, 413, 400];
    for (const [i, [what, headers, payload]] of BODIES.entries()) {
      const res = await call({ method: "POST", url: "/v1/admin/keys", headers: { ...headers, ...auth }, payload });
      expect(res.statusCode, `${what}: ${res.body}`).toBe(expected[i]);
    }
    const ok = await call({ method: "POST", url: "/v1/admin/keys", headers: auth, payload: { count: 2 } });
    expect(ok.statusCode, ok.body).toBe(201);
    expect(ok.json<{ keys: unknown[] }>().keys).toHaveLength(2);
  });

  it("still counts guesses against the admin limit of the address", async () => {
    const address = "10.78.0.1";
    const statuses: number[] = [];
    for (let i = 0; i < 61; i++) {
      const res = await call(
        {
          method: "POST",
          url: "/v1/admin/keys",
          headers: { authorization: `Bearer guess-${i}`, "content-type": "application/json" },
          payload: "{bad",
        },
        address,
      );
      statuses.push(res.statusCode);
    }
    expect(statuses.slice(0, 60).every((s) => s === 401)).toBe(true);
    expect(statuses[60]).toBe(429);
    // Even the right token waits for the window now.
    const right = await call(
      { method: "POST", url: "/v1/admin/keys", headers: { authorization: `Bearer ${token}` } },
      address,
    );
    expect(right.statusCode).toBe(429);
  });
});
