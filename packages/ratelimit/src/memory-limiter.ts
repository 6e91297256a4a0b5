import { type Decision, makeDecision, type RuleDecision } from "./decision.js";
import { type NormalizedRule, reduced } from "./rules.js";

/**
 * One rule's evaluated state (a port of lua/_lib/ratelimit.lua, same formulas). Token bucket and GCRA count as the
 * scripts do, in integer ticks (a unit is `unit` ticks, `perMs` ticks refill per ms, `capt` ticks when full: all
 * below 2^53, so every comparison is exact, also for a rule at the bound on burst × windowMs / gcd).
 */
interface State {
  rule: NormalizedRule;
  start: number;
  count: number;
  curr: number;
  prev: number;
  /** Token bucket / GCRA: ticks available now. */
  level: number;
  /** Token bucket / GCRA: ticks per unit, ticks refilled per ms, ticks when full. */
  unit: number;
  perMs: number;
  capt: number;
}

type Stored = { a: number; b: number; c: number };

/**
 * This process' clock for the fallback: whole ms since the epoch on the monotonic clock (`performance.timeOrigin +
 * performance.now()`), so a wall clock stepped back or forward (NTP) during an outage neither holds a window shut
 * for the step nor hands one back early.
 */
const monotonicNow = (): number => Math.floor(performance.timeOrigin + performance.now());

function load(rule: NormalizedRule, s: Stored | undefined, now: number): State {
  const { limit, windowMs: w, capacity } = rule;
  const st: State = { rule, start: now, count: 0, curr: 0, prev: 0, level: 0, unit: 1, perMs: 1, capt: 0 };
  switch (rule.algorithm) {
    case "fixed-window":
      if (s !== undefined && now < s.a + w) {
        st.start = s.a;
        st.count = Math.min(s.b, limit);
      }
      break;
    case "sliding-window": {
      st.start = now - (now % w);
      if (s !== undefined && s.a === st.start) {
        st.curr = s.b;
        st.prev = s.c;
      } else if (s !== undefined && s.a === st.start - w) st.prev = s.b;
      st.curr = Math.min(st.curr, limit);
      st.prev = Math.min(st.prev, limit);
      break;
    }
    default: {
      // Token bucket and GCRA: one algorithm in two notations (GCRA's TAT is now + tau - level), as in the scripts.
      const [perMs, unit] = reduced(rule);
      const capt = capacity * unit;
      let level = capt;
      if (s !== undefined) {
        level = s.a;
        const gain = (now - s.b) * perMs;
        if (gain > 0) level = gain >= capt - level ? capt : level + gain;
        if (level > capt) level = capt;
      }
      st.level = level;
      st.unit = unit;
      st.perMs = perMs;
      st.capt = capt;
    }
  }
  return st;
}

function wait(st: State, cost: number, now: number): number {
  const { limit, windowMs: w } = st.rule;
  switch (st.rule.algorithm) {
    case "fixed-window":
      return st.count + cost <= limit ? 0 : st.start + w - now;
    case "sliding-window": {
      const el = now - st.start;
      const room = limit - st.curr - cost;
      // prev × (w − el) / w ≤ room, in integers (as lua/_lib/ratelimit.lua)
      if (st.prev * (w - el) <= room * w) return 0;
      if (room >= 0) return Math.max(1, Math.ceil(w - (room * w) / st.prev - el));
      const room2 = limit - cost;
      const extra = st.curr > room2 ? Math.ceil(w - (room2 * w) / st.curr) : 0;
      return Math.max(1, st.start + w + extra - now);
    }
    default: {
      const need = cost * st.unit - st.level;
      return need <= 0 ? 0 : ceilDiv(need, st.perMs);
    }
  }
}

/** ceil(a / b) of positive integers, as the scripts compute it. */
function ceilDiv(a: number, b: number): number {
  const q = Math.floor(a / b);
  return q * b < a ? q + 1 : q;
}

function take(st: State, cost: number): void {
  if (st.rule.algorithm === "fixed-window") st.count += cost;
  else if (st.rule.algorithm === "sliding-window") st.curr += cost;
  else st.level -= cost * st.unit;
}

/** Gives `cost` back (never beyond full), as refund.lua's rl_give; GCRA's TAT moves back no further than now. */
function give(st: State, cost: number): void {
  switch (st.rule.algorithm) {
    case "fixed-window":
      st.count = Math.max(0, st.count - cost);
      break;
    case "sliding-window": {
      const left = cost - st.curr;
      st.curr = Math.max(0, st.curr - cost);
      if (left > 0) st.prev = Math.max(0, st.prev - left);
      break;
    }
    default:
      st.level = Math.min(st.capt, st.level + cost * st.unit);
  }
}

/** Whether a rule is full (its state need not be kept), as the scripts drop such an entry. */
function full(st: State): boolean {
  switch (st.rule.algorithm) {
    case "fixed-window":
      return st.count <= 0;
    case "sliding-window":
      return st.curr <= 0 && st.prev <= 0;
    default:
      return st.level >= st.capt;
  }
}

function info(st: State, now: number): { remaining: number; resetMs: number } {
  const { limit, windowMs: w } = st.rule;
  switch (st.rule.algorithm) {
    case "fixed-window":
      return st.count <= 0
        ? { remaining: limit, resetMs: 0 }
        : { remaining: limit - st.count, resetMs: st.start + w - now };
    case "sliding-window": {
      // floor(limit − (prev × (w − elapsed) / w + curr)), in integers as the decision
      const remaining = Math.max(0, Math.floor(((limit - st.curr) * w - st.prev * (w - (now - st.start))) / w));
      const resetMs = st.curr > 0 ? st.start + 2 * w - now : st.prev > 0 ? st.start + w - now : 0;
      return { remaining, resetMs };
    }
    default:
      if (st.level >= st.capt) return { remaining: st.rule.capacity, resetMs: 0 };
      return { remaining: Math.floor(st.level / st.unit), resetMs: ceilDiv(st.capt - st.level, st.perMs) };
  }
}

function store(st: State, now: number): Stored {
  switch (st.rule.algorithm) {
    case "fixed-window":
      return { a: st.start, b: st.count, c: 0 };
    case "sliding-window":
      return { a: st.start, b: st.curr, c: st.prev };
    default:
      return { a: st.level, b: now, c: 0 };
  }
}

/** The decision for evaluated states and their waits. */
function decision(states: readonly State[], waits: readonly number[], allowed: boolean, now: number): Decision {
  const parts = states.map((st, i): RuleDecision => {
    const { remaining, resetMs } = info(st, now);
    const retryAfterMs = waits[i] as number;
    return {
      name: st.rule.name,
      allowed: retryAfterMs === 0,
      limit: st.rule.capacity,
      remaining,
      resetMs,
      retryAfterMs,
    };
  });
  return makeDecision(allowed, parts, "fallback");
}

/**
 * The in-process limiter a {@link RateLimiter} falls back to while Redis is unavailable
 * (`onRedisError: { fallback: "memory" }`). Same algorithms as the Lua scripts, on this process' clock, with state
 * per process: with N replicas the effective limit during an outage is up to N × the limit. Holds at most
 * `maxKeys` keys (least recently used evicted first).
 */
export class MemoryLimiter {
  readonly #states = new Map<string, Map<string, Stored>>();
  readonly #maxKeys: number;

  /** @param maxKeys most keys held in memory (default 10 000) */
  constructor(maxKeys = 10_000) {
    this.#maxKeys = maxKeys;
  }

  /** Takes `cost` from every rule of `key`, or from none; `now` is this process' clock in ms. */
  consume(key: string, cost: number, rules: readonly NormalizedRule[], now = monotonicNow()): Decision {
    const states = this.#load(key, rules, now);
    const waits = states.map((st) => wait(st, cost, now));
    const allowed = waits.every((w) => w === 0);
    if (allowed) {
      for (const st of states) take(st, cost);
      this.#store(key, states, now);
    }
    return decision(states, waits, allowed, now);
  }

  /** `key`'s state, nothing taken: `allowed` says whether a call of cost 1 would pass (as peek.lua). */
  peek(key: string, rules: readonly NormalizedRule[], now = monotonicNow()): Decision {
    const states = this.#load(key, rules, now);
    const waits = states.map((st) => wait(st, 1, now));
    return decision(
      states,
      waits,
      waits.every((w) => w === 0),
      now,
    );
  }

  /** Gives `cost` back to every rule of `key` (never beyond full) and reports the state afterwards (as refund.lua). */
  refund(key: string, cost: number, rules: readonly NormalizedRule[], now = monotonicNow()): Decision {
    const states = this.#load(key, rules, now);
    for (const st of states) give(st, cost);
    this.#store(key, states, now);
    const waits = states.map((st) => wait(st, 1, now));
    return decision(
      states,
      waits,
      waits.every((w) => w === 0),
      now,
    );
  }

  /** The states of `key`'s rules at `now`; the key becomes the most recently used (a rejected call is a use too). */
  #load(key: string, rules: readonly NormalizedRule[], now: number): State[] {
    const stored = this.#states.get(key);
    if (stored !== undefined) {
      // Evicting by last write instead would drop first a key whose every call is rejected (it writes nothing),
      // handing its full budget back to the key most in need of the limit.
      this.#states.delete(key);
      this.#states.set(key, stored);
    }
    return rules.map((r) => load(r, stored?.get(`${r.name}|${r.algorithm}`), now));
  }

  /** Keeps the states that are not full (the key is dropped when none is left), most recently used last. */
  #store(key: string, states: readonly State[], now: number): void {
    const next = new Map<string, Stored>();
    for (const st of states) if (!full(st)) next.set(`${st.rule.name}|${st.rule.algorithm}`, store(st, now));
    this.#states.delete(key);
    if (next.size === 0) return;
    this.#states.set(key, next);
    if (this.#states.size > this.#maxKeys) {
      const oldest = this.#states.keys().next().value;
      if (oldest !== undefined) this.#states.delete(oldest);
    }
  }

  /** Forgets `key`. */
  delete(key: string): void {
    this.#states.delete(key);
  }
}
