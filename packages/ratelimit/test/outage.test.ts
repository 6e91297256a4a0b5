import { type CoordisObserver, connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { RateLimiter, type RedisErrorPolicy } from "@coordis/ratelimit";
import { eventually, type FaultProxy, startProxy, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("rl-outage");

describe("after an outage, Redis decides again", () => {
  let proxy: FaultProxy;
  let client: RedisClient;
  beforeAll(async () => {
    proxy = await startProxy({ target: url });
    client = connect(proxy.url, { commandTimeoutMs: 500, connectTimeoutMs: 500 });
    client.on("error", () => {});
    await client.ping();
  });
  afterAll(async () => {
    client.disconnect();
    await proxy.close();
  });

  const policies: Array<[string, RedisErrorPolicy]> = [
    ["memory fallback", { fallback: "memory" }],
    ["fail-closed", "fail-closed"],
  ];
  it.each(policies)("%s: the deny cache keeps no rejection of the policy beyond redisRetryMs", async (what, policy) => {
    const rl = new RateLimiter(client, {
      rules: [{ name: "m", limit: 2, windowMs: 60_000 }],
      prefix,
      onRedisError: policy,
      redisRetryMs: 50,
      failClosedRetryAfterMs: 60_000,
      denyCache: true,
    });
    const key = `k-${what}`;
    proxy.refuse();
    proxy.dropConnections();
    const during = [];
    for (let i = 0; i < 3; i++) during.push(await rl.consume(key));
    const rejected = during.at(-1);
    expect(rejected).toMatchObject({ allowed: false });
    expect(rejected?.reason).not.toBe("redis");
    expect(rejected?.retryAfterMs).toBeGreaterThan(1_000);

    await proxy.accept();
    await waitUntil("the client to reconnect", () => client.status === "ready", { timeoutMs: 10_000, intervalMs: 20 });
    // Another key shows when the limiter asks Redis again (redisRetryMs after its last failure).
    await eventually(
      "a decision by Redis again",
      async () => ((await rl.consume(`other-${what}`)).reason === "redis" ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    // Redis never counted this key: it admits it, the outage's local rejection is not replayed from the deny cache.
    expect(await rl.consume(key)).toMatchObject({ allowed: true, reason: "redis", remaining: 1 });
  });

  it.each([
    ["fail-open", true],
    ["fail-closed", false],
  ] as const)(
    "%s: peek and refund during an outage report the policy's decision and reason",
    async (policy, allowed) => {
      const rl = new RateLimiter(client, {
        rules: [{ name: "m", limit: 2, windowMs: 60_000 }],
        prefix,
        onRedisError: policy,
        failClosedRetryAfterMs: 5_000,
      });
      proxy.refuse();
      proxy.dropConnections();
      try {
        const expected = allowed
          ? { allowed, reason: policy, remaining: 2, retryAfterMs: 0 }
          : { allowed, reason: policy, remaining: 0, retryAfterMs: 5_000 };
        expect(await rl.consume(`po-${policy}`)).toMatchObject(expected);
        expect(await rl.peek(`po-${policy}`)).toMatchObject(expected);
        // Nothing can be given back: a refund reports what the next call meets, under the policy's own reason.
        expect(await rl.refund(`po-${policy}`, 1)).toMatchObject(expected);
      } finally {
        await proxy.accept();
      }
    },
  );

  it.each([false, true])(
    "batch %s: after redisRetryMs, one call probes Redis; the others keep to the policy instead of each waiting for the timeout",
    async (batch) => {
      const slowClient = connect(proxy.url, { commandTimeoutMs: 1_000 });
      slowClient.on("error", () => {});
      await slowClient.ping();
      const rl = new RateLimiter(slowClient, {
        rules: [{ name: "p", limit: 1_000, windowMs: 60_000 }],
        prefix,
        onRedisError: "fail-open",
        redisRetryMs: 200,
        batch,
      });
      try {
        expect(await rl.consume("probe")).toMatchObject({ allowed: true, reason: "redis" });
        proxy.blackhole();
        const failedAt = performance.now();
        expect(await rl.consume("probe")).toMatchObject({ allowed: true, reason: "fail-open" }); // waited 1 s
        await waitUntil("the pause after the failure to end", () => performance.now() > failedAt + 1_300, 5_000);
        const latencies = await Promise.all(
          Array.from({ length: 20 }, async () => {
            const t0 = performance.now();
            const d = await rl.consume("probe");
            expect(d).toMatchObject({ allowed: true, reason: "fail-open" });
            return performance.now() - t0;
          }),
        );
        // One call waits for the command timeout (1 s); the others answer at once.
        expect(latencies.filter((ms) => ms > 500)).toHaveLength(1);
      } finally {
        proxy.heal();
        slowClient.disconnect();
      }
    },
  );

  it("the limiters of one client share an outage: a failure met by one pauses all; an answer to any resumes all", async () => {
    const own = connect(proxy.url, { commandTimeoutMs: 300 });
    own.on("error", () => {});
    await own.ping();
    // The calls that went to Redis and failed, by key: a call decided by the policy without trying Redis has none.
    const failed: string[] = [];
    const observer: CoordisObserver = { onOperation: (e) => void (e.error !== undefined && failed.push(`${e.name}`)) };
    const rules = [{ name: "s", limit: 100, windowMs: 60_000 }];
    const thrower = new RateLimiter(own, { rules, prefix, observer });
    const open = new RateLimiter(own, { rules, prefix, observer, onRedisError: "fail-open", redisRetryMs: 600_000 });
    const memory = new RateLimiter(own, {
      rules,
      prefix,
      observer,
      onRedisError: { fallback: "memory" },
      redisRetryMs: 600_000,
    });
    const prober = new RateLimiter(own, { rules, prefix, observer, onRedisError: "fail-open", redisRetryMs: 0 });
    try {
      expect(await open.consume("sh-open")).toMatchObject({ reason: "redis" });
      proxy.blackhole();
      // A limiter whose policy is "throw" meets the outage (one command timeout)...
      await expect(thrower.consume("sh-throw-1")).rejects.toBeInstanceOf(RedisUnavailableError);
      // ...and the others, which never tried, keep to their policies at once.
      expect(await open.consume("sh-open")).toMatchObject({ allowed: true, reason: "fail-open" });
      expect(await memory.consume("sh-memory")).toMatchObject({ allowed: true, reason: "fallback", remaining: 99 });
      expect(await open.peek("sh-open")).toMatchObject({ reason: "fail-open" });
      expect(failed).toEqual(["sh-throw-1"]);
      // "throw" still tries Redis on every call.
      await expect(thrower.consume("sh-throw-2")).rejects.toBeInstanceOf(RedisUnavailableError);
      expect(failed).toEqual(["sh-throw-1", "sh-throw-2"]);
      proxy.heal();
      // A limiter without a pause probes at once; the first answer from Redis resumes the paused ones too.
      await eventually(
        "Redis to answer the prober",
        async () => ((await prober.consume("sh-probe")).reason === "redis" ? true : undefined),
        { timeoutMs: 10_000, intervalMs: 20 },
      );
      expect(await open.consume("sh-open")).toMatchObject({ reason: "redis", remaining: 98 });
      expect(await memory.consume("sh-memory")).toMatchObject({ reason: "redis", remaining: 99 });
    } finally {
      proxy.heal();
      own.disconnect();
    }
  });

  it.each(["fail-closed", "fail-open"] as const)(
    "%s: calls the policy answered while the client reconnects never reach Redis afterwards",
    async (policy) => {
      const own = connect(proxy.url, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
      own.on("error", () => {});
      await own.ping();
      const rl = new RateLimiter(own, {
        rules: [{ name: "q", limit: 5, windowMs: 600_000 }],
        prefix,
        onRedisError: policy,
        redisRetryMs: 0,
      });
      const key = `queued-${policy}`;
      try {
        expect(await rl.consume(key)).toMatchObject({ reason: "redis", remaining: 4 });
        proxy.refuse();
        proxy.dropConnections();
        for (let i = 0; i < 5; i++) {
          // Between reconnect attempts (a call issued in the same turn sees that state).
          await waitUntil("the client to be reconnecting", () => own.status === "reconnecting", {
            timeoutMs: 10_000,
            intervalMs: 5,
          });
          expect((await rl.consume(key)).reason).toBe(policy);
        }
        await proxy.accept();
        await waitUntil("the client to reconnect", () => own.status === "ready", { timeoutMs: 10_000, intervalMs: 20 });
        // Redis counted the call before the outage and this one: none of the five was queued and run on reconnect.
        expect(await rl.consume(key)).toMatchObject({ reason: "redis", remaining: 3 });
      } finally {
        await proxy.accept();
        own.disconnect();
      }
    },
  );

  it("memory fallback: peek and refund read and change the fallback's state, as consume does", async () => {
    const rl = new RateLimiter(client, {
      rules: [{ name: "m", limit: 2, windowMs: 60_000 }],
      prefix,
      onRedisError: { fallback: "memory" },
    });
    proxy.refuse();
    proxy.dropConnections();
    try {
      expect(await rl.consume("pr")).toMatchObject({ allowed: true, reason: "fallback", remaining: 1 });
      expect(await rl.consume("pr")).toMatchObject({ allowed: true, reason: "fallback", remaining: 0 });
      // What the fallback counted: a call would not pass.
      expect(await rl.peek("pr")).toMatchObject({ allowed: false, reason: "fallback", remaining: 0 });
      // The admitted work was not done: the unit comes back and the next call passes, the one after it does not.
      expect(await rl.refund("pr", 1)).toMatchObject({ allowed: true, reason: "fallback", remaining: 1 });
      expect(await rl.consume("pr")).toMatchObject({ allowed: true, reason: "fallback", remaining: 0 });
      expect(await rl.consume("pr")).toMatchObject({ allowed: false, reason: "fallback" });
    } finally {
      await proxy.accept();
    }
  });
});
