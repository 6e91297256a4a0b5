/**
 * The rate-limiter-flexible migration table of packages/ratelimit/README.md, checked side by side: the peer
 * (RateLimiterRedis & co., installed as a devDependency) and its Coordis mapping on the same Redis, same scenario.
 */
import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { ConcurrencyLimiter, type Decision, RateLimiter, toHeaders } from "@coordis/ratelimit";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { Redis } from "ioredis";
import {
  BurstyRateLimiter,
  RateLimiterMemory,
  RateLimiterQueue,
  RateLimiterRedis,
  RateLimiterRes,
  RateLimiterUnion,
  RLWrapperBlackAndWhite,
} from "rate-limiter-flexible";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const WINDOW_S = 60; // long enough that no window ends during a test: admissions are compared within one window
const DAY_MS = 86_400_000;

/** rate-limiter-flexible's outcome of one consume: resolved (allowed) or rejected with a RateLimiterRes. */
async function peerConsume(
  limiter: { consume(key: string | number, points?: number): Promise<RateLimiterRes> },
  key: string | number,
  points = 1,
): Promise<{ allowed: boolean; res: RateLimiterRes }> {
  try {
    return { allowed: true, res: await limiter.consume(key, points) };
  } catch (rej) {
    if (rej instanceof Error) throw rej; // a Redis error, not a rejection
    return { allowed: false, res: rej as RateLimiterRes };
  }
}

describe("migration from rate-limiter-flexible (RateLimiterRedis) to @coordis/ratelimit", () => {
  let server: RedisServer;
  /** The peer's own connection (it defines a command on the client it is given). */
  let peerClient: Redis;
  let redis: RedisClient;
  const prefix = testPrefix("rlf");
  let n = 0;
  /** A fresh key per scenario, with the peer's and Coordis' limiters under prefixes of their own. */
  const fresh = () => {
    n += 1;
    return { key: `user-${n}`, peerPrefix: `${prefix}-peer-${n}`, prefix: `${prefix}-c${n}` };
  };

  beforeAll(async () => {
    server = await startRedis();
    peerClient = new Redis(server.adminUrl, { maxRetriesPerRequest: 1 });
    redis = connect(server.adminUrl);
    await Promise.all([peerClient.ping(), redis.ping()]);
  });
  afterAll(async () => {
    peerClient.disconnect();
    redis.disconnect();
    await server.stop();
  });

  it("every peer option and method the table names exists in the installed rate-limiter-flexible", () => {
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: "names",
      points: 10,
      duration: 1,
      blockDuration: 5,
      execEvenly: false,
      inMemoryBlockOnConsumed: 10,
      inMemoryBlockDuration: 5,
      blockOnConsumed: 10,
      insuranceLimiter: new RateLimiterMemory({ points: 10, duration: 1 }),
      useRedisPackage: false,
    });
    for (const method of ["consume", "get", "reward", "delete", "penalty", "block", "set"] as const) {
      expect(typeof peer[method], method).toBe("function");
    }
    expect(peer.blockDuration).toBe(5);
    expect(peer.execEvenly).toBe(false);
    expect(Reflect.get(peer, "inMemoryBlockOnConsumed")).toBe(10); // a getter its types do not declare
    expect(peer.blockOnConsumed).toBe(10);
    const res = new RateLimiterRes(1, 2, 3, true);
    expect(Object.keys(res.toJSON()).sort()).toEqual(
      ["consumedPoints", "isFirstInDuration", "msBeforeNext", "remainingPoints"].sort(),
    );
    for (const cls of [
      RateLimiterUnion,
      BurstyRateLimiter,
      RateLimiterMemory,
      RLWrapperBlackAndWhite,
      RateLimiterQueue,
    ]) {
      expect(typeof cls).toBe("function");
    }
    // The Coordis side of the table, with the shapes it names.
    const limiter = new RateLimiter(redis, {
      prefix: "names",
      rules: [{ limit: 10, windowMs: 1_000 }],
      onRedisError: { fallback: "memory", maxKeys: 100 },
      redisRetryMs: 1_000,
      denyCache: { maxKeys: 100 },
      batch: true,
    });
    for (const method of ["consume", "peek", "refund", "reset"] as const) {
      expect(typeof limiter[method], method).toBe("function");
    }
    for (const policy of ["fail-open", "fail-closed"] as const) {
      expect(() => new RateLimiter(redis, { rules: [{ limit: 1, windowMs: 1 }], onRedisError: policy })).not.toThrow();
    }
    expect(() => new RateLimiter(redis, { rules: [{ limit: 1, windowMs: 1 }], denyCache: true })).not.toThrow();
    expect(typeof new ConcurrencyLimiter(redis, { limit: 1, ttlMs: 1_000 }).acquire).toBe("function");
  });

  it("README example: the over-limit branch moves from catch to !decision.allowed, with the same admissions", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({ storeClient: peerClient, keyPrefix: s.peerPrefix, points: 10, duration: 1 });
    const limiter = new RateLimiter(redis, { prefix: s.prefix, rules: [{ name: "api", limit: 10, windowMs: 1_000 }] });
    // Five calls of 2 fill both; the sixth is over. Both are in one window: nothing here takes a second.
    const peerAllowed: boolean[] = [];
    const ours: Decision[] = [];
    for (let i = 0; i < 6; i++) {
      peerAllowed.push((await peerConsume(peer, s.key, 2)).allowed);
      ours.push(await limiter.consume(s.key, 2));
    }
    expect(peerAllowed).toEqual([true, true, true, true, true, false]);
    expect(ours.map((d) => d.allowed)).toEqual(peerAllowed);
    const rejected = ours[5] as Decision;
    const headers = toHeaders(rejected, limiter.rules);
    expect(headers["Retry-After"]).toBe(String(Math.ceil(rejected.retryAfterMs / 1000)));
    expect(headers["RateLimit-Policy"]).toBe('"api";q=10;w=1');
    expect(toHeaders(ours[0] as Decision, limiter.rules)["Retry-After"]).toBeUndefined();
  });

  it("points + duration -> limit + windowMs: the same fixed window admits the same calls, with the same counts", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 10,
      duration: WINDOW_S,
    });
    const limiter = new RateLimiter(redis, { prefix: s.prefix, rules: [{ limit: 10, windowMs: WINDOW_S * 1000 }] });
    for (let i = 0; i < 13; i++) {
      const p = await peerConsume(peer, s.key);
      const d = await limiter.consume(s.key);
      expect(d.allowed, `call ${i + 1}`).toBe(p.allowed);
      if (p.allowed) {
        // remainingPoints -> remaining, consumedPoints -> limit - remaining
        expect(d.remaining).toBe(p.res.remainingPoints);
        expect(d.limit - d.remaining).toBe(p.res.consumedPoints);
        // msBeforeNext (allowed) -> resetMs: both the end of the window the first call opened
        expect(d.retryAfterMs).toBe(0);
        for (const ms of [d.resetMs, p.res.msBeforeNext]) {
          expect(ms).toBeGreaterThan((WINDOW_S * 1000) / 2);
          expect(ms).toBeLessThanOrEqual(WINDOW_S * 1000);
        }
      } else {
        // msBeforeNext (rejected) -> retryAfterMs: the same instant, the window's end
        expect(p.res.remainingPoints).toBe(0);
        expect(d.remaining).toBe(0);
        for (const ms of [d.retryAfterMs, p.res.msBeforeNext]) {
          expect(ms).toBeGreaterThan((WINDOW_S * 1000) / 2);
          expect(ms).toBeLessThanOrEqual(WINDOW_S * 1000);
        }
      }
    }
  });

  it("a rejected call: rate-limiter-flexible counts it, Coordis consumes nothing (as the table says)", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 10,
      duration: WINDOW_S,
    });
    const limiter = new RateLimiter(redis, { prefix: s.prefix, rules: [{ limit: 10, windowMs: WINDOW_S * 1000 }] });
    const costs = [2, 3, 4, 2, 1];
    const peerOutcomes: boolean[] = [];
    const ourOutcomes: boolean[] = [];
    for (const cost of costs) {
      peerOutcomes.push((await peerConsume(peer, s.key, cost)).allowed);
      ourOutcomes.push((await limiter.consume(s.key, cost)).allowed);
    }
    // 2+3+4 = 9 pass in both; the 2 is over in both; the last 1 still fits 10 in Coordis only, because the peer
    // counted the rejected 2 (11, then 12).
    expect(peerOutcomes).toEqual([true, true, true, false, false]);
    expect(ourOutcomes).toEqual([true, true, true, false, true]);
    expect((await peer.get(s.key))?.consumedPoints).toBe(12);
    const peeked = await limiter.peek(s.key);
    expect(peeked.limit - peeked.remaining).toBe(10);
  });

  it("cost above the capacity: the peer rejects (and counts it), Coordis throws InvalidArgumentError, sends nothing", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 10,
      duration: WINDOW_S,
    });
    const limiter = new RateLimiter(redis, { prefix: s.prefix, rules: [{ limit: 10, windowMs: WINDOW_S * 1000 }] });
    const p = await peerConsume(peer, s.key, 11);
    expect(p.allowed).toBe(false);
    expect(p.res.consumedPoints).toBe(11);
    const counted = await countCommands(server, () => limiter.consume(s.key, 11).catch((e: unknown) => e));
    expect(counted.result).toBeInstanceOf(InvalidArgumentError);
    expect(counted.sent).toEqual({});
  });

  it("get -> peek: null vs a full Decision for an unknown key; both read without consuming", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 10,
      duration: WINDOW_S,
    });
    const limiter = new RateLimiter(redis, { prefix: s.prefix, rules: [{ limit: 10, windowMs: WINDOW_S * 1000 }] });
    expect(await peer.get(s.key)).toBeNull();
    const empty = await limiter.peek(s.key);
    expect(empty).toMatchObject({ allowed: true, remaining: 10, limit: 10 });
    await peer.consume(s.key, 3);
    await limiter.consume(s.key, 3);
    for (let i = 0; i < 2; i++) {
      const got = await peer.get(s.key);
      const peeked = await limiter.peek(s.key);
      expect(got?.consumedPoints).toBe(3);
      expect(got?.remainingPoints).toBe(7);
      expect(peeked.remaining).toBe(7);
      expect(peeked.allowed).toBe(true);
    }
  });

  it("reward -> refund: the same units back, but Coordis never goes beyond full (the peer does)", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 10,
      duration: WINDOW_S,
    });
    const limiter = new RateLimiter(redis, { prefix: s.prefix, rules: [{ limit: 10, windowMs: WINDOW_S * 1000 }] });
    await peer.consume(s.key, 4);
    await limiter.consume(s.key, 4);
    expect((await peer.reward(s.key, 2)).consumedPoints).toBe(2);
    expect((await limiter.refund(s.key, 2)).remaining).toBe(8);
    // Over-rewarding: the peer's count goes negative and then admits more than `points` in the window.
    expect((await peer.reward(s.key, 5)).consumedPoints).toBe(-3);
    expect((await limiter.refund(s.key, 5)).remaining).toBe(10);
    let peerAdmitted = 0;
    let ourAdmitted = 0;
    for (let i = 0; i < 15; i++) {
      if ((await peerConsume(peer, s.key)).allowed) peerAdmitted += 1;
      if ((await limiter.consume(s.key)).allowed) ourAdmitted += 1;
    }
    expect(peerAdmitted).toBe(13);
    expect(ourAdmitted).toBe(10);
  });

  it("delete -> reset: boolean vs void, and the key is full again in both", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 2,
      duration: WINDOW_S,
    });
    const limiter = new RateLimiter(redis, { prefix: s.prefix, rules: [{ limit: 2, windowMs: WINDOW_S * 1000 }] });
    await peer.consume(s.key, 2);
    await limiter.consume(s.key, 2);
    expect((await peerConsume(peer, s.key)).allowed).toBe(false);
    expect((await limiter.consume(s.key)).allowed).toBe(false);
    expect(await peer.delete(s.key)).toBe(true);
    expect(await limiter.reset(s.key)).toBeUndefined();
    expect(await peer.delete(s.key)).toBe(false);
    expect((await peerConsume(peer, s.key, 2)).allowed).toBe(true);
    expect((await limiter.consume(s.key, 2)).allowed).toBe(true);
    // reset forgets only this limiter's rules on the key: another limiter's state there stays.
    const daily = new RateLimiter(redis, { prefix: s.prefix, rules: [{ name: "daily", limit: 5, windowMs: DAY_MS }] });
    await daily.consume(s.key, 3);
    await limiter.reset(s.key);
    expect((await limiter.peek(s.key)).remaining).toBe(2);
    expect((await daily.peek(s.key)).remaining).toBe(2);
  });

  it("keyPrefix -> prefix: numbers and braces are keys to the peer, InvalidArgumentError to Coordis", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 2,
      duration: WINDOW_S,
    });
    const limiter = new RateLimiter(redis, { prefix: s.prefix, rules: [{ limit: 2, windowMs: WINDOW_S * 1000 }] });
    expect((await peerConsume(peer, 42)).allowed).toBe(true);
    expect((await peerConsume(peer, "{a}")).allowed).toBe(true);
    await expect(limiter.consume(42 as unknown as string)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(limiter.consume("{a}")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(limiter.consume("x".repeat(513))).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await limiter.consume("x".repeat(512))).allowed).toBe(true);
    expect((await limiter.consume("42")).allowed).toBe(true);
  });

  it("duration: 0 (never reset) has no equivalent; windowMs goes up to 365 days", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({ storeClient: peerClient, keyPrefix: s.peerPrefix, points: 1, duration: 0 });
    expect((await peerConsume(peer, s.key)).allowed).toBe(true);
    expect(await peerClient.pttl(`${s.peerPrefix}:${s.key}`)).toBe(-1); // stored without expiry
    expect(() => new RateLimiter(redis, { rules: [{ limit: 1, windowMs: 0 }] })).toThrow(InvalidArgumentError);
    expect(() => new RateLimiter(redis, { rules: [{ limit: 1, windowMs: 365 * DAY_MS + 1 }] })).toThrow(
      InvalidArgumentError,
    );
    const yearly = new RateLimiter(redis, { prefix: s.prefix, rules: [{ limit: 1, windowMs: 365 * DAY_MS }] });
    expect((await yearly.consume(s.key)).allowed).toBe(true);
    expect((await yearly.consume(s.key)).allowed).toBe(false);
  });

  it("RateLimiterUnion -> several rules: the union consumes from a limiter that admitted, Coordis all or none", async () => {
    const s = fresh();
    const a = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: `${s.peerPrefix}-a`,
      points: 5,
      duration: WINDOW_S,
    });
    const b = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: `${s.peerPrefix}-b`,
      points: 3,
      duration: WINDOW_S,
    });
    const union = new RateLimiterUnion(a, b);
    const limiter = new RateLimiter(redis, {
      prefix: s.prefix,
      rules: [
        { name: "a", limit: 5, windowMs: WINDOW_S * 1000 },
        { name: "b", limit: 3, windowMs: WINDOW_S * 1000 },
      ],
    });
    const peerOutcomes: boolean[] = [];
    const ourOutcomes: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      peerOutcomes.push(
        await union.consume(s.key).then(
          () => true,
          (rej: unknown) => {
            if (rej instanceof Error) throw rej;
            // The union rejects with the rejecting limiters' results, by keyPrefix.
            expect(Object.keys(rej as object)).toEqual([`${s.peerPrefix}-b`]);
            return false;
          },
        ),
      );
      ourOutcomes.push((await limiter.consume(s.key)).allowed);
    }
    expect(peerOutcomes).toEqual([true, true, true, false]);
    expect(ourOutcomes).toEqual(peerOutcomes);
    expect((await a.get(s.key))?.consumedPoints).toBe(4); // the rejected union call still took one from `a`
    const peeked = await limiter.peek(s.key);
    expect(peeked.rules.find((r) => r.name === "a")?.remaining).toBe(2); // 3 consumed, the rejected call none
    expect(peeked.rules.find((r) => r.name === "b")?.remaining).toBe(0);
  });

  it("BurstyRateLimiter(rate, burst) -> a token-bucket rule whose burst is both limiters' points together", async () => {
    const s = fresh();
    const bursty = new BurstyRateLimiter(
      new RateLimiterRedis({ storeClient: peerClient, keyPrefix: `${s.peerPrefix}-r`, points: 2, duration: WINDOW_S }),
      new RateLimiterRedis({
        storeClient: peerClient,
        keyPrefix: `${s.peerPrefix}-b`,
        points: 3,
        duration: WINDOW_S * 10,
      }),
    );
    const limiter = new RateLimiter(redis, {
      prefix: s.prefix,
      rules: [{ limit: 2, windowMs: WINDOW_S * 1000, algorithm: "token-bucket", burst: 2 + 3 }],
    });
    const peerOutcomes: boolean[] = [];
    const ourOutcomes: boolean[] = [];
    for (let i = 0; i < 7; i++) {
      peerOutcomes.push((await peerConsume(bursty, s.key)).allowed);
      ourOutcomes.push((await limiter.consume(s.key)).allowed);
    }
    expect(peerOutcomes).toEqual([true, true, true, true, true, false, false]);
    expect(ourOutcomes).toEqual(peerOutcomes);
  });

  it("inMemoryBlockOnConsumed -> denyCache: rejected locally without a Redis call (Coordis after Redis' first rejection)", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 3,
      duration: WINDOW_S,
      inMemoryBlockOnConsumed: 3,
    });
    const limiter = new RateLimiter(redis, {
      prefix: s.prefix,
      rules: [{ limit: 3, windowMs: WINDOW_S * 1000 }],
      denyCache: true,
    });
    for (let i = 0; i < 3; i++) {
      expect((await peerConsume(peer, s.key)).allowed).toBe(true);
      expect((await limiter.consume(s.key)).allowed).toBe(true);
    }
    // The peer blocked the key locally when its count reached 3: the 4th call never reaches Redis.
    const peer4 = await countCommands(server, () => peerConsume(peer, s.key));
    expect(peer4.result.allowed).toBe(false);
    expect(peer4.sent).toEqual({});
    // Coordis caches a rejection by Redis: the 4th call asks Redis, the 5th does not.
    const our4 = await countCommands(server, () => limiter.consume(s.key));
    expect(our4.result).toMatchObject({ allowed: false, reason: "redis" });
    expect(Object.values(our4.sent).reduce((x, y) => x + y, 0)).toBe(1);
    const our5 = await countCommands(server, () => limiter.consume(s.key));
    expect(our5.result).toMatchObject({ allowed: false, reason: "deny-cache" });
    expect(our5.sent).toEqual({});
  });

  it("insuranceLimiter -> onRedisError: { fallback: 'memory' }: the same admissions while Redis is down", async () => {
    const down = await startRedis();
    const peerDown = new Redis(down.adminUrl, { maxRetriesPerRequest: 0 });
    const ourDown = connect(down.adminUrl);
    try {
      await Promise.all([peerDown.ping(), ourDown.ping()]);
      const s = fresh();
      const peer = new RateLimiterRedis({
        storeClient: peerDown,
        keyPrefix: s.peerPrefix,
        points: 3,
        duration: WINDOW_S,
        rejectIfRedisNotReady: true,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix: s.peerPrefix, points: 3, duration: WINDOW_S }),
      });
      const limiter = new RateLimiter(ourDown, {
        prefix: s.prefix,
        rules: [{ limit: 3, windowMs: WINDOW_S * 1000 }],
        onRedisError: { fallback: "memory" },
      });
      await down.kill();
      await waitUntil(
        "both clients see the connection gone",
        () => peerDown.status !== "ready" && ourDown.status !== "ready",
      );
      const peerOutcomes: boolean[] = [];
      const ours: Decision[] = [];
      for (let i = 0; i < 5; i++) {
        peerOutcomes.push((await peerConsume(peer, s.key)).allowed);
        ours.push(await limiter.consume(s.key));
      }
      expect(peerOutcomes).toEqual([true, true, true, false, false]);
      expect(ours.map((d) => d.allowed)).toEqual(peerOutcomes);
      expect(new Set(ours.map((d) => d.reason))).toEqual(new Set(["fallback"]));
    } finally {
      peerDown.disconnect();
      ourDown.disconnect();
      await down.stop();
    }
  });

  it("consume at the start + reward at the end -> ConcurrencyLimiter permits", async () => {
    const s = fresh();
    const peer = new RateLimiterRedis({
      storeClient: peerClient,
      keyPrefix: s.peerPrefix,
      points: 2,
      duration: WINDOW_S,
    });
    const uploads = new ConcurrencyLimiter(redis, { prefix: s.prefix, limit: 2, ttlMs: 30_000 });
    expect((await peerConsume(peer, s.key)).allowed).toBe(true);
    expect((await peerConsume(peer, s.key)).allowed).toBe(true);
    expect((await peerConsume(peer, s.key)).allowed).toBe(false);
    const first = await uploads.acquire(s.key);
    const second = await uploads.acquire(s.key);
    expect(first).not.toBeNull();
    expect(second).not.toBeNull();
    expect(await uploads.acquire(s.key)).toBeNull();
    // The end of one piece of work frees its slot. With the peer, the rejected attempt was counted too, so one
    // reward is not enough: the permit has no such leak (a busy acquire takes nothing).
    await peer.reward(s.key, 1);
    expect(await first?.release()).toBe(true);
    expect((await peerConsume(peer, s.key)).allowed).toBe(false);
    const third = await uploads.acquire(s.key);
    expect(third).not.toBeNull();
    await Promise.all([second?.release(), third?.release()]);
  });
});
