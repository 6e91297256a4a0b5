import { InvalidArgumentError, validate } from "@coordis/core";

/** The algorithms a {@link Rule} can use. */
export type Algorithm = "fixed-window" | "sliding-window" | "token-bucket" | "gcra";

/** All algorithms, in documentation order. */
export const ALGORITHMS: readonly Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];

/** Largest `limit` (and `burst`) a rule accepts. */
export const MAX_LIMIT = 1_000_000_000;

/**
 * Token bucket and GCRA count exactly in integer ticks: a unit is `windowMs / g` ticks (g = gcd(limit, windowMs)),
 * and a full bucket, `(burst ?? limit) × windowMs / g` ticks, must stay an exact double.
 */
const MAX_TICKS = Number.MAX_SAFE_INTEGER;

/**
 * One limit of a {@link RateLimiter}: at most `limit` units per `windowMs` milliseconds.
 * - `fixed-window`: a counter per window; the window opens at the key's first consume and lasts `windowMs`.
 * - `sliding-window`: two epoch-aligned windows, the previous one weighted by how much of it still overlaps.
 * - `token-bucket`: a bucket of `burst ?? limit` tokens refilled continuously at `limit` per `windowMs`.
 * - `gcra`: the generic cell rate algorithm (redis-cell semantics): one call per `windowMs / limit` ms,
 *   with up to `burst ?? limit` calls at once.
 */
export interface Rule {
  /**
   * Name used in decisions, metrics and headers; `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`. A rule's state on a key is kept
   * per name and algorithm: rules with the same name and algorithm on the same key (in any limiter) share one counter.
   * Default: derived from the rule, `<fw|sw|tb|gcra>-<limit>-per-<windowMs>ms[-burst-<burst>]` (e.g.
   * `fw-100-per-60000ms`), so two different unnamed rules never share a counter, and changing an unnamed rule starts
   * it fresh (name a rule to keep its state across changes of its limit or window).
   */
  name?: string;
  /** Units allowed per window (an integer 1–1e9). */
  limit: number;
  /** The window in whole milliseconds (1 ms – 365 days). */
  windowMs: number;
  /** Default `fixed-window`. */
  algorithm?: Algorithm;
  /**
   * Token bucket / GCRA only: how many units may be taken at once (the capacity). Default `limit`. With a small
   * `limit`, a large burst is bounded: `burst × windowMs / gcd(limit, windowMs)` must be at most 2^53 − 1.
   */
  burst?: number;
}

/** A validated rule with its defaults filled in. */
export interface NormalizedRule {
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly algorithm: Algorithm;
  /** Token bucket / GCRA capacity when set explicitly. */
  readonly burst: number | undefined;
  /** Most units the rule can ever hold: `burst ?? limit`. */
  readonly capacity: number;
}

/**
 * The keys a rule may have: a {@link Rule}'s, and `capacity`, so that a limiter's normalized `rules` can be passed
 * again (its `capacity` must then be the rule's own, `burst ?? limit`).
 */
const RULE_KEYS = ["name", "limit", "windowMs", "algorithm", "burst", "capacity"] as const;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const SHORT: Record<Algorithm, string> = {
  "fixed-window": "fw",
  "sliding-window": "sw",
  "token-bucket": "tb",
  gcra: "gcra",
};

/** The default name of an unnamed rule: `<fw|sw|tb|gcra>-<limit>-per-<windowMs>ms[-burst-<burst>]`. */
export function defaultRuleName(rule: {
  algorithm: Algorithm;
  limit: number;
  windowMs: number;
  burst?: number | undefined;
}): string {
  const burst = rule.burst === undefined ? "" : `-burst-${rule.burst}`;
  return `${SHORT[rule.algorithm]}-${rule.limit}-per-${rule.windowMs}ms${burst}`;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Validates rules and fills in defaults (name {@link defaultRuleName}, algorithm `fixed-window`).
 * @param argument the option path used in errors, e.g. `options.rules`
 * @throws InvalidArgumentError on an empty list, a bad limit/window/burst, an unknown algorithm or a duplicate name
 */
export function normalizeRules(rules: unknown, argument = "options.rules"): NormalizedRule[] {
  if (!Array.isArray(rules) || rules.length === 0) {
    throw new InvalidArgumentError(argument, "expected a non-empty array of rules");
  }
  if (rules.length > 32) throw new InvalidArgumentError(argument, "at most 32 rules per limiter");
  const seen = new Set<string>();
  // Array.from visits holes (map skips them, leaving holes in the result): a hole is a missing rule, refused below.
  return Array.from(rules as unknown[], (raw: unknown, i) => {
    const at = `${argument}[${i}]`;
    const rule = validate.options<Rule & { capacity?: unknown }>(at, raw, RULE_KEYS);
    if (raw === undefined) throw new InvalidArgumentError(at, "expected a rule object");
    if (rule.name !== undefined && (typeof rule.name !== "string" || !NAME_PATTERN.test(rule.name))) {
      throw new InvalidArgumentError(`${at}.name`, `must match ${NAME_PATTERN}`);
    }
    const limit = validate.positiveInteger(`${at}.limit`, rule.limit, MAX_LIMIT);
    const windowMs = validate.durationMs(`${at}.windowMs`, rule.windowMs);
    const algorithm =
      rule.algorithm === undefined ? "fixed-window" : validate.oneOf(`${at}.algorithm`, rule.algorithm, ALGORITHMS);
    let burst: number | undefined;
    if (rule.burst !== undefined) {
      if (algorithm !== "token-bucket" && algorithm !== "gcra") {
        throw new InvalidArgumentError(`${at}.burst`, `only token-bucket and gcra rules take a burst`);
      }
      burst = validate.positiveInteger(`${at}.burst`, rule.burst, MAX_LIMIT);
    }
    if (algorithm === "token-bucket" || algorithm === "gcra") {
      const ticks = (burst ?? limit) * (windowMs / gcd(limit, windowMs));
      if (ticks > MAX_TICKS) {
        throw new InvalidArgumentError(
          `${at}.${burst === undefined ? "limit" : "burst"}`,
          `${burst === undefined ? "limit" : "burst"} × windowMs / gcd(limit, windowMs) must be at most 2^53 − 1`,
        );
      }
    }
    if (rule.capacity !== undefined && rule.capacity !== (burst ?? limit)) {
      throw new InvalidArgumentError(`${at}.capacity`, "not an option (a rule's capacity is its burst ?? limit)");
    }
    const name = rule.name === undefined ? defaultRuleName({ algorithm, limit, windowMs, burst }) : rule.name;
    if (seen.has(name)) {
      const why = rule.name === undefined ? " (an identical unnamed rule, or a rule named like its default)" : "";
      throw new InvalidArgumentError(`${at}.name`, `duplicate rule name "${name}"${why}`);
    }
    seen.add(name);
    return Object.freeze({ name, limit, windowMs, algorithm, burst, capacity: burst ?? limit });
  });
}

/** `limit` and `windowMs` as the scripts take them: token bucket and GCRA divided by their gcd. */
export function reduced(r: NormalizedRule): [limit: number, windowMs: number] {
  const g = r.algorithm === "token-bucket" || r.algorithm === "gcra" ? gcd(r.limit, r.windowMs) : 1;
  return [r.limit / g, r.windowMs / g];
}

/**
 * The rules as the ARGV of consume and consume-batch, per rule `"<name>|<alg>"` then: fixed window `limit, windowMs`;
 * sliding window `limit, -windowMs`; token bucket and GCRA `-limit, windowMs, capacity` (limit and windowMs divided
 * by their gcd). The signs tell the scripts the algorithm, so they parse no text and take no argument a rule doesn't
 * need (each argument costs Redis about 1.3k instructions).
 */
export function rulesArgs(rules: readonly NormalizedRule[]): string[] {
  return rules.flatMap((r) => {
    const [limit, windowMs] = reduced(r);
    const field = `${r.name}|${SHORT[r.algorithm]}`;
    if (r.algorithm === "fixed-window") return [field, String(limit), String(windowMs)];
    if (r.algorithm === "sliding-window") return [field, String(limit), String(-windowMs)];
    return [field, String(-limit), String(windowMs), String(r.capacity)];
  });
}

/**
 * The rules as the ARGV of peek, refund and reset: `"<name> <alg> <limit> <windowMs> <capacity>;..."`. Token bucket and GCRA send
 * `limit` and `windowMs` divided by their gcd (ticks per ms and ticks per unit: the scripts count exactly in integers).
 */
export function rulesSpec(rules: readonly NormalizedRule[]): string {
  return rules
    .map((r) => {
      const [limit, windowMs] = reduced(r);
      return `${r.name} ${SHORT[r.algorithm]} ${limit} ${windowMs} ${r.capacity}`;
    })
    .join(";");
}
