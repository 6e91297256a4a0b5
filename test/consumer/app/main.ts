/**
 * A service that adopts Coordis from the registry: installed from the packed tarballs into an app of its own, with
 * its own ioredis, fastify, prom-client and @fastify/session (test/consumer/consumer.test.ts builds and runs it).
 * It uses the app's own ioredis client and the app's own prom-client registry everywhere, exits 0 when every check
 * holds, and throws (exit 1) at the first one that does not.
 *
 * Env: REDIS_URL (a Redis the test harness started), COORDIS_PREFIX (a key prefix of its own).
 */
import { strict as assert } from "node:assert";
import { RedisSessionStore, type SessionData } from "@coordis/cache";
import { connect } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { coordis } from "@coordis/fastify";
import { Leaderboard } from "@coordis/leaderboard";
import { runOncePerTick, tickHistory } from "@coordis/lock";
import { coordisMetrics } from "@coordis/metrics";
import fastifyCookie from "@fastify/cookie";
import fastifySession from "@fastify/session";
import Fastify from "fastify";
import { Redis } from "ioredis";
import { Counter, Registry } from "prom-client";

declare module "fastify" {
  interface Session {
    user?: string;
  }
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}
const url = required("REDIS_URL");
const prefix = required("COORDIS_PREFIX");

// The app's own client, built from the app's own ioredis (not a copy inside @coordis/*).
const redis = new Redis(url, { autoResendUnfulfilledCommands: false, commandTimeout: 2_000 });
const report: Record<string, unknown> = {};

async function cronJob(): Promise<void> {
  // Two replicas fire the same tick; exactly one runs it.
  const tick = 42;
  let runs = 0;
  const replica = (owner: string) =>
    runOncePerTick(
      redis,
      "nightly-report",
      tick,
      async ({ fence }) => {
        runs++;
        return fence;
      },
      { ttlMs: 5_000, owner, prefix },
    );
  const results = await Promise.all([replica("replica-a"), replica("replica-b")]);
  assert.equal(runs, 1, "the tick ran exactly once");
  assert.equal(results.filter((r) => r.ran).length, 1);
  const history = await tickHistory(redis, "nightly-report", { prefix });
  assert.equal(history.length, 1);
  report.cron = { ran: results.map((r) => r.ran), state: history[0]?.ok };
}

async function auditLog(): Promise<void> {
  const audit = new EventLog<{ actor: string; action: string }>(redis, "audit", { chain: true, prefix });
  const first = await audit.append({ actor: "ada", action: "login" }, { idempotencyKey: "req-1" });
  const again = await audit.append({ actor: "ada", action: "login" }, { idempotencyKey: "req-1" });
  await audit.append({ actor: "ada", action: "export" });
  assert.equal(again.duplicate, true);
  assert.equal(again.id, first.id);
  const page = await audit.read({ reverse: true, limit: 10 });
  assert.deepEqual(
    page.entries.map((e) => e.data.action),
    ["export", "login"],
  );
  const verified = await audit.verify();
  assert.equal(verified.ok, true);
  assert.equal(verified.checked, 2);
  report.audit = { entries: page.entries.length, verified: verified.ok };
}

async function webApp(): Promise<void> {
  // The app's own registry: Coordis metrics must land in it, next to the app's own series.
  const registry = new Registry();
  const requests = new Counter({ name: "app_requests_total", help: "requests", registers: [registry] });

  const store = new RedisSessionStore(redis, { prefix });
  const app = Fastify();
  await app.register(coordis, {
    redis,
    prefix,
    metrics: { registry },
    rateLimit: { rules: [{ name: "burst", limit: 3, windowMs: 60_000 }], key: () => "client-1" },
  });
  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    secret: "a-secret-with-at-least-32-characters!!",
    cookie: { secure: false, maxAge: 60_000 },
    saveUninitialized: false,
    store,
  });

  // As the plugin's README builds a primitive: options() keeps the literal periods (a Period union, not string[]).
  const board = new Leaderboard(app.coordis.redis, "scores", app.coordis.options({ periods: ["daily", "all"] }));
  app.get("/top", async () => board.top(3));
  app.get("/limited", { config: { coordis: { rateLimit: true } } }, async () => {
    requests.inc();
    return { ok: true };
  });
  app.post("/login", async (req) => {
    await req.session.regenerate();
    req.session.user = "ada";
    return { ok: true };
  });
  app.get("/me", async (req) => ({ user: req.session.user ?? null }));
  app.post("/logout", async (req) => {
    await req.session.destroy();
    return { ok: true };
  });
  await app.ready();

  // Rate limiting: 3 pass, the 4th is refused with the standard headers.
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await app.inject({ method: "GET", url: "/limited" });
    statuses.push(res.statusCode);
    if (i === 0) assert.match(String(res.headers["ratelimit-policy"]), /"burst";q=3;w=60/);
    if (i === 3) {
      assert.ok(Number(res.headers["retry-after"]) > 0, "Retry-After on a 429");
      assert.match(String(res.headers["content-type"]), /application\/problem\+json/);
    }
  }
  assert.deepEqual(statuses, [200, 200, 200, 429]);
  await board.submit("ada", 7);
  assert.equal((await app.inject({ method: "GET", url: "/top" })).json()[0]?.member, "ada");
  // The README's other form, the plugin opening its own connection from an environment variable (string | undefined
  // under exactOptionalPropertyTypes).
  const own = Fastify();
  await own.register(coordis, { url: process.env.REDIS_URL, prefix });
  await own.ready();
  assert.equal(await own.coordis.redis.ping(), "PONG");
  await own.close();

  // Metrics: /metrics serves the app's registry, with the Coordis series in it.
  const metrics = await app.inject({ method: "GET", url: "/metrics" });
  assert.equal(metrics.statusCode, 200);
  assert.match(metrics.body, /app_requests_total 3/);
  assert.match(metrics.body, /coordis_ratelimit_decisions_total\{[^}]*outcome="rejected"[^}]*\} 1/);
  assert.ok(registry.getSingleMetric("coordis_ratelimit_decisions_total"), "Coordis metrics in the app's registry");
  assert.equal(coordisMetrics({ registry }).registry, registry, "the same registry is reused");

  // Sessions: login, regenerate on a second login, logout.
  const cookieOf = (res: { headers: Record<string, unknown> }) => {
    const raw = res.headers["set-cookie"];
    const first = Array.isArray(raw) ? raw[0] : raw;
    assert.ok(typeof first === "string", "a session cookie");
    return first.split(";")[0] as string;
  };
  const anonymous = await app.inject({ method: "GET", url: "/me" });
  assert.deepEqual(anonymous.json(), { user: null });
  const login1 = cookieOf(await app.inject({ method: "POST", url: "/login" }));
  assert.deepEqual((await app.inject({ method: "GET", url: "/me", headers: { cookie: login1 } })).json(), {
    user: "ada",
  });
  const login2 = cookieOf(await app.inject({ method: "POST", url: "/login", headers: { cookie: login1 } }));
  assert.notEqual(login2, login1, "regenerate issues a new session id");
  assert.deepEqual((await app.inject({ method: "GET", url: "/me", headers: { cookie: login2 } })).json(), {
    user: "ada",
  });
  const logout = await app.inject({ method: "POST", url: "/logout", headers: { cookie: login2 } });
  assert.equal(logout.statusCode, 200);
  assert.deepEqual((await app.inject({ method: "GET", url: "/me", headers: { cookie: login2 } })).json(), {
    user: null,
  });
  // Logout sticks: a slow request that saves the destroyed session afterwards is refused by the store.
  const sessionId = decodeURIComponent(login2.slice(login2.indexOf("=") + 1)).split(".")[0] as string;
  const late: SessionData = { user: "ada", cookie: { maxAge: 60_000 } };
  await new Promise<void>((resolve, reject) => store.set(sessionId, late, (err) => (err ? reject(err) : resolve())));
  const revived = await new Promise<unknown>((resolve, reject) =>
    store.get(sessionId, (err, session) => (err ? reject(err) : resolve(session))),
  );
  assert.equal(revived, null, "a destroyed session cannot be saved again");

  await app.close();
  report.web = { statuses, sessions: "login, regenerate, logout" };
}

async function pluginConnection(): Promise<void> {
  // The plugin may also open (and close) its own connection from a URL, through connect() of @coordis/core.
  const own = connect(url);
  assert.equal(await own.ping(), "PONG");
  own.disconnect();
}

try {
  await cronJob();
  await auditLog();
  await webApp();
  await pluginConnection();
  console.log(JSON.stringify({ ok: true, ...report }));
} finally {
  redis.disconnect();
}
