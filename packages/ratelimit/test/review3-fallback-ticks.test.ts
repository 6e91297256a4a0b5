import { ALGORITHMS, type Algorithm, type Decision, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { mulberry32, testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { decisionFromReply } from "../src/decision.js";
import { MemoryLimiter } from "../src/memory-limiter.js";
import { normalizeRules, rulesArgs, rulesSpec } from "../src/rules.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime } from "./fixtures/previous-release.js";

const prefix = testPrefix("rl-fallback-ticks");
const YEAR = 365 * 86_400_000;
/** TIME's reply (seconds, microseconds) at instant `at` (ms). */
const timeOf = (at: number): [string, string] => [String(Math.floor(at / 1000)), String((at % 1000) * 1000)];
/** A decision without its reason: the fallback's says "fallback". */
const parts = ({ reason: _, ...rest }: Decision) => rest;

// The memory fallback decides token bucket and GCRA rules as Redis does, in integer ticks. Counted in fractional ms
// with a tolerance of 1 µs, a fast refill (1,000 units per ms) turned that tolerance into whole units (a call
// admitted from a bucket just emptied, `remaining` above the capacity), and a rule at the documented bound (burst ×
// windowMs / gcd just below 2^53) lost whole milliseconds: a fresh key refused a call of its whole burst, and a call
// passed 1 ms early.
describe("memory fallback: token bucket and GCRA in integer ticks", () => {
  const clients = sharedClients();

  it.each<Algorithm>(["gcra", "token-bucket"])(
    "%s 1 per 365 days, burst 285 616 (the largest accepted): the whole burst passes on a fresh key, and a unit comes back exactly after 365 days",
    (algorithm) => {
      const rules = normalizeRules([{ name: "y", limit: 1, windowMs: YEAR, burst: 285_616, algorithm }]);
      for (let i = 0; i < 40; i++) {
        const t0 = 1_796_662_243_271 + i;
        const m = new MemoryLimiter();
        expect(m.consume("k", 285_616, rules, t0).allowed, `whole burst at ${t0}`).toBe(true);
        const k = 1 + i * 7_000;
        expect(m.consume("k", k, rules, t0 + k * YEAR - 1).allowed, `${k} units 1 ms early`).toBe(false);
        expect(m.consume("k", k, rules, t0 + k * YEAR).allowed, `${k} units on time`).toBe(true);
      }
    },
  );

  it.each<Algorithm>(["gcra", "token-bucket"])(
    "%s 1,000,000 per second: an emptied bucket admits nothing more in the same millisecond and reports no unit left",
    (algorithm) => {
      const rules = normalizeRules([{ name: "fast", limit: 1_000_000, windowMs: 1_000, algorithm }]);
      const m = new MemoryLimiter();
      const t0 = 1_796_662_243_271;
      expect(m.consume("k", 1_000_000, rules, t0)).toMatchObject({ allowed: true, remaining: 0, resetMs: 1_000 });
      expect(m.consume("k", 1, rules, t0)).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 1 });
      expect(m.peek("k", rules, t0)).toMatchObject({ allowed: false, remaining: 0 });
      // 1,000 units come back per ms, never more
      expect(m.consume("k", 1_000, rules, t0 + 1)).toMatchObject({ allowed: true, remaining: 0 });
      expect(m.consume("k", 1, rules, t0 + 1).allowed).toBe(false);
    },
  );

  it("random rules, consumes, peeks and refunds of every algorithm: the fallback's decisions are Redis' (same instants)", async () => {
    const admin = clients.admin;
    const sha = (await admin.script("LOAD", atTime(ratelimitScripts.consume.source))) as string;
    const peekSha = (await admin.script("LOAD", atTime(ratelimitScripts.peek.source))) as string;
    const refundSha = (await admin.script("LOAD", atTime(ratelimitScripts.refund.source))) as string;
    const seed = 0x5eed3;
    const rand = mulberry32(seed);
    const pick = (n: number) => Math.floor(rand() * n);
    const [s] = (await admin.time()) as unknown as [string, string];
    const g = (a: number, b: number): number => (b === 0 ? a : g(b, a % b));
    const randomRule = (name: string, algorithm: Algorithm): Rule => {
      const bucket = algorithm === "gcra" || algorithm === "token-bucket";
      const limit = [1, 3, 7, 1000, 999_999_937][pick(5)] as number;
      const windowMs = [1, 999, 60_000, 86_400_000, YEAR][pick(5)] as number;
      let burst: number | undefined = bucket ? [undefined, 1, 5, 1_000_000][pick(4)] : undefined;
      if (bucket && (burst ?? limit) * (windowMs / g(limit, windowMs)) > Number.MAX_SAFE_INTEGER) burst = 1;
      return { name, limit, windowMs, burst, algorithm };
    };
    for (let round = 0; round < 60; round++) {
      // one rule of each algorithm in turn, then 2 or 3 rules (consume's several-rules reply, decoded by the client)
      const algorithm = ALGORITHMS[round % 4] as Algorithm;
      const given = [randomRule("r", algorithm)];
      if (round >= 20) {
        for (let i = 1 + pick(2); i > 0; i--) given.push(randomRule(`r${i}`, ALGORITHMS[pick(4)] as Algorithm));
      }
      const rules = normalizeRules(given);
      const args = rulesArgs(rules);
      const cap = Math.min(...rules.map((r) => r.capacity));
      const { limit, windowMs, burst } = given[0] as Rule;
      const key = `${prefix}:rl:{diff-${round}}`;
      await admin.del(key);
      const m = new MemoryLimiter();
      let at = Number(s) * 1000 + 10_000_000 + pick(1000);
      for (let step = 0; step < 25; step++) {
        const cost = 1 + pick(Math.min(cap, 4));
        const op = ["consume", "consume", "consume", "consume", "peek", "refund"][pick(6)] as string;
        const script = op === "consume" ? sha : op === "peek" ? peekSha : refundSha;
        const sent = op === "consume" ? args : [rulesSpec(rules)];
        const fromRedis = decisionFromReply(
          (await admin.evalsha(script, 1, key, op === "peek" ? "1" : String(cost), ...sent, ...timeOf(at))) as never,
          rules,
        );
        const fromMemory =
          op === "consume"
            ? m.consume("k", cost, rules, at)
            : op === "peek"
              ? m.peek("k", rules, at)
              : m.refund("k", cost, rules, at);
        const what = `seed ${seed} round ${round} step ${step}: ${op} ${algorithm} ${limit}/${windowMs} burst ${burst} (${rules.length} rules) cost ${cost}`;
        expect(parts(fromMemory), what).toEqual(parts(fromRedis));
        at += Math.max(0, [0, 1, pick(50), fromRedis.retryAfterMs, fromRedis.retryAfterMs - 1][pick(5)] as number);
      }
      await admin.del(key);
    }
  });
});
