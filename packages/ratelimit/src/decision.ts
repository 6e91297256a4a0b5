import { type NormalizedRule, reduced } from "./rules.js";

/** Which path produced a {@link Decision}. */
export type DecisionReason = "redis" | "fail-open" | "fail-closed" | "fallback" | "deny-cache";

/** One rule's part of a {@link Decision}. */
export interface RuleDecision {
  /** The rule's name. */
  readonly name: string;
  /** Whether this rule alone admits the call. */
  readonly allowed: boolean;
  /** The rule's capacity: `limit`, or `burst` for token-bucket / GCRA rules that set one. */
  readonly limit: number;
  /** Units left after the call (unchanged when the call was rejected). */
  readonly remaining: number;
  /** Ms until the rule is full again (0 when it is). */
  readonly resetMs: number;
  /** Ms until this rule alone would admit the same call (0 when it does now). */
  readonly retryAfterMs: number;
}

/** The answer of {@link RateLimiter.consume} (and `peek` / `refund`). */
export interface Decision {
  /** Whether the call was admitted (by every rule). */
  readonly allowed: boolean;
  /** Name of the most constraining rule, the one `limit`/`remaining`/`resetMs` describe. */
  readonly rule: string;
  /** Capacity of the most constraining rule. */
  readonly limit: number;
  /** Units left in the most constraining rule. */
  readonly remaining: number;
  /** Ms until the most constraining rule is full again. */
  readonly resetMs: number;
  /** 0 when allowed; otherwise the earliest ms after which the same call would pass (max over failing rules). */
  readonly retryAfterMs: number;
  /** `"redis"` normally; otherwise the local path that decided (see the failure policy and the deny cache). */
  readonly reason: DecisionReason;
  /** Every rule, in configuration order. */
  readonly rules: readonly RuleDecision[];
}

/**
 * Picks the most constraining rule: when rejected, the failing rule with the longest wait; otherwise the rule
 * with the fewest remaining units (ties: the one that takes longest to refill).
 */
export function mostConstraining(rules: readonly RuleDecision[], allowed: boolean): RuleDecision {
  let best = rules[0] as RuleDecision;
  for (const r of rules) {
    if (!allowed) {
      if (r.retryAfterMs > best.retryAfterMs || (r.retryAfterMs === best.retryAfterMs && r.remaining < best.remaining))
        best = r;
    } else if (r.remaining < best.remaining || (r.remaining === best.remaining && r.resetMs > best.resetMs)) {
      best = r;
    }
  }
  return best;
}

/** Builds a {@link Decision} from per-rule parts. */
export function makeDecision(allowed: boolean, rules: RuleDecision[], reason: DecisionReason): Decision {
  const top = mostConstraining(rules, allowed);
  let retryAfterMs = 0;
  if (!allowed) for (const r of rules) if (r.retryAfterMs > retryAfterMs) retryAfterMs = r.retryAfterMs;
  return {
    allowed,
    rule: top.name,
    limit: top.limit,
    remaining: top.remaining,
    resetMs: top.resetMs,
    retryAfterMs,
    reason,
    rules,
  };
}

/** A consume/peek/refund script reply: a number, an array of numbers, or consume's string (see below). */
export type ScriptReply = number | readonly number[] | string;

/**
 * A consume/peek/refund script reply as a Decision. The full reply is `[allowed, (wait, remaining, reset)...]`;
 * consume's usual replies are shorter (see lua/_lib/ratelimit-one.lua): one rule admitted is
 * `resetMs * (capacity + 1) + remaining`, a one-rule fixed-window rejection `-1 -` that (its wait is its resetMs);
 * several rules admitted is `"<s>:<us>;<value>"`, Redis' TIME and the entries written, one per rule in rule order.
 */
export function decisionFromReply(reply: ScriptReply, rules: readonly NormalizedRule[]): Decision {
  if (typeof reply === "string") return admittedFromEntries(reply, rules);
  const n = rules.length;
  const parts: RuleDecision[] = new Array(n);
  if (typeof reply === "number" || reply.length === n) {
    const allowed = typeof reply !== "number" || reply >= 0;
    for (let i = 0; i < n; i++) {
      const rule = rules[i] as NormalizedRule;
      const k = rule.capacity + 1;
      const packed = typeof reply === "number" ? (allowed ? reply : -1 - reply) : (reply[i] as number);
      const remaining = packed % k;
      const resetMs = (packed - remaining) / k;
      const wait = allowed ? 0 : resetMs;
      parts[i] = { name: rule.name, allowed, limit: rule.capacity, remaining, resetMs, retryAfterMs: wait };
    }
    return makeDecision(allowed, parts, "redis");
  }
  for (let i = 0; i < n; i++) {
    const rule = rules[i] as NormalizedRule;
    const wait = Number(reply[1 + i * 3]);
    parts[i] = {
      name: rule.name,
      allowed: wait === 0,
      limit: rule.capacity,
      remaining: Number(reply[2 + i * 3]),
      resetMs: Number(reply[3 + i * 3]),
      retryAfterMs: wait,
    };
  }
  return makeDecision(reply[0] === 1, parts, "redis");
}

/** Lua's `x - x % 1` (floor, in the same double operations). */
const floor = (x: number): number => x - (x - Math.floor(x));

/**
 * An admitted call of several rules from consume's string reply: the server time and each rule's entry as written,
 * `"<name>|<alg>=<expAtMs>:<a>:<b>[:<c>]"`. Each rule's remaining and resetMs are computed exactly as the script
 * computes them (the same double operations): fixed window `limit - count`; sliding window
 * `floor(((limit - curr) × w - min(prev, limit) × (w - (now - start))) / w)`, at least 0; token bucket and GCRA
 * `floor(level / ticks per unit)`; resetMs `expAtMs - now` (token bucket and GCRA: `lastMs - now + ceil((capacity
 * ticks - level) / ticks per ms)`, exact where expAtMs, past 2^53, is not; lastMs is later than now only when Redis'
 * clock went back).
 */
function admittedFromEntries(reply: string, rules: readonly NormalizedRule[]): Decision {
  const colon = reply.indexOf(":");
  const semi = reply.indexOf(";");
  const us = Number(reply.slice(colon + 1, semi));
  const now = Number(reply.slice(0, colon)) * 1000 + (us - (us % 1000)) / 1000;
  const entries = reply.slice(semi + 1).split(";");
  const parts: RuleDecision[] = new Array(rules.length);
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as NormalizedRule;
    const entry = entries[i] as string;
    const [e, a, b, c] = entry
      .slice(entry.indexOf("=") + 1)
      .split(":")
      .map(Number) as [number, number, number, number];
    let remaining: number;
    let resetMs = e - now;
    if (rule.algorithm === "fixed-window") remaining = rule.limit - b;
    else if (rule.algorithm === "sliding-window") {
      const w = rule.windowMs;
      // a previous window above a lowered limit weighs as the limit (it is written back as it was)
      const x = ((rule.limit - b) * w - Math.min(c, rule.limit) * (w - (now - a))) / w;
      remaining = floor(x);
      if (remaining < 0) remaining = 0;
    } else {
      // resetMs as the script computes it, ceil((capacity ticks - level) / ticks per ms): expAtMs - now would
      // differ where now + resetMs is past 2^53 (expAtMs rounded to a double)
      const [perMs, unit] = reduced(rule);
      remaining = floor(b / unit);
      const short = rule.capacity * unit - b;
      resetMs = floor(short / perMs);
      if (resetMs * perMs < short) resetMs++;
      resetMs = a - now + resetMs; // from the entry's instant, later than now when Redis' clock went back
    }
    parts[i] = { name: rule.name, allowed: true, limit: rule.capacity, remaining, resetMs, retryAfterMs: 0 };
  }
  return makeDecision(true, parts, "redis");
}
