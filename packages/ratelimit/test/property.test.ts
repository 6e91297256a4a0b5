import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { type Algorithm, RateLimiter, type Rule } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
// Windows of a year: time does not move the model during a run (refill over a few seconds is < 1e-6 of a unit).
const YEAR = 365 * 24 * 3_600_000;

type Cmd = { op: "consume" | "refund"; cost: number } | { op: "peek" } | { op: "reset" };

const ruleArb = fc.record({
  algorithm: fc.constantFrom<Algorithm>("fixed-window", "sliding-window", "token-bucket", "gcra"),
  limit: fc.integer({ min: 1, max: 12 }),
  burst: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
});

describe("property: every algorithm against a reference model of used units per rule", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("never over the limit, remaining consistent with what was admitted, refund and reset restore units", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(ruleArb, { minLength: 1, maxLength: 3 }),
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("consume" as const), cost: fc.integer({ min: 1, max: 12 }) }),
            fc.record({ op: fc.constant("refund" as const), cost: fc.integer({ min: 1, max: 12 }) }),
            fc.constant({ op: "peek" as const }),
            fc.constant({ op: "reset" as const }),
          ),
          { minLength: 1, maxLength: 25 },
        ),
        async (specs, cmds: Cmd[]) => {
          const rules: Rule[] = specs.map((s, i) => ({
            name: `p${i}`,
            limit: s.limit,
            windowMs: YEAR,
            algorithm: s.algorithm,
            ...((s.algorithm === "token-bucket" || s.algorithm === "gcra") && s.burst !== undefined
              ? { burst: s.burst }
              : {}),
          }));
          const caps = rules.map((r) => r.burst ?? r.limit);
          const maxCost = Math.min(...caps);
          const rl = new RateLimiter(redis, { rules, prefix });
          const key = `prop-${process.pid}-${++run}`;
          const used = caps.map(() => 0);
          let admitted = 0;
          for (const cmd of cmds) {
            if (cmd.op === "consume") {
              const cost = Math.min(cmd.cost, maxCost);
              const d = await rl.consume(key, cost);
              const fits = used.every((u, i) => u + cost <= (caps[i] as number));
              expect(d.allowed).toBe(fits);
              if (fits) {
                for (let i = 0; i < used.length; i++) used[i] = (used[i] as number) + cost;
                admitted += cost;
              }
              d.rules.forEach((r, i) => {
                expect(r.remaining).toBe((caps[i] as number) - (used[i] as number));
                expect(r.allowed).toBe((used[i] as number) + (fits ? 0 : cost) <= (caps[i] as number));
              });
              // allowed: the rule with the fewest units left; rejected: the failing rule with the longest wait
              const top = d.rules.find((r) => r.name === d.rule);
              expect(d.remaining).toBe(top?.remaining);
              if (fits) expect(d.remaining).toBe(Math.min(...d.rules.map((r) => r.remaining)));
              else {
                expect(top?.allowed).toBe(false);
                expect(d.retryAfterMs).toBe(Math.max(...d.rules.map((r) => r.retryAfterMs)));
                expect(d.retryAfterMs).toBeGreaterThan(0);
              }
            } else if (cmd.op === "refund") {
              const cost = Math.min(cmd.cost, maxCost);
              const d = await rl.refund(key, cost);
              for (let i = 0; i < used.length; i++) used[i] = Math.max(0, (used[i] as number) - cost);
              d.rules.forEach((r, i) => {
                expect(r.remaining).toBe((caps[i] as number) - (used[i] as number));
              });
            } else if (cmd.op === "peek") {
              const d = await rl.peek(key);
              d.rules.forEach((r, i) => {
                expect(r.remaining).toBe((caps[i] as number) - (used[i] as number));
              });
              expect(d.allowed).toBe(used.every((u, i) => u + 1 <= (caps[i] as number)));
            } else {
              await rl.reset(key);
              used.fill(0);
              admitted = 0;
            }
            // never over the limit: Redis agrees with the model, and the model never holds more than a capacity
            const state = await rl.peek(key);
            state.rules.forEach((r, i) => {
              expect(r.remaining).toBe((caps[i] as number) - (used[i] as number));
              expect(r.remaining).toBeGreaterThanOrEqual(0);
            });
          }
          // no rule holds more than was admitted since the last reset
          expect(admitted).toBeGreaterThanOrEqual(Math.max(...used));
          await rl.reset(key);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("property: rule changes, refunds and resets racing consumes, limiters sharing a key", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("several limiters (different rule subsets, as separate limiters or replicas of two versions) on one key: each rule's bound holds", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(ruleArb, { minLength: 1, maxLength: 4 }),
        fc.array(fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), { minLength: 2, maxLength: 3 }),
        fc.array(
          fc.record({
            limiter: fc.nat(2),
            op: fc.constantFrom("consume", "consume", "consume", "refund", "reset"),
            cost: fc.integer({ min: 1, max: 12 }),
          }),
          { minLength: 1, maxLength: 30 },
        ),
        async (pool, picks, cmds) => {
          // The pool's rules are identical wherever they appear (same name = same counter, same capacity).
          const rules: Rule[] = pool.map((s, i) => ({
            name: `s${i}`,
            limit: s.limit,
            windowMs: YEAR,
            algorithm: s.algorithm,
            ...((s.algorithm === "token-bucket" || s.algorithm === "gcra") && s.burst !== undefined
              ? { burst: s.burst }
              : {}),
          }));
          const caps = rules.map((r) => r.burst ?? r.limit);
          const members = picks.map((p) => {
            const idx = rules.map((_, i) => i).filter((i) => p[i] === true);
            return idx.length > 0 ? idx : [0];
          });
          const limiters = members.map(
            (idx) => new RateLimiter(redis, { prefix, rules: idx.map((i) => rules[i] as Rule) }),
          );
          const key = `prop-share-${process.pid}-${++run}`;
          const used = caps.map(() => 0);
          for (const cmd of cmds) {
            const which = cmd.limiter % limiters.length;
            const rl = limiters[which] as RateLimiter;
            const idx = members[which] as number[];
            const cost = Math.min(cmd.cost, ...idx.map((i) => caps[i] as number));
            if (cmd.op === "consume") {
              const d = await rl.consume(key, cost);
              const fits = idx.every((i) => (used[i] as number) + cost <= (caps[i] as number));
              expect(d.allowed).toBe(fits);
              if (fits) for (const i of idx) used[i] = (used[i] as number) + cost;
            } else if (cmd.op === "refund") {
              await rl.refund(key, cost);
              for (const i of idx) used[i] = Math.max(0, (used[i] as number) - cost);
            } else {
              await rl.reset(key);
              for (const i of idx) used[i] = 0;
            }
            // every limiter sees exactly its own rules' units: no write dropped or merged another's
            for (let l = 0; l < limiters.length; l++) {
              const d = await (limiters[l] as RateLimiter).peek(key);
              d.rules.forEach((r, j) => {
                const i = (members[l] as number[])[j] as number;
                expect(r.remaining).toBe((caps[i] as number) - (used[i] as number));
              });
            }
          }
          for (const rl of limiters) await rl.reset(key);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("refunds and resets racing consumes: the deny cache never outlives them (batched and unbatched)", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.array(fc.constantFrom("consume", "consume", "refund", "reset"), { minLength: 1, maxLength: 6 }), {
          minLength: 1,
          maxLength: 5,
        }),
        async (batch, limit, rounds) => {
          const rl = new RateLimiter(redis, {
            prefix,
            rules: [{ name: "d", limit, windowMs: YEAR }],
            denyCache: true,
            batch,
          });
          const key = `prop-deny-${process.pid}-${++run}`;
          for (const ops of rounds) {
            // one burst of concurrent calls, issued in this order
            await Promise.all(
              ops.map((op) =>
                op === "consume" ? rl.consume(key) : op === "refund" ? rl.refund(key, 1) : rl.reset(key),
              ),
            );
            const peek = await rl.peek(key);
            const d = await rl.consume(key);
            // Redis would admit it: the local cache must not say otherwise
            if (peek.allowed) expect(d).toMatchObject({ allowed: true, reason: "redis" });
            else expect(d.allowed).toBe(false);
          }
          await rl.reset(key);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("random rule changes over one key: after a rejection nothing passes before its retryAfterMs under the same rules", async () => {
    let run = 0;
    const windows = [100, 250, 1_000, YEAR];
    const ruleChange = fc.record({
      limit: fc.integer({ min: 1, max: 4 }),
      burst: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      windowMs: fc.constantFrom(...windows),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Algorithm>("fixed-window", "sliding-window", "token-bucket", "gcra"),
        ruleChange,
        // each step: maybe new rules (same name and algorithm: the state carries over), some calls, then a pause
        fc.array(
          fc.record({
            change: fc.option(ruleChange, { nil: undefined }),
            calls: fc.integer({ min: 1, max: 5 }),
            waitMs: fc.integer({ min: 0, max: 300 }),
          }),
          { minLength: 2, maxLength: 6 },
        ),
        async (algorithm, first, steps) => {
          const key = `prop-change-${process.pid}-${++run}`;
          const bucket = algorithm === "token-bucket" || algorithm === "gcra";
          const make = (c: typeof first) => {
            const rule: Rule = {
              name: "c",
              limit: c.limit,
              windowMs: c.windowMs,
              algorithm,
              ...(bucket && c.burst !== undefined ? { burst: c.burst } : {}),
            };
            return { rl: new RateLimiter(redis, { prefix, rules: [rule] }), text: JSON.stringify(rule) };
          };
          let { rl, text } = make(first);
          // the instant (client clock) before which the current rules must not admit a call of cost 1
          let blockedUntil = 0;
          let blockedBy = "";
          for (const step of steps) {
            if (step.change !== undefined) {
              ({ rl, text } = make(step.change));
              blockedUntil = 0; // a rejection under other rules says nothing about these
            }
            for (let i = 0; i < step.calls; i++) {
              const sent = Date.now();
              const d = await rl.consume(key);
              const replied = Date.now();
              if (d.allowed) {
                // admitted at a server time <= replied; the rejection promised nothing before its server time + wait
                expect(replied >= blockedUntil, `${text}: admitted at ${replied}, before ${blockedBy}`).toBe(true);
              } else if (sent + d.retryAfterMs > blockedUntil) {
                blockedUntil = sent + d.retryAfterMs;
                blockedBy = `${blockedUntil} (a rejection with retryAfterMs ${d.retryAfterMs} sent at ${sent})`;
              }
            }
            if (step.waitMs > 0) await sleep(step.waitMs);
          }
          await rl.reset(key);
        },
      ),
      { numRuns: 40 },
    );
  }, 240_000);
});
