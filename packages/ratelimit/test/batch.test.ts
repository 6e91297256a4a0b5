import { setImmediate as tick } from "node:timers/promises";
import {
  type CoordisObserver,
  connect,
  InvalidArgumentError,
  type OperationEvent,
  type RedisClient,
  ScriptError,
  slotOf,
} from "@coordis/core";
import { type Algorithm, type Decision, RateLimiter, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import {
  countCommands,
  type RedisCluster,
  type RedisServer,
  startRedis,
  startRedisCluster,
  testPrefix,
} from "@coordis/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { rulesArgs } from "../src/rules.js";
import { specialisedConsume } from "../src/specialised.js";

const prefix = testPrefix("rlb");
// Windows of a year: time does not move the state during a run, so batched and unbatched runs must agree exactly.
const YEAR = 365 * 24 * 3_600_000;

/** What must be identical between a batched and an unbatched call (not the time-dependent resetMs). */
function essence(d: Decision) {
  return { allowed: d.allowed, reason: d.reason, rules: d.rules.map((r) => [r.name, r.allowed, r.remaining]) };
}

const ALL_RULES: Rule[] = [
  { name: "fw", limit: 7, windowMs: YEAR },
  { name: "sw", limit: 9, windowMs: YEAR, algorithm: "sliding-window" },
  { name: "tb", limit: 8, windowMs: YEAR, algorithm: "token-bucket", burst: 6 },
  { name: "gcra", limit: 10, windowMs: YEAR, algorithm: "gcra", burst: 5 },
];

function stateKey(p: string, key: string) {
  return `${p}:rl:{${key}}`;
}

describe("micro-batched consume on the shared server", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("property: concurrent batched bursts decide exactly like the same calls unbatched, in call order", async () => {
    const algorithms: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.subarray(algorithms, { minLength: 1 }),
        fc.integer({ min: 1, max: 40 }),
        fc.array(
          fc.array(fc.record({ key: fc.constantFrom("a", "b", "c"), cost: fc.integer({ min: 1, max: 3 }) }), {
            minLength: 1,
            maxLength: 25,
          }),
          { minLength: 1, maxLength: 5 },
        ),
        async (algs, maxSize, bursts) => {
          run++;
          const rules = ALL_RULES.filter((r) => algs.includes(r.algorithm ?? "fixed-window"));
          const batched = new RateLimiter(redis, { rules, prefix: `${prefix}-p${run}b`, batch: { maxSize } });
          const plain = new RateLimiter(redis, { rules, prefix: `${prefix}-p${run}u` });
          for (const burst of bursts) {
            const got = await Promise.all(burst.map((c) => batched.consume(c.key, c.cost)));
            const want: Decision[] = [];
            for (const c of burst) want.push(await plain.consume(c.key, c.cost));
            expect(got.map(essence)).toEqual(want.map(essence));
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it("a rejected call in a batch consumes nothing and later calls on the key are unaffected; order is call order", async () => {
    const rl = new RateLimiter(redis, { rules: [{ limit: 3, windowMs: YEAR }], prefix, batch: true });
    const got = await Promise.all([rl.consume("o", 2), rl.consume("o", 2), rl.consume("o", 1), rl.consume("o", 1)]);
    expect(got.map((d) => [d.allowed, d.remaining])).toEqual([
      [true, 1],
      [false, 1],
      [true, 0],
      [false, 0],
    ]);
    const many = await Promise.all(Array.from({ length: 8 }, () => rl.consume("seq")));
    expect(many.map((d) => d.remaining)).toEqual([2, 1, 0, 0, 0, 0, 0, 0]);
    expect(many.map((d) => d.allowed)).toEqual([true, true, true, false, false, false, false, false]);
  });

  it("a call that fails in Redis fails only its own caller", async () => {
    const rl = new RateLimiter(redis, { rules: [{ limit: 5, windowMs: YEAR }], prefix, batch: true });
    await redis.hset(stateKey(prefix, "wrongtype"), "f", "a hash, not the string a rate-limit state is");
    const settled = await Promise.allSettled([rl.consume("e1"), rl.consume("wrongtype"), rl.consume("e1")]);
    expect(settled[0]).toMatchObject({ status: "fulfilled", value: { allowed: true, remaining: 4 } });
    expect(settled[2]).toMatchObject({ status: "fulfilled", value: { allowed: true, remaining: 3 } });
    expect(settled[1].status).toBe("rejected");
    const err = (settled[1] as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(ScriptError);
    expect((err as ScriptError).redisMessage).toMatch(/WRONGTYPE/);
  });

  it("reports one observer event per call, each with its own key and outcome", async () => {
    const events: OperationEvent[] = [];
    const observer: CoordisObserver = { onOperation: (e) => events.push(e) };
    const rl = new RateLimiter(redis, { rules: [{ limit: 1, windowMs: YEAR }], prefix, batch: true, observer });
    await Promise.all([rl.consume("ob1"), rl.consume("ob2"), rl.consume("ob1")]);
    expect(events.map((e) => [e.op, e.name, e.outcome])).toEqual([
      ["consume", "ob1", "allowed"],
      ["consume", "ob2", "allowed"],
      ["consume", "ob1", "rejected"],
    ]);
  });

  it("validates the batch option", () => {
    const rules = [{ limit: 1, windowMs: 1_000 }];
    for (const [batch, argument] of [
      [{ maxSize: 0 }, "options.batch.maxSize"],
      [{ maxSize: 1.5 }, "options.batch.maxSize"],
      [{ maxSize: 1001 }, "options.batch.maxSize"],
      [{ maxDelayMs: -1 }, "options.batch.maxDelayMs"],
      [{ maxDelayMs: 1001 }, "options.batch.maxDelayMs"],
      ["yes", "options.batch"],
    ] as const) {
      const err = (() => {
        try {
          new RateLimiter(redis, { rules, prefix, batch: batch as never });
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(argument);
    }
    expect(new RateLimiter(redis, { rules, prefix, batch: true }).batch).toEqual({ maxSize: 32, maxDelayMs: 0 });
    expect(new RateLimiter(redis, { rules, prefix }).batch).toBeUndefined();
  });
});

describe("micro-batched consume on a server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  const rules: Rule[] = [
    { name: "a", limit: 100, windowMs: YEAR },
    { name: "b", limit: 50, windowMs: YEAR, algorithm: "gcra" },
  ];
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    await redis.ping();
    // Cache the scripts so every call below is a plain EVALSHA (a batch of two loads consume-batch).
    const warmBatched = new RateLimiter(redis, { rules, prefix, batch: true });
    await Promise.all([warmBatched.consume("warm"), warmBatched.consume("warm")]);
    const warm = new RateLimiter(redis, { rules, prefix });
    await warm.consume("warm");
    await warm.peek("warm");
    await warm.refund("warm", 1);
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a call alone in its event-loop turn is sent as the plain consume script, with the same decision and in call order", async () => {
    const own = await startRedis();
    try {
      const client = own.client();
      const rl = new RateLimiter(client, { rules, prefix, batch: true });
      const lone = await rl.consume("lone");
      // the plain consume script is the limiter's own copy (its rules as constants; see specialised.test.ts)
      const plain = specialisedConsume(rulesArgs(rl.rules));
      expect(
        await client.script(
          "EXISTS",
          plain?.sha1 ?? "none",
          ratelimitScripts.consume.sha1,
          ratelimitScripts.consumeBatch.sha1,
        ),
      ).toEqual([1, 0, 0]);
      expect(lone.rules.map((r) => [r.allowed, r.remaining])).toEqual([
        [true, 99],
        [true, 49],
      ]);
      // consume is cached, consume-batch is not: a batch of two (consume-batch, which meets NOSCRIPT) and a call
      // alone (consume) issued together still run in call order.
      const pairs = new RateLimiter(client, { rules, prefix, batch: { maxSize: 2 } });
      const three = await Promise.all([pairs.consume("lone"), pairs.consume("lone"), pairs.consume("lone")]);
      expect(await client.script("EXISTS", ratelimitScripts.consumeBatch.sha1)).toEqual([1]);
      expect(three.map((d) => d.rules.map((r) => r.remaining))).toEqual([
        [98, 48],
        [97, 47],
        [96, 46],
      ]);
    } finally {
      await own.stop();
    }
  });

  it("N concurrent consumes on N different keys are one EVALSHA", async () => {
    const rl = new RateLimiter(redis, { rules, prefix, batch: { maxSize: 100 } });
    const { result, sent } = await countCommands(server, () =>
      Promise.all(Array.from({ length: 60 }, (_, i) => rl.consume(`n${i % 40}`))),
    );
    expect(sent).toEqual({ evalsha: 1 });
    expect(result.every((d) => d.allowed && d.reason === "redis")).toBe(true);
    expect(result[0]?.rules.map((r) => r.remaining)).toEqual([99, 49]);
    expect(result[40]?.rules.map((r) => r.remaining)).toEqual([98, 48]);
  });

  it("batch: true sends a burst in script calls of the default maxSize (32), in call order", async () => {
    const rl = new RateLimiter(redis, { rules, prefix, batch: true });
    const { result, sent } = await countCommands(server, () =>
      Promise.all(Array.from({ length: 50 }, () => rl.consume("default-size"))),
    );
    expect(sent).toEqual({ evalsha: 2 });
    expect(result.map((d) => d.rules[0]?.remaining)).toEqual(Array.from({ length: 50 }, (_, i) => 99 - i));
  });

  it("maxSize splits a burst into ceil(N / maxSize) script calls", async () => {
    const rl = new RateLimiter(redis, { rules, prefix, batch: { maxSize: 10 } });
    const { result, sent } = await countCommands(server, () =>
      Promise.all(Array.from({ length: 25 }, () => rl.consume("split"))),
    );
    expect(sent).toEqual({ evalsha: 3 });
    expect(result.map((d) => d.rules[0]?.remaining)).toEqual(Array.from({ length: 25 }, (_, i) => 99 - i));
  });

  it("maxDelayMs collects calls of later event-loop turns into the same batch", async () => {
    const rl = new RateLimiter(redis, { rules, prefix, batch: { maxDelayMs: 500 } });
    const { result, sent } = await countCommands(server, async () => {
      const first = rl.consume("delay");
      await tick();
      await tick();
      return Promise.all([first, rl.consume("delay")]);
    });
    expect(sent).toEqual({ evalsha: 1 });
    expect(result.map((d) => d.remaining)).toEqual([49, 48]);
  });

  it("peek, refund and reset send the queued consumes first, so they see them (order per key)", async () => {
    const rl = new RateLimiter(redis, { rules: [{ limit: 5, windowMs: YEAR }], prefix, batch: true });
    await rl.consume("mix-warm"); // this rule set's consume script, cached: every call below is one EVALSHA
    const { result, sent } = await countCommands(server, async () => {
      const consumed = rl.consume("mix", 2);
      const peeked = rl.peek("mix");
      const refunded = rl.refund("mix", 1);
      return Promise.all([consumed, peeked, refunded]);
    });
    expect(sent).toEqual({ evalsha: 3 });
    expect(result.map((d) => d.remaining)).toEqual([3, 3, 4]);
  });

  it("bad input is rejected before queueing: nothing is sent for it and the rest of the batch goes on", async () => {
    const rl = new RateLimiter(redis, { rules: [{ limit: 5, windowMs: YEAR }], prefix, batch: true });
    const bad = await countCommands(server, () =>
      Promise.allSettled([rl.consume("{x}"), rl.consume("ok", 0), rl.consume("ok", 6)]),
    );
    expect(bad.roundTrips).toBe(0);
    for (const s of bad.result) expect((s as PromiseRejectedResult).reason).toBeInstanceOf(InvalidArgumentError);
    const mixed = await countCommands(server, () =>
      Promise.allSettled([rl.consume("ok"), rl.consume("", 1), rl.consume("ok", 2.5), rl.consume("ok")]),
    );
    expect(mixed.sent).toEqual({ evalsha: 1 });
    expect(mixed.result.map((s) => s.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    expect((mixed.result[1] as PromiseRejectedResult).reason).toMatchObject({ argument: "key" });
    expect((mixed.result[2] as PromiseRejectedResult).reason).toMatchObject({ argument: "cost" });
  });

  it("a failure policy decides per caller when Redis is unavailable", async () => {
    const client = connect(server.url, { commandTimeoutMs: 300 });
    client.on("error", () => {});
    await client.ping();
    const events: OperationEvent[] = [];
    const rl = new RateLimiter(client, {
      rules: [{ limit: 5, windowMs: YEAR }],
      prefix,
      batch: true,
      onRedisError: "fail-closed",
      observer: { onOperation: (e) => events.push(e) },
    });
    server.pause();
    try {
      const got = await Promise.all([rl.consume("p1"), rl.consume("p2"), rl.consume("p1")]);
      expect(got.map((d) => [d.allowed, d.reason])).toEqual([
        [false, "fail-closed"],
        [false, "fail-closed"],
        [false, "fail-closed"],
      ]);
      expect(events.map((e) => e.name)).toEqual(["p1", "p2", "p1"]);
    } finally {
      server.resume();
      client.disconnect();
    }
  });
});

describe("micro-batched consume on Redis Cluster", () => {
  it("groups by hash slot on the shared cluster: results equal the unbatched ones", async () => {
    const redis = connect(inject("coordisClusterUrl"));
    try {
      const rules: Rule[] = [
        { name: "fw", limit: 4, windowMs: YEAR },
        { name: "tb", limit: 6, windowMs: YEAR, algorithm: "token-bucket" },
      ];
      const batched = new RateLimiter(redis, { rules, prefix: `${prefix}-cb`, batch: true });
      const plain = new RateLimiter(redis, { rules, prefix: `${prefix}-cu` });
      const calls = Array.from({ length: 90 }, (_, i) => ({ key: `k${(i * 7) % 30}`, cost: 1 + (i % 2) }));
      const got = await Promise.all(calls.map((c) => batched.consume(c.key, c.cost)));
      const want: Decision[] = [];
      for (const c of calls) want.push(await plain.consume(c.key, c.cost));
      expect(got.map(essence)).toEqual(want.map(essence));
    } finally {
      redis.disconnect();
    }
  });

  describe("on a cluster of its own", () => {
    let cluster: RedisCluster;
    let redis: RedisClient;
    beforeAll(async () => {
      cluster = await startRedisCluster({ masters: 3, leastPrivilege: true });
      redis = connect(cluster.url);
      await redis.ping();
    });
    afterAll(async () => {
      redis.disconnect();
      await cluster.stop();
    });

    it("sends one EVALSHA per hash slot of the batch, on the node that owns it", async () => {
      const rl = new RateLimiter(redis, { rules: [{ limit: 10, windowMs: YEAR }], prefix, batch: true });
      const keys = Array.from({ length: 12 }, (_, i) => `s${i}`);
      // Warm every node's script cache (two calls per slot: a batch of one is sent as the plain consume script).
      await Promise.all([...keys, ...keys].map((k) => rl.consume(k)));
      const slots = new Set(keys.map((k) => slotOf(stateKey(prefix, k))));
      const { result, sent } = await countCommands(cluster, () =>
        Promise.all([...keys, ...keys, ...keys].map((k) => rl.consume(k))),
      );
      expect(sent).toEqual({ evalsha: slots.size });
      expect(result.map((d) => d.remaining)).toEqual([
        ...keys.map(() => 7),
        ...keys.map(() => 6),
        ...keys.map(() => 5),
      ]);
    });
  });
});
