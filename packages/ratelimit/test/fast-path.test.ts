import { connect, type RedisClient } from "@coordis/core";
import { type Algorithm, type Decision, RateLimiter, type Rule } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];
const MONTH = 30 * 24 * 3_600_000;
/**
 * Ms the two keys' calls may be apart: resetMs, retryAfterMs, stored instants and bucket levels (one tick per ms with
 * these rules) may differ by that much.
 */
const SLACK_MS = 250;

/**
 * A key holding one rule's entry only is decided by consume's single-rule fast path; the same rule on a key that
 * also holds another limiter's entry is decided by the general path. Both must give the same decisions and store
 * the same state, through admissions, rejections and rule changes.
 */
describe("consume: the single-rule fast path decides and stores exactly as the general path", () => {
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisAdminRedisUrl"));
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  /** Our rule's stored entry on a key, as numbers: [expAtMs, ...state]. */
  const entry = async (key: string, field: string): Promise<number[] | undefined> => {
    const value = await admin.get(`${prefix}:rl:{${key}}`);
    const raw = value
      ?.split(";")
      .find((e) => e.startsWith(`${field}=`))
      ?.slice(field.length + 1);
    return raw?.split(":").map(Number);
  };
  const close = (a: number, b: number) => Math.abs(a - b) <= SLACK_MS;
  const same = (fast: Decision, general: Decision, step: string) => {
    expect([fast.allowed, fast.remaining], step).toEqual([general.allowed, general.remaining]);
    expect(close(fast.resetMs, general.resetMs), `${step}: resetMs ${fast.resetMs} vs ${general.resetMs}`).toBe(true);
    expect(close(fast.retryAfterMs, general.retryAfterMs), `${step}: retryAfterMs`).toBe(true);
  };

  it.each(ALGS)("%s", async (algorithm) => {
    const bucket = algorithm === "token-bucket" || algorithm === "gcra";
    const v1: Rule = { name: "r", limit: 10, windowMs: MONTH, algorithm };
    // a rule change: a lower limit and a longer window (buckets: also another unit, stored ticks converted)
    const v2: Rule = { name: "r", limit: 6, windowMs: 2 * MONTH, algorithm, ...(bucket ? { burst: 10 } : {}) };
    const other = new RateLimiter(redis, { rules: [{ name: "other", limit: 5, windowMs: 4 * MONTH }], prefix });
    const fastKey = `fp-${algorithm}-${process.pid}-a`;
    const generalKey = `fp-${algorithm}-${process.pid}-b`;
    await Promise.all([other.reset(generalKey), new RateLimiter(redis, { rules: [v1], prefix }).reset(fastKey)]);
    await other.consume(generalKey);
    const steps: Array<[Rule, number]> = [
      [v1, 3],
      [v1, 4],
      [v1, 5], // rejected: 7 of 10 taken
      [v1, 3],
      [v1, 1], // rejected
      [v2, 1], // rejected under the lower limit; only the expiry moves forward
      [v2, 6],
    ];
    const field = `r|${{ "fixed-window": "fw", "sliding-window": "sw", "token-bucket": "tb", gcra: "gcra" }[algorithm]}`;
    for (const [i, [rule, cost]] of steps.entries()) {
      const rl = new RateLimiter(redis, { rules: [rule], prefix });
      const step = `step ${i} (${rule.limit}/${rule.windowMs} ms, cost ${cost})`;
      const fast = await rl.consume(fastKey, cost);
      const general = await rl.consume(generalKey, cost);
      same(fast, general, step);
      const [fastEntry, generalEntry] = await Promise.all([entry(fastKey, field), entry(generalKey, field)]);
      expect(fastEntry?.length, step).toBe(generalEntry?.length);
      for (const [j, x] of (fastEntry ?? []).entries()) {
        const y = generalEntry?.[j] as number;
        // instants (expiry, window start, last refill) and bucket levels within the slack, counts and units exact
        if (x > 1e12 || (bucket && j === 2)) expect(close(x, y), `${step}: entry[${j}] ${x} vs ${y}`).toBe(true);
        else expect(x, `${step}: entry[${j}]`).toBe(y);
      }
      // the key expires with our entry (fast) or the later of ours and the other limiter's (general)
      const fastExpiry = await admin.pexpiretime(`${prefix}:rl:{${fastKey}}`);
      expect(fastExpiry, step).toBe(fastEntry?.[0]);
    }
    expect((await other.peek(generalKey)).remaining).toBe(4);
  });
});
