import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { ConcurrencyLimiter, RateLimiter } from "@coordis/ratelimit";
import { type RedisServer, startRedis, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// A Redis killed and restarted empty under steady load: nothing crashes the process (no unhandled rejection, no
// unhandled 'error' event), each failure policy answers for every call while Redis is gone, and Redis decides again
// once it is back.
describe("Redis killed and restarted under load", () => {
  let server: RedisServer;
  let client: RedisClient;
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  beforeAll(async () => {
    server = await startRedis();
    client = connect(server.url, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
    client.on("error", () => {});
    await client.ping();
    process.on("unhandledRejection", onUnhandled);
  });
  afterAll(async () => {
    process.off("unhandledRejection", onUnhandled);
    client.disconnect();
    await server.stop();
  });

  it("every limiter kind keeps answering through the outage and goes back to Redis", async () => {
    const rule = { name: "a", limit: 5, windowMs: 1_000 };
    const limiters = {
      open: new RateLimiter(client, { rules: [rule], batch: true, onRedisError: "fail-open", redisRetryMs: 20 }),
      memory: new RateLimiter(client, {
        rules: [rule],
        batch: { maxDelayMs: 5 },
        denyCache: true,
        onRedisError: { fallback: "memory" },
        redisRetryMs: 20,
      }),
      closed: new RateLimiter(client, {
        rules: [rule, { name: "g", limit: 50, windowMs: 60_000, algorithm: "gcra" }],
        onRedisError: "fail-closed",
        redisRetryMs: 0,
      }),
      throwing: new RateLimiter(client, { rules: [rule], batch: true }),
    };
    const permits = new ConcurrencyLimiter(client, { limit: 3, ttlMs: 2_000 });
    const seen = new Map<string, number>();
    const count = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);
    const got = (what: string) => seen.get(what) ?? 0;
    const nameOf = (err: unknown) => (err instanceof RedisUnavailableError ? "unavailable" : String(err));
    let stop = false;
    const loops = Object.entries(limiters).map(async ([kind, rl]) => {
      while (!stop) {
        const calls = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => rl.consume(`k${i % 4}`)));
        for (const c of calls) count(`${kind} consume ${c.status === "fulfilled" ? c.value.reason : nameOf(c.reason)}`);
        const others = await Promise.allSettled([rl.peek("k1"), rl.refund("k1", 1), rl.reset("k2")]);
        others.forEach((c, i) => {
          const op = ["peek", "refund", "reset"][i];
          count(`${kind} ${op} ${c.status === "fulfilled" ? (c.value?.reason ?? "ok") : nameOf(c.reason)}`);
        });
      }
    });
    const permitLoop = (async () => {
      while (!stop) {
        try {
          const permit = await permits.acquire("c");
          if (permit !== null) {
            await permit.extend();
            await permit.release();
          }
          count("permit ok");
        } catch (err) {
          count(`permit ${nameOf(err)}`);
        }
      }
    })();
    await waitUntil("calls decided by Redis", () => got("throwing consume redis") >= 40, 10_000);
    await server.kill();
    await waitUntil(
      "every policy to answer for the outage",
      () =>
        got("open consume fail-open") >= 40 &&
        got("memory consume fallback") + got("memory consume deny-cache") >= 40 &&
        got("closed consume fail-closed") >= 40 &&
        got("throwing consume unavailable") >= 40 &&
        got("permit unavailable") >= 1,
      20_000,
    );
    await server.restart();
    const before = { ...Object.fromEntries(seen) };
    await waitUntil(
      "every limiter to be decided by Redis again",
      () =>
        ["open", "memory", "closed", "throwing"].every(
          (kind) => got(`${kind} consume redis`) >= (before[`${kind} consume redis`] ?? 0) + 20,
        ) && got("permit ok") >= (before["permit ok"] ?? 0) + 1,
      20_000,
    );
    stop = true;
    await Promise.all([...loops, permitLoop]);
    // While Redis was gone peek and refund answered under the policies; reset, which cannot forget anything
    // locally, rejected under every policy.
    expect(got("open peek fail-open")).toBeGreaterThan(0);
    expect(got("closed refund fail-closed")).toBeGreaterThan(0);
    expect(got("memory peek fallback")).toBeGreaterThan(0);
    for (const kind of ["open", "memory", "closed", "throwing"])
      expect(got(`${kind} reset unavailable`)).toBeGreaterThan(0);
    expect(unhandled).toEqual([]);
  });
});
