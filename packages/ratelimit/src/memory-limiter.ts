import { type Decision, makeDecision, type RuleDecision } from "./decision.js";
import type { NormalizedRule } from "./rules.js";

/**
 * Tolerance of a decision (and of the remaining reported with it), in ms. Decisions compare times, not units: a
 * tolerance in units is one in time of tolerance × windowMs / limit, which with long windows let a call pass well
 * before the retryAfterMs announced.
 */
const EPS_MS = 1e-3;

/** Ms until a token bucket holding `tokens` holds `want` (≤ 0 when it does), at `limit` per `windowMs`. */
const msUntil = (tokens: number, want: number, rule: NormalizedRule): number =>
  ((want - tokens) * rule.windowMs) / rule.limit;

/** One rule's evaluated state (a port of lua/_lib/ratelimit.lua, same formulas). */
interface State {
  rule: NormalizedRule;
  start: number;
  count: number;
  curr: number;
  prev: number;
  tokens: number;
  tat: number;
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
  const st: State = { rule, start: now, count: 0, curr: 0, prev: 0, tokens: capacity, tat: now };
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
    case "token-bucket":
      if (s !== undefined) st.tokens = Math.min(capacity, s.a + Math.max(0, now - s.b) * (limit / w));
      break;
    case "gcra": {
      const tau = capacity * (w / limit);
      st.tat = Math.min(Math.max(s?.a ?? now, now), now + tau);
      break;
    }
  }
  return st;
}

function wait(st: State, cost: number, now: number): number {
  const { limit, windowMs: w, capacity } = st.rule;
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
    case "token-bucket": {
      const ms = msUntil(st.tokens, cost, st.rule);
      return ms <= EPS_MS ? 0 : Math.max(1, Math.ceil(ms - EPS_MS));
    }
    case "gcra": {
      const t = w / limit;
      const allowAt = st.tat + cost * t - capacity * t;
      return now + EPS_MS >= allowAt ? 0 : Math.max(1, Math.ceil(allowAt - now));
    }
  }
}

function take(st: State, cost: number): void {
  const { limit, windowMs: w } = st.rule;
  if (st.rule.algorithm === "fixed-window") st.count += cost;
  else if (st.rule.algorithm === "sliding-window") st.curr += cost;
  else if (st.rule.algorithm === "token-bucket") st.tokens -= cost;
  else st.tat += cost * (w / limit);
}

/** Gives `cost` back (never beyond full), as refund.lua's rl_give; GCRA's TAT moves back no further than now. */
function give(st: State, cost: number, now: number): void {
  const { limit, windowMs: w, capacity } = st.rule;
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
    case "token-bucket":
      st.tokens = Math.min(capacity, st.tokens + cost);
      break;
    case "gcra":
      st.tat = Math.max(now, st.tat - cost * (w / limit));
      break;
  }
}

/** Whether a rule is full (its state need not be kept), as the scripts drop such an entry. */
function full(st: State, now: number): boolean {
  switch (st.rule.algorithm) {
    case "fixed-window":
      return st.count <= 0;
    case "sliding-window":
      return st.curr <= 0 && st.prev <= 0;
    case "token-bucket":
      return msUntil(st.tokens, st.rule.capacity, st.rule) <= EPS_MS;
    case "gcra":
      return st.tat <= now;
  }
}

function info(st: State, now: number): { remaining: number; resetMs: number } {
  const { limit, windowMs: w, capacity } = st.rule;
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
    case "token-bucket": {
      const ms = msUntil(st.tokens, capacity, st.rule);
      return {
        // the most a call could take now, with the decision's tolerance (see wait)
        remaining: Math.max(0, Math.floor(st.tokens + (EPS_MS * limit) / w)),
        resetMs: ms <= EPS_MS ? 0 : Math.max(1, Math.ceil(ms - EPS_MS)),
      };
    }
    case "gcra": {
      const t = w / limit;
      const remaining = Math.max(0, Math.min(capacity, Math.floor((now + EPS_MS + capacity * t - st.tat) / t)));
      return { remaining, resetMs: Math.max(0, Math.ceil(st.tat - now - EPS_MS)) };
    }
  }
}

function store(st: State, now: number): Stored {
  switch (st.rule.algorithm) {
    case "fixed-window":
      return { a: st.start, b: st.count, c: 0 };
    case "sliding-window":
      return { a: st.start, b: st.curr, c: st.prev };
    case "token-bucket":
      return { a: st.tokens, b: now, c: 0 };
    case "gcra":
      return { a: st.tat, b: 0, c: 0 };
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
    for (const st of states) give(st, cost, now);
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
    for (const st of states) if (!full(st, now)) next.set(`${st.rule.name}|${st.rule.algorithm}`, store(st, now));
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
