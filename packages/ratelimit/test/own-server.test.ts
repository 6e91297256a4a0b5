import { setTimeout as sleep } from "node:timers/promises";
import { connect, InvalidArgumentError, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { ConcurrencyLimiter, RateLimiter, type RedisErrorPolicy, type Rule } from "@coordis/ratelimit";
import { countCommands, eventually, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();
const RULES: Rule[] = [
  { name: "a", limit: 5, windowMs: 1_000 },
  { name: "b", limit: 100, windowMs: 60_000, algorithm: "sliding-window" },
  { name: "c", limit: 10, windowMs: 10_000, algorithm: "token-bucket" },
  { name: "d", limit: 10, windowMs: 10_000, algorithm: "gcra", burst: 3 },
];

describe("on a server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("consume, peek, refund and reset each take one round trip (one EVALSHA), whatever the number of rules", async () => {
    const rl = new RateLimiter(redis, { rules: RULES, prefix });
    await rl.consume("warm");
    await rl.peek("warm");
    await rl.refund("warm", 1);
    await rl.reset("warm");
    const ops: Array<() => Promise<unknown>> = [
      () => rl.consume("u1"),
      () => rl.consume("u1", 2),
      () => rl.peek("u1"),
      () => rl.refund("u1", 1),
      () => rl.reset("u1"),
    ];
    for (const op of ops) {
      const { roundTrips, sent } = await countCommands(server, op);
      expect(roundTrips).toBe(1);
      expect(sent).toEqual({ evalsha: 1 });
    }
    const cl = new ConcurrencyLimiter(redis, { limit: 2, ttlMs: 5_000, prefix });
    await (await cl.acquire("warm"))?.release();
    const acquired = await countCommands(server, () => cl.acquire("u1"));
    expect(acquired.roundTrips).toBe(1);
    const released = await countCommands(server, async () => acquired.result?.release());
    expect(released.roundTrips).toBe(1);
  });

  it("bad input throws InvalidArgumentError naming the argument and sends nothing", async () => {
    const rl = new RateLimiter(redis, { rules: RULES, prefix });
    const cl = new ConcurrencyLimiter(redis, { limit: 2, ttlMs: 5_000, prefix });
    const badRules: Array<[unknown, string]> = [
      [[{ limit: 0, windowMs: 1_000 }], "options.rules[0].limit"],
      [[{ limit: -1, windowMs: 1_000 }], "options.rules[0].limit"],
      [[{ limit: 1.5, windowMs: 1_000 }], "options.rules[0].limit"],
      [[{ limit: Number.NaN, windowMs: 1_000 }], "options.rules[0].limit"],
      [[{ limit: Number.POSITIVE_INFINITY, windowMs: 1_000 }], "options.rules[0].limit"],
      [[{ limit: 1, windowMs: 0 }], "options.rules[0].windowMs"],
      [[{ limit: 1, windowMs: -5 }], "options.rules[0].windowMs"],
      [[{ limit: 1, windowMs: 10.5 }], "options.rules[0].windowMs"],
      [[{ limit: 1, windowMs: Number.NaN }], "options.rules[0].windowMs"],
      [[{ limit: 1, windowMs: 1_000, algorithm: "leaky" }], "options.rules[0].algorithm"],
      [[{ limit: 1, windowMs: 1_000, burst: 3 }], "options.rules[0].burst"],
      [[{ limit: 1, windowMs: 1_000, algorithm: "gcra", burst: 0 }], "options.rules[0].burst"],
      [
        [
          { name: "x", limit: 1, windowMs: 1_000 },
          { name: "x", limit: 2, windowMs: 2_000 },
        ],
        "options.rules[1].name",
      ],
      [
        [
          { limit: 1, windowMs: 1 },
          { name: "fw-1-per-1ms", limit: 1, windowMs: 1 },
        ],
        "options.rules[1].name",
      ],
      [[{ name: "has space", limit: 1, windowMs: 1_000 }], "options.rules[0].name"],
      [[], "options.rules"],
      // A hole in the array (a stray comma) is a missing rule, not a TypeError.
      // biome-ignore lint/suspicious/noSparseArray: the sparse array is the input under test
      [[, { limit: 1, windowMs: 1_000 }], "options.rules[0]"],
    ];
    const { roundTrips, executed } = await countCommands(server, async () => {
      for (const [rules, argument] of badRules) {
        const err = (() => {
          try {
            new RateLimiter(redis, { rules: rules as Rule[], prefix });
          } catch (e) {
            return e;
          }
        })();
        expect(err, argument).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).argument).toBe(argument);
      }
      const calls: Array<[() => Promise<unknown>, string]> = [
        [() => rl.consume("k", 0), "cost"],
        [() => rl.consume("k", -1), "cost"],
        [() => rl.consume("k", 1.5), "cost"],
        [() => rl.consume("k", Number.NaN), "cost"],
        [() => rl.consume("k", Number.POSITIVE_INFINITY), "cost"],
        [() => rl.consume("k", 4), "cost"], // more than the smallest capacity (gcra burst 3)
        [() => rl.refund("k", 0), "cost"],
        [() => rl.consume(""), "key"],
        [() => rl.consume("x".repeat(513)), "key"],
        [() => rl.consume("a{b}"), "key"],
        [() => rl.consume(42 as unknown as string), "key"],
        [() => rl.peek(""), "key"],
        [() => rl.reset(""), "key"],
        [() => cl.acquire(""), "key"],
      ];
      for (const [call, argument] of calls) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).argument).toBe(argument);
      }
    });
    expect(roundTrips).toBe(0);
    expect(executed).toEqual({});
  });

  it("an unknown option key, at any level, throws InvalidArgumentError naming it and sends nothing", async () => {
    const rules: Rule[] = [{ limit: 1, windowMs: 1_000 }];
    const cases: Array<[() => unknown, string]> = [
      [() => new RateLimiter(redis, { rules, prefix, limt: 5 } as never), "options.limt"],
      [() => new RateLimiter(redis, { rules, prefx: "p" } as never), "options.prefx"],
      [
        () => new RateLimiter(redis, { rules: [{ limit: 1, windowMs: 1_000, algoritm: "gcra" } as never] }),
        "options.rules[0].algoritm",
      ],
      [
        () => new RateLimiter(redis, { rules, onRedisError: { fallback: "memory", maxKey: 3 } as never }),
        "options.onRedisError.maxKey",
      ],
      [
        () => new RateLimiter(redis, { rules: [{ limit: 1, windowMs: 1_000, capacity: 5 } as never] }),
        "options.rules[0].capacity",
      ],
      [() => new RateLimiter(redis, { rules, denyCache: { maxkeys: 3 } as never }), "options.denyCache.maxkeys"],
      [() => new RateLimiter(redis, { rules, batch: { maxSize: 4, delayMs: 1 } as never }), "options.batch.delayMs"],
      [() => new ConcurrencyLimiter(redis, { limit: 2, ttlMs: 1_000, prefx: "p" } as never), "options.prefx"],
      [() => new ConcurrencyLimiter(redis, { limit: 2, ttl: 1_000 } as never), "options.ttl"],
    ];
    const { roundTrips, executed } = await countCommands(server, async () => {
      for (const [build, argument] of cases) {
        const err = (() => {
          try {
            build();
          } catch (e) {
            return e;
          }
        })();
        expect(err, argument).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).argument, argument).toBe(argument);
        expect((err as Error).message, argument).toMatch(/unknown option|not an option/);
      }
    });
    expect(roundTrips).toBe(0);
    expect(executed).toEqual({});
    // a limiter's normalized rules (with their capacity) are accepted again
    const again = new RateLimiter(redis, { rules: [...new RateLimiter(redis, { rules: RULES }).rules], prefix });
    expect(again.rules).toEqual(new RateLimiter(redis, { rules: RULES }).rules);
  });

  it("deny cache: after a rejection the same key is answered locally until retryAfterMs", async () => {
    const rl = new RateLimiter(redis, { rules: [{ limit: 1, windowMs: 600 }], prefix, denyCache: true });
    await rl.consume("dc");
    const first = await rl.consume("dc");
    expect(first).toMatchObject({ allowed: false, reason: "redis" });
    const cached = await countCommands(server, () => rl.consume("dc"));
    expect(cached.roundTrips).toBe(0);
    expect(cached.result).toMatchObject({ allowed: false, reason: "deny-cache" });
    expect(cached.result.retryAfterMs).toBeLessThanOrEqual(first.retryAfterMs);
    await sleep(first.retryAfterMs + 10); // the delay under test
    expect(await rl.consume("dc")).toMatchObject({ allowed: true, reason: "redis" });
  });

  describe("Redis killed: failure policies", () => {
    const policies: Array<[RedisErrorPolicy, string]> = [
      ["fail-open", "fail-open"],
      ["fail-closed", "fail-closed"],
      [{ fallback: "memory" }, "fallback"],
    ];
    let client: RedisClient;
    beforeAll(async () => {
      client = connect(server.url, { commandTimeoutMs: 300 });
      client.on("error", () => {});
      await client.ping();
      await server.kill();
    });
    afterAll(() => {
      client.disconnect();
    });

    it("'throw' (default) rejects with RedisUnavailableError within the command timeout", async () => {
      const rl = new RateLimiter(client, { rules: RULES, prefix });
      const t0 = Date.now();
      const err = await rl.consume("k").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisUnavailableError);
      expect(Date.now() - t0).toBeLessThan(300 + 1_000);
    });

    it.each(policies)("%o decides locally within the command timeout, reason %s", async (policy, reason) => {
      const rl = new RateLimiter(client, { rules: [{ limit: 2, windowMs: 60_000 }], prefix, onRedisError: policy });
      const t0 = Date.now();
      const d = await rl.consume("k");
      expect(Date.now() - t0).toBeLessThan(300 + 1_000);
      expect(d.reason).toBe(reason);
      expect(d.allowed).toBe(reason !== "fail-closed");
      if (reason === "fail-closed") expect(d.retryAfterMs).toBe(1_000);
      // Within redisRetryMs the next calls skip Redis entirely.
      const t1 = Date.now();
      const more = [await rl.consume("k"), await rl.consume("k")];
      expect(Date.now() - t1).toBeLessThan(100);
      if (reason === "fallback")
        expect(more.map((m) => m.allowed)).toEqual([true, false]); // limit 2, in memory
      else expect(more.every((m) => m.allowed === (reason === "fail-open"))).toBe(true);
    });

    it("goes back to Redis once it is reachable again", async () => {
      const rl = new RateLimiter(client, {
        rules: [{ limit: 2, windowMs: 60_000 }],
        prefix,
        onRedisError: "fail-open",
        redisRetryMs: 50,
      });
      expect((await rl.consume("back")).reason).toBe("fail-open");
      await server.restart();
      const d = await eventually(
        "a decision by Redis again",
        async () => {
          const got = await rl.consume("back");
          return got.reason === "redis" ? got : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      expect(d).toMatchObject({ reason: "redis", allowed: true });
    });
  });
});
