/** Bad input to @coordis/ratelimit is rejected with InvalidArgumentError and sends nothing (see ./harness.ts). */
import { ALGORITHMS, ConcurrencyLimiter, MAX_LIMIT, type Permit, RateLimiter, toHeaders } from "@coordis/ratelimit";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bad,
  badNumbers,
  type Case,
  c,
  invalid,
  isInt,
  isObserver,
  isOneOf,
  isPlainObject,
  MAX_DURATION,
  prefix,
  redis,
  rejectedWithoutCommands,
  useServer,
} from "./harness.js";

useServer();

describe("bad input is rejected with InvalidArgumentError and sends nothing", () => {
  it("ratelimit: RateLimiter, ConcurrencyLimiter, permits, toHeaders", async () => {
    const base = { name: "r", limit: 10, windowMs: 1_000 };
    const rules = [base];
    const o = { prefix, rules };
    const limiter = new RateLimiter(redis, o);
    const cl = new ConcurrencyLimiter(redis, { prefix, limit: 5, ttlMs: 60_000 });
    const permit = (await cl.acquire("bad-input")) as Permit;
    expect(permit).not.toBeNull();
    const rule = (patch: Record<string, unknown>) => new RateLimiter(redis, { prefix, rules: [{ ...base, ...patch }] });
    const ruleShape = invalid(isPlainObject);
    const cost = invalid((v) => isInt(v, 1, 10), badNumbers(1, 10));
    const allowedDecision = await limiter.peek("bad-input-decision");
    const cases: Case[] = [
      c("RateLimiter(redis)", "redis", bad.client(), (v) => new RateLimiter(v, { ...o, rules })),
      c(
        "ConcurrencyLimiter(redis)",
        "redis",
        bad.client(),
        (v) => new ConcurrencyLimiter(v, { limit: 1, ttlMs: 1_000 }),
      ),
      c(
        "RateLimiter({ observer })",
        /^options\.observer/,
        bad.optional(invalid(isObserver)),
        (v) => new RateLimiter(redis, { ...o, rules, observer: v }),
      ),
      c(
        "ConcurrencyLimiter({ observer })",
        /^options\.observer/,
        bad.optional(invalid(isObserver)),
        (v) => new ConcurrencyLimiter(redis, { limit: 1, ttlMs: 1_000, observer: v }),
      ),
      c(
        "RateLimiter({ denyCache })",
        "options.denyCache",
        bad.optional(invalid((v) => typeof v === "boolean" || isPlainObject(v))),
        (v) => new RateLimiter(redis, { ...o, rules, denyCache: v }),
      ),
      c("RateLimiter(options)", /^options(\.rules)?$/, invalid(isPlainObject), (v) => new RateLimiter(redis, v)),
      c(
        "RateLimiter({ rules })",
        "options.rules",
        invalid(
          (v) => Array.isArray(v) && v.length > 0 && v.length <= 32,
          fc.constant(Array.from({ length: 33 }, (_, i) => ({ name: `r${i}`, limit: 1, windowMs: 1 }))),
        ),
        (v) => new RateLimiter(redis, { prefix, rules: v }),
      ),
      c(
        "RateLimiter({ rules: [rule] })",
        /^options\.rules\[0\]/,
        ruleShape,
        (v) => new RateLimiter(redis, { prefix, rules: [v] }),
      ),
      c(
        "rule.name",
        "options.rules[0].name",
        bad.optional(invalid((v) => typeof v === "string" && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(v))),
        (v) => rule({ name: v }),
      ),
      c(
        "duplicate rule names",
        "options.rules[1].name",
        fc.constantFrom("fw-1-per-1ms", undefined),
        (v) =>
          // An explicit duplicate, or a default name (derived from the rule: "fw-1-per-1ms") that collides with an
          // explicit one.
          new RateLimiter(redis, {
            prefix,
            rules: [
              { name: "fw-1-per-1ms", limit: 1, windowMs: 1 },
              { name: v, limit: 1, windowMs: 1 },
            ],
          }),
      ),
      c(
        "rule.burst beyond exact integer ticks",
        "options.rules[0].burst",
        // burst × windowMs / gcd(limit, windowMs) must stay below 2^53: at most 285 616 with 1 per 365 days
        fc.integer({ min: 285_617, max: MAX_LIMIT }),
        (v) => rule({ algorithm: v % 2 === 0 ? "token-bucket" : "gcra", limit: 1, windowMs: 31_536_000_000, burst: v }),
      ),
      c("rule.limit", "options.rules[0].limit", bad.int(1, MAX_LIMIT), (v) => rule({ limit: v })),
      c("rule.windowMs", "options.rules[0].windowMs", bad.duration(1, MAX_DURATION), (v) => rule({ windowMs: v })),
      c("rule.algorithm", "options.rules[0].algorithm", bad.optional(bad.oneOf(ALGORITHMS)), (v) =>
        rule({ algorithm: v }),
      ),
      c("rule.burst", "options.rules[0].burst", bad.optional(bad.int(1, MAX_LIMIT)), (v) =>
        rule({ algorithm: "token-bucket", burst: v }),
      ),
      c("rule.burst on a window rule", "options.rules[0].burst", fc.integer({ min: 1, max: 100 }), (v) =>
        rule({ algorithm: v % 2 === 0 ? "fixed-window" : "sliding-window", burst: v }),
      ),
      c(
        "RateLimiter({ prefix })",
        "options.prefix",
        bad.optional(bad.prefix()),
        (v) => new RateLimiter(redis, { rules, prefix: v }),
      ),
      c(
        "RateLimiter({ onRedisError })",
        "options.onRedisError",
        bad.optional(
          invalid(
            (v) =>
              isOneOf(["throw", "fail-open", "fail-closed"])(v) ||
              (isPlainObject(v) && (v as { fallback?: unknown }).fallback === "memory"),
            fc.constantFrom({ fallback: "disk" }, "fail", "THROW"),
          ),
        ),
        (v) => new RateLimiter(redis, { ...o, onRedisError: v }),
      ),
      c(
        "RateLimiter({ onRedisError: { maxKeys } })",
        "options.onRedisError.maxKeys",
        bad.optional(bad.int(1, Number.MAX_SAFE_INTEGER)),
        (v) => new RateLimiter(redis, { ...o, onRedisError: { fallback: "memory", maxKeys: v } }),
      ),
      c(
        "RateLimiter({ redisRetryMs })",
        "options.redisRetryMs",
        bad.optional(bad.duration(0, 600_000)),
        (v) => new RateLimiter(redis, { ...o, redisRetryMs: v }),
      ),
      c(
        "RateLimiter({ failClosedRetryAfterMs })",
        "options.failClosedRetryAfterMs",
        bad.optional(bad.duration(1, MAX_DURATION)),
        (v) => new RateLimiter(redis, { ...o, failClosedRetryAfterMs: v }),
      ),
      c(
        "RateLimiter({ denyCache: { maxKeys } })",
        "options.denyCache.maxKeys",
        bad.optional(bad.int(1, Number.MAX_SAFE_INTEGER)),
        (v) => new RateLimiter(redis, { ...o, denyCache: { maxKeys: v } }),
      ),
      c("limiter.consume(key)", "key", bad.name(), (v) => limiter.consume(v)),
      c("limiter.consume(key, cost)", "cost", bad.optional(cost), (v) => limiter.consume("k", v)),
      c("limiter.peek(key)", "key", bad.name(), (v) => limiter.peek(v)),
      c("limiter.refund(key)", "key", bad.name(), (v) => limiter.refund(v, 1)),
      c("limiter.refund(key, cost)", "cost", cost, (v) => limiter.refund("k", v)),
      c("limiter.reset(key)", "key", bad.name(), (v) => limiter.reset(v)),
      c(
        "ConcurrencyLimiter(options)",
        /^options(\.limit)?$/,
        invalid(isPlainObject),
        (v) => new ConcurrencyLimiter(redis, v),
      ),
      c(
        "ConcurrencyLimiter({ limit })",
        "options.limit",
        bad.int(1, 1_000_000),
        (v) => new ConcurrencyLimiter(redis, { limit: v, ttlMs: 1_000 }),
      ),
      c(
        "ConcurrencyLimiter({ ttlMs })",
        "options.ttlMs",
        bad.duration(1, MAX_DURATION),
        (v) => new ConcurrencyLimiter(redis, { limit: 1, ttlMs: v }),
      ),
      c(
        "ConcurrencyLimiter({ prefix })",
        "options.prefix",
        bad.optional(bad.prefix()),
        (v) => new ConcurrencyLimiter(redis, { limit: 1, ttlMs: 1_000, prefix: v }),
      ),
      c("concurrency.acquire(key)", "key", bad.name(), (v) => cl.acquire(v)),
      c("permit.extend(ttlMs)", "ttlMs", bad.optional(bad.duration(1, MAX_DURATION)), (v) => permit.extend(v)),
      // toHeaders is pure; its rules are validated like the limiter's.
      c(
        "toHeaders(decision, rules)",
        /^rules/,
        invalid((v) => Array.isArray(v) && v.length > 0),
        (v) => toHeaders(allowedDecision, v),
      ),
      c("toHeaders(decision)", /^decision/, bad.options(), (v) => toHeaders(v as never, rules)),
    ];
    try {
      await rejectedWithoutCommands(cases);
    } finally {
      await permit.release();
    }
  });
});
