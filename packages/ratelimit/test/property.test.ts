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
