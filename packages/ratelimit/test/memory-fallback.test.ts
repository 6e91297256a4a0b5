import type { Algorithm } from "@coordis/ratelimit";
import { describe, expect, it } from "vitest";
import { MemoryLimiter } from "../src/memory-limiter.js";
import { normalizeRules } from "../src/rules.js";

// The in-process fallback is a port of the Lua algorithms; time is passed in, so these tests are exact.
describe("memory fallback limiter", () => {
  it.each<Algorithm>(["fixed-window", "sliding-window", "token-bucket", "gcra"])(
    "%s: admits exactly the limit at one instant, all-or-none over rules, and honours retryAfterMs",
    (algorithm) => {
      const rules = normalizeRules([
        { name: "small", limit: 5, windowMs: 1_000, algorithm },
        { name: "big", limit: 100, windowMs: 60_000, algorithm },
      ]);
      const m = new MemoryLimiter();
      const t0 = 1_000_000_000_000;
      const ds = Array.from({ length: 20 }, () => m.consume("k", 1, rules, t0));
      expect(ds.filter((d) => d.allowed)).toHaveLength(5);
      const rejected = ds[19];
      expect(rejected).toMatchObject({ allowed: false, reason: "fallback", rule: "small" });
      expect(rejected?.rules[1]).toMatchObject({ name: "big", remaining: 95 });
      const retry = rejected?.retryAfterMs ?? 0;
      expect(retry).toBeGreaterThan(0);
      expect(m.consume("k", 1, rules, t0 + retry - 1).allowed).toBe(false);
      expect(m.consume("k", 1, rules, t0 + retry).allowed).toBe(true);
    },
  );

  it.each<Algorithm>(["fixed-window", "sliding-window", "token-bucket", "gcra"])(
    "%s: peek reports what consume counted, refund gives units back (never beyond full)",
    (algorithm) => {
      const rules = normalizeRules([{ name: "r", limit: 3, windowMs: 60_000, algorithm }]);
      const m = new MemoryLimiter();
      const t0 = 1_000_000_020_000; // early in an aligned sliding window
      expect(m.peek("k", rules, t0)).toMatchObject({ allowed: true, remaining: 3, resetMs: 0, reason: "fallback" });
      for (let i = 0; i < 3; i++) m.consume("k", 1, rules, t0);
      const used = m.peek("k", rules, t0);
      expect(used).toMatchObject({ allowed: false, remaining: 0 });
      expect(used.retryAfterMs).toBeGreaterThan(0);
      expect(m.peek("k", rules, t0)).toEqual(used); // peek takes nothing
      expect(m.refund("k", 2, rules, t0)).toMatchObject({ allowed: true, remaining: 2 });
      expect(m.consume("k", 2, rules, t0)).toMatchObject({ allowed: true, remaining: 0 });
      expect(m.consume("k", 1, rules, t0).allowed).toBe(false);
      expect(m.refund("k", 3, rules, t0)).toMatchObject({ allowed: true, remaining: 3, resetMs: 0 });
      expect(m.refund("k", 3, rules, t0)).toMatchObject({ remaining: 3 }); // never beyond full
      expect(m.consume("k", 3, rules, t0)).toMatchObject({ allowed: true, remaining: 0 });
    },
  );

  it("keeps at most maxKeys keys", () => {
    const rules = normalizeRules([{ limit: 1, windowMs: 60_000 }]);
    const m = new MemoryLimiter(2);
    m.consume("a", 1, rules, 0);
    m.consume("b", 1, rules, 0);
    m.consume("c", 1, rules, 0); // evicts "a"
    expect(m.consume("a", 1, rules, 1).allowed).toBe(true);
    expect(m.consume("c", 1, rules, 1).allowed).toBe(false);
  });
});
