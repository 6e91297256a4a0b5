import { type Algorithm, RateLimiter, type Rule } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { sharedClients } from "./fixtures/clients.js";

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
  const clients = sharedClients();

  /** Our rule's stored entry on a key, as numbers: [expAtMs, ...state]. */
  const entry = async (key: string, field: string): Promise<number[] | undefined> => {
    const value = await clients.admin.get(`${prefix}:rl:{${key}}`);
    const raw = value
      ?.split(";")
      .find((e) => e.startsWith(`${field}=`))
      ?.slice(field.length + 1);
    return raw?.split(":").map(Number);
  };
  const close = (a: number, b: number) => Math.abs(a - b) <= SLACK_MS;
  const SHORT: Record<Algorithm, string> = {
    "fixed-window": "fw",
    "sliding-window": "sw",
    "token-bucket": "tb",
    gcra: "gcra",
  };

  /**
   * Runs the same consumes on a key of its own (fast path) and on a key that also holds another limiter's entry
   * (general path), comparing every rule's decision and stored entry after each step.
   */
  const compare = async (name: string, steps: Array<[Rule[], number]>) => {
    const other = new RateLimiter(clients.redis, { rules: [{ name: "other", limit: 5, windowMs: 4 * MONTH }], prefix });
    const fastKey = `fp-${name}-${process.pid}-a`;
    const generalKey = `fp-${name}-${process.pid}-b`;
    await clients.admin.del(`${prefix}:rl:{${fastKey}}`, `${prefix}:rl:{${generalKey}}`);
    await other.consume(generalKey);
    for (const [i, [rules, cost]] of steps.entries()) {
      const rl = new RateLimiter(clients.redis, { rules, prefix });
      const step = `${name} step ${i} (cost ${cost})`;
      const fast = await rl.consume(fastKey, cost);
      const general = await rl.consume(generalKey, cost);
      expect(fast.allowed, step).toBe(general.allowed);
      for (const [j, f] of fast.rules.entries()) {
        const g = general.rules[j] as (typeof general.rules)[number];
        const at = `${step}, rule ${f.name}`;
        expect([f.allowed, f.remaining], at).toEqual([g.allowed, g.remaining]);
        expect(close(f.resetMs, g.resetMs), `${at}: resetMs ${f.resetMs} vs ${g.resetMs}`).toBe(true);
        expect(close(f.retryAfterMs, g.retryAfterMs), `${at}: retryAfterMs`).toBe(true);
      }
      let latest = -1;
      for (const rule of rules) {
        const field = `${rule.name}|${SHORT[rule.algorithm ?? "fixed-window"]}`;
        const bucket = rule.algorithm === "token-bucket" || rule.algorithm === "gcra";
        const [fastEntry, generalEntry] = await Promise.all([entry(fastKey, field), entry(generalKey, field)]);
        expect(fastEntry?.length, `${step}, ${field}`).toBe(generalEntry?.length);
        for (const [j, x] of (fastEntry ?? []).entries()) {
          const y = generalEntry?.[j] as number;
          // instants (expiry, window start, last refill) and bucket levels within the slack, counts and units exact
          if (x > 1e12 || (bucket && j === 2)) expect(close(x, y), `${step}, ${field}[${j}]: ${x} vs ${y}`).toBe(true);
          else expect(x, `${step}, ${field}[${j}]`).toBe(y);
        }
        latest = Math.max(latest, fastEntry?.[0] ?? -1);
      }
      // the key expires with its latest entry
      expect(await clients.admin.pexpiretime(`${prefix}:rl:{${fastKey}}`), step).toBe(latest);
    }
    expect((await other.peek(generalKey)).remaining).toBe(4);
  };

  it.each(ALGS)("one rule, %s", async (algorithm) => {
    const bucket = algorithm === "token-bucket" || algorithm === "gcra";
    const v1: Rule[] = [{ name: "r", limit: 10, windowMs: MONTH, algorithm }];
    // a rule change: a lower limit and a longer window (buckets: also another unit, stored ticks converted)
    const v2: Rule[] = [{ name: "r", limit: 6, windowMs: 2 * MONTH, algorithm, ...(bucket ? { burst: 10 } : {}) }];
    await compare(SHORT[algorithm], [
      [v1, 3],
      [v1, 4],
      [v1, 5], // rejected: 7 of 10 taken
      [v1, 3],
      [v1, 1], // rejected
      [v2, 1], // rejected under the lower limit; only the expiry moves forward
      [v2, 6],
    ]);
  });

  it("three rules: admissions, a rejection by one rule while the others would admit, a rule change", async () => {
    const fw: Rule = { name: "a", limit: 10, windowMs: MONTH };
    const tb: Rule = { name: "b", limit: 6, windowMs: MONTH, algorithm: "token-bucket" };
    const gcra: Rule = { name: "c", limit: 20, windowMs: MONTH, algorithm: "gcra" };
    const sw: Rule = { name: "d", limit: 12, windowMs: MONTH, algorithm: "sliding-window" };
    const longer: Rule = { ...fw, windowMs: 2 * MONTH };
    await compare("three", [
      [[fw, tb, gcra], 3],
      [[fw, tb, gcra], 3],
      [[fw, tb, gcra], 1], // rejected by b alone: a and c report their state as it was
      [[longer, tb, gcra], 1], // rejected; a now needs its entry longer: only its expiry moves
      [[sw, longer, gcra], 2], // b's entry is another limiter's now: the general path decides both
    ]);
    await compare("three-sw", [
      [[sw, fw, gcra], 2],
      [[sw, fw, gcra], 4],
      [[sw, fw], 4],
      [[sw, fw, gcra], 3], // rejected by a
    ]);
    await compare("three-reordered", [
      [[fw, sw, gcra], 2],
      [[gcra, fw, sw], 1], // the same rules in another order: the entries are not where the rules' order says
      [[gcra, fw, sw], 1],
      [[fw, sw, gcra], 1],
    ]);
    await compare("three-absent-first", [
      [[gcra], 18],
      [[tb, gcra], 1], // b has no entry yet: the entry where b's would be is c's
      [[tb, gcra], 1],
    ]);
  });

  it.each(ALGS)(
    "%s: a reply too large to pack (capacity x resetMs past 2^53) comes back in full",
    async (algorithm) => {
      const year = 365 * 24 * 3_600_000;
      const rl = new RateLimiter(clients.redis, {
        rules: [{ name: "big", limit: 1e9, windowMs: year, algorithm }],
        prefix,
      });
      const key = `fp-big-${algorithm}-${process.pid}`;
      await clients.admin.del(`${prefix}:rl:{${key}}`);
      const first = await rl.consume(key, 1e9 - 5);
      expect([first.allowed, first.remaining, first.retryAfterMs]).toEqual([true, 5, 0]);
      // the window (fw, sw: from its start; tb, gcra: the refill of 1e9 - 5 units at 1e9 a year) is most of a year
      expect(first.resetMs).toBeGreaterThan(year - 60 * 60_000);
      const second = await rl.consume(key, 2);
      expect([second.allowed, second.remaining]).toEqual([true, 3]);
      const rejected = await rl.consume(key, 4);
      expect([rejected.allowed, rejected.remaining]).toEqual([false, 3]);
      expect(rejected.retryAfterMs).toBeGreaterThan(0);
    },
  );
});
