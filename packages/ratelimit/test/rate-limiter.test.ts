import { setTimeout as sleep } from "node:timers/promises";
import { connect, type OperationEvent, type RedisClient } from "@coordis/core";
import { type Algorithm, RateLimiter, type Rule, toHeaders } from "@coordis/ratelimit";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
let n = 0;
const freshKey = () => `k-${process.pid}-${++n}`;

const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];

describe.each([
  ["standalone", () => inject("coordisRedisUrl"), () => inject("coordisAdminRedisUrl")],
  ["cluster", () => inject("coordisClusterUrl"), () => inject("coordisAdminClusterUrl")],
])("RateLimiter on %s", (_kind, url, adminUrl) => {
  let redis: RedisClient;
  /** Unrestricted client to inspect stored state. */
  let admin: RedisClient;
  beforeAll(async () => {
    redis = connect(url());
    admin = connect(adminUrl());
    await Promise.all([redis.ping(), admin.ping()]);
  });

  /**
   * The rule states stored under a rate-limit key: "<rule>|<alg>" -> state. The key holds
   * "<rule>|<alg>=<expAtMs>:<state>;...", and the latest expAtMs must be the key's actual expiry.
   */
  const storedStates = async (stateKey: string): Promise<Record<string, string>> => {
    const [raw, expireTime] = await Promise.all([admin.get(stateKey), admin.pexpiretime(stateKey)]);
    expect(typeof raw).toBe("string");
    const entries = (raw as string).split(";").map((part) => {
      const [field, value] = part.split("=") as [string, string];
      const at = value.indexOf(":");
      return { field, exp: Number(value.slice(0, at)), state: value.slice(at + 1) };
    });
    expect(Math.max(...entries.map((e) => e.exp))).toBe(Number(expireTime));
    return Object.fromEntries(entries.map((e) => [e.field, e.state]));
  };
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
  });
  const limiter = (rules: Rule[], extra: Partial<ConstructorParameters<typeof RateLimiter>[1]> = {}) =>
    new RateLimiter(redis, { rules, prefix, ...extra });

  it("several rules are atomic: 5/1 s and 100/60 s, 50 concurrent calls admit exactly 5, the 60-s rule keeps 95", async () => {
    const rl = limiter([
      { name: "second", limit: 5, windowMs: 1_000 },
      { name: "minute", limit: 100, windowMs: 60_000 },
    ]);
    const key = freshKey();
    const decisions = await Promise.all(Array.from({ length: 50 }, () => rl.consume(key)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
    const peek = await rl.peek(key);
    const minute = peek.rules.find((r) => r.name === "minute");
    // The 1-s window may have rolled over by now; the 60-s one cannot have.
    expect(minute?.remaining).toBe(95);
    expect(Object.keys(await storedStates(`${prefix}:rl:{${key}}`)).sort()).toEqual(["minute|fw", "second|fw"]);
    for (const d of decisions.filter((x) => !x.allowed)) {
      expect(d.reason).toBe("redis");
      expect(d.rule).toBe("second");
      expect(d.retryAfterMs).toBeGreaterThan(0);
      expect(d.retryAfterMs).toBeLessThanOrEqual(1_000);
    }
  });

  it("the state key expires when its longest-lived rule state stops mattering; within a window the expiry is kept", async () => {
    const key = freshKey();
    const stateKey = `${prefix}:rl:{${key}}`;
    const windowOnly = limiter([{ name: "w", limit: 100, windowMs: 60_000 }]);
    await windowOnly.consume(key);
    const windowEnd = await admin.pexpiretime(stateKey);
    const window = (await storedStates(stateKey))["w|fw"];
    expect(windowEnd).toBe(Number(window?.split(":")[0]) + 60_000);
    await windowOnly.consume(key);
    await windowOnly.consume(key);
    expect(await admin.pexpiretime(stateKey)).toBe(windowEnd);
    expect((await storedStates(stateKey))["w|fw"]).toMatch(/:3$/);
    // A slow token bucket outlives the window: now the expiry follows the bucket and moves with every consume.
    const both = limiter([
      { name: "w", limit: 100, windowMs: 60_000 },
      { name: "t", limit: 10, windowMs: 3_600_000, algorithm: "token-bucket" },
    ]);
    await both.consume(key);
    const afterOne = await admin.pexpiretime(stateKey);
    expect(afterOne).toBeGreaterThan(windowEnd + 200_000);
    await both.consume(key);
    expect(await admin.pexpiretime(stateKey)).toBeGreaterThanOrEqual(afterOne + 359_000);
    expect(Object.keys(await storedStates(stateKey)).sort()).toEqual(["t|tb", "w|fw"]);
  });

  it("sliding window: a refund that empties the current window keeps the previous window's weight", async () => {
    const windowMs = 2_000;
    const rl = limiter([{ name: "s", limit: 10, windowMs, algorithm: "sliding-window" }]);
    const key = freshKey();
    const stateKey = `${prefix}:rl:{${key}}`;
    /** Server time (windows are aligned to it). */
    const serverNow = async () => {
      const [sec, usec] = (await admin.time()) as [string | number, string | number];
      return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    };
    /** Polls server time (deadline: two windows) until it is in the first half of a window after `after`. */
    const earlyInWindowAfter = async (after: number) => {
      const deadline = Date.now() + 2 * windowMs + 1_000;
      for (;;) {
        const now = await serverNow();
        if (now - (now % windowMs) > after && now % windowMs < windowMs / 2) return now - (now % windowMs);
        if (Date.now() > deadline) throw new Error("no early moment in a later window within two windows");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const first = await earlyInWindowAfter(-1);
    expect((await rl.consume(key, 10)).allowed).toBe(true);
    await earlyInWindowAfter(first);
    const refunded = await rl.refund(key, 1);
    // The previous window's 10 still weigh: the refund gives back what this window held (nothing), not all 10.
    expect(refunded.remaining).toBeLessThan(10);
    expect(Object.keys(await storedStates(stateKey))).toEqual(["s|sw"]);
    expect((await rl.peek(key)).remaining).toBeLessThanOrEqual(refunded.remaining + 3);
  });

  it("a rejected call changes no stored state", async () => {
    for (const algorithm of ALGS) {
      const rl = limiter([
        { name: "small", limit: 2, windowMs: 60_000, algorithm },
        { name: "big", limit: 50, windowMs: 60_000, algorithm },
      ]);
      const key = freshKey();
      await rl.consume(key, 2);
      const stateKey = `${prefix}:rl:{${key}}`;
      const before = await admin.get(stateKey);
      const d = await rl.consume(key);
      expect(d.allowed).toBe(false);
      expect(before).not.toBeNull();
      expect(await admin.get(stateKey)).toBe(before);
      expect(d.rules.find((r) => r.name === "big")).toMatchObject({ allowed: true, remaining: 48 });
    }
  });

  it.each(ALGS)("%s: admits the limit, reports remaining, rejects beyond it with a retryAfterMs", async (algorithm) => {
    const rl = limiter([{ name: "only", limit: 4, windowMs: 60_000, algorithm }]);
    const key = freshKey();
    const remaining: number[] = [];
    for (let i = 0; i < 4; i++) {
      const d = await rl.consume(key);
      expect(d.allowed).toBe(true);
      remaining.push(d.remaining);
    }
    expect(remaining).toEqual([3, 2, 1, 0]);
    const rejected = await rl.consume(key);
    expect(rejected).toMatchObject({ allowed: false, remaining: 0, limit: 4, reason: "redis", rule: "only" });
    expect(rejected.retryAfterMs).toBeGreaterThan(0);
    // a sliding window may have to wait into the next window until the weighted count drops: up to 2 windows
    expect(rejected.retryAfterMs).toBeLessThanOrEqual(algorithm === "sliding-window" ? 120_000 : 60_000);
    expect(rejected.resetMs).toBeGreaterThan(0);
  });

  it("cost takes several units at once; a call costing more than what is left is rejected whole", async () => {
    const rl = limiter([{ limit: 10, windowMs: 60_000 }]);
    const key = freshKey();
    expect((await rl.consume(key, 7)).remaining).toBe(3);
    const d = await rl.consume(key, 4);
    expect(d).toMatchObject({ allowed: false, remaining: 3 });
    expect((await rl.consume(key, 3)).remaining).toBe(0);
  });

  it.each(ALGS)("%s: peek does not consume, refund gives back, reset forgets", async (algorithm) => {
    const rl = limiter([{ name: "a", limit: 5, windowMs: 3_600_000, algorithm }]);
    const key = freshKey();
    expect(await rl.peek(key)).toMatchObject({ allowed: true, remaining: 5, resetMs: 0 });
    await rl.consume(key, 3);
    expect((await rl.peek(key)).remaining).toBe(2);
    expect((await rl.peek(key)).remaining).toBe(2);
    expect((await rl.refund(key, 2)).remaining).toBe(4);
    expect((await rl.refund(key, 5)).remaining).toBe(5); // never beyond full
    await rl.consume(key, 5);
    expect((await rl.peek(key)).allowed).toBe(false);
    await rl.reset(key);
    expect(await rl.peek(key)).toMatchObject({ allowed: true, remaining: 5 });
    expect(await redis.exists(`${prefix}:rl:{${key}}`)).toBe(0);
  });

  it("token-bucket and gcra take a burst larger than the per-window rate", async () => {
    for (const algorithm of ["token-bucket", "gcra"] as const) {
      const rl = limiter([{ limit: 1, windowMs: 3_600_000, algorithm, burst: 3 }]);
      const key = freshKey();
      const d = await Promise.all([1, 2, 3, 4].map(() => rl.consume(key)));
      expect(d.filter((x) => x.allowed)).toHaveLength(3);
      expect(d.find((x) => !x.allowed)?.limit).toBe(3);
    }
  });

  it.each(ALGS)("%s: retryAfterMs is honoured: the same call made after it passes", async (algorithm) => {
    const rl = limiter([{ limit: 3, windowMs: 600, algorithm }]);
    const key = freshKey();
    let d = await rl.consume(key);
    for (let i = 0; d.allowed && i < 20; i++) d = await rl.consume(key);
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBeGreaterThan(0);
    expect(d.retryAfterMs).toBeLessThanOrEqual(1_200);
    await sleep(d.retryAfterMs + 15); // the delay under test, not a synchronisation
    expect((await rl.consume(key)).allowed).toBe(true);
  });

  it("fixed window opens at the first call and admits again after windowMs", async () => {
    const rl = limiter([{ limit: 2, windowMs: 400 }]);
    const key = freshKey();
    const t0 = Date.now();
    await rl.consume(key, 2);
    expect((await rl.consume(key)).allowed).toBe(false);
    const waited = await waitUntil("2 units back", async () => (await rl.peek(key)).remaining === 2, 3_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(waited).toBeLessThan(2_000);
  });

  it("token bucket refills continuously at limit per windowMs", async () => {
    const rl = limiter([{ limit: 10, windowMs: 1_000, algorithm: "token-bucket" }]);
    const key = freshKey();
    const t0 = Date.now();
    await rl.consume(key, 10);
    await waitUntil("5 tokens refilled", async () => (await rl.peek(key)).remaining >= 5, 3_000);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(400); // 5 tokens at 10/s need 500 ms
    expect(elapsed).toBeLessThan(2_500);
    await waitUntil("the bucket full", async () => (await rl.peek(key)).resetMs === 0, 3_000);
    expect((await rl.peek(key)).remaining).toBe(10);
  });

  it("gcra spaces calls by windowMs / limit once the burst is used", async () => {
    const rl = limiter([{ limit: 5, windowMs: 1_000, algorithm: "gcra", burst: 2 }]);
    const key = freshKey();
    await rl.consume(key);
    await rl.consume(key);
    const d = await rl.consume(key);
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBeGreaterThan(50);
    expect(d.retryAfterMs).toBeLessThanOrEqual(200);
  });

  it("sliding window weighs the previous window", async () => {
    const rl = limiter([{ limit: 10, windowMs: 500, algorithm: "sliding-window" }]);
    const key = freshKey();
    await rl.consume(key, 10);
    // In the next window the previous 10 still weigh (1 - elapsed/500): fewer than 10 are available at first,
    // and everything is back within two windows.
    const d = await rl.peek(key);
    expect(d.remaining).toBeLessThan(10);
    await waitUntil("every unit back", async () => (await rl.peek(key)).remaining === 10, 3_000);
  });

  it("rules can change: state is kept by rule name and algorithm, counts clamped to the new limit", async () => {
    const key = freshKey();
    await limiter([{ name: "a", limit: 10, windowMs: 60_000 }]).consume(key, 8);
    expect((await limiter([{ name: "a", limit: 20, windowMs: 60_000 }]).peek(key)).remaining).toBe(12);
    expect((await limiter([{ name: "a", limit: 5, windowMs: 60_000 }]).peek(key)).remaining).toBe(0);
    // another algorithm under the same name starts fresh
    expect((await limiter([{ name: "a", limit: 10, windowMs: 60_000, algorithm: "gcra" }]).peek(key)).remaining).toBe(
      10,
    );
    // a rule the writer does not know (removed, or another limiter's) keeps its state until its own expiry
    await limiter([{ name: "b", limit: 10, windowMs: 60_000 }]).consume(key);
    const states = await storedStates(`${prefix}:rl:{${key}}`);
    expect(Object.keys(states).sort()).toEqual(["a|fw", "b|fw"]);
    expect(states["a|fw"]).toMatch(/:8$/);
  });

  it("headers: exact strings for multi-rule decisions, allowed and rejected", async () => {
    const rules: Rule[] = [
      { name: "burst", limit: 10, windowMs: 1_000 },
      { name: "daily", limit: 1_000, windowMs: 86_400_000 },
    ];
    const rl = limiter(rules);
    const key = freshKey();
    let d = await rl.consume(key);
    for (let i = 0; i < 6; i++) d = await rl.consume(key);
    expect(toHeaders(d, rl.rules)).toEqual({
      "RateLimit-Policy": '"burst";q=10;w=1, "daily";q=1000;w=86400',
      RateLimit: '"burst";r=3;t=1',
    });
    await rl.consume(key, 3);
    const rejected = await rl.consume(key);
    expect(rejected.allowed).toBe(false);
    expect(toHeaders(rejected, rules)).toEqual({
      "RateLimit-Policy": '"burst";q=10;w=1, "daily";q=1000;w=86400',
      RateLimit: '"burst";r=0;t=1',
      "Retry-After": "1",
    });
    // the daily rule is the constraining one once it has fewer left
    const rl2 = limiter([
      { name: "burst", limit: 10, windowMs: 1_000 },
      { name: "daily", limit: 3, windowMs: 86_400_000 },
    ]);
    const key2 = freshKey();
    await rl2.consume(key2, 3);
    const d2 = await rl2.consume(key2);
    expect(toHeaders(d2, rl2.rules)).toEqual({
      "RateLimit-Policy": '"burst";q=10;w=1, "daily";q=3;w=86400',
      RateLimit: '"daily";r=0;t=86400',
      "Retry-After": "86400",
    });
  });

  it("reports decisions by outcome and rule, with latency, to the observer", async () => {
    const events: OperationEvent[] = [];
    const rl = limiter([{ name: "x", limit: 1, windowMs: 60_000, algorithm: "gcra" }], {
      observer: { onOperation: (e) => events.push(e) },
    });
    const key = freshKey();
    await rl.consume(key);
    await rl.consume(key);
    expect(events.map((e) => [e.primitive, e.op, e.outcome, e.attributes])).toEqual([
      ["ratelimit", "consume", "allowed", { reason: "redis", rule: "x", algorithm: "gcra" }],
      ["ratelimit", "consume", "rejected", { reason: "redis", rule: "x", algorithm: "gcra" }],
    ]);
    expect(events.every((e) => e.durationMs >= 0 && e.durationMs < 5_000)).toBe(true);
  });
});
