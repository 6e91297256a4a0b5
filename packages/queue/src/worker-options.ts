import { type CoordisObserver, InvalidArgumentError, type RedisClient, validate } from "@coordis/core";
import { type NormalizedRule, RateLimiter } from "@coordis/ratelimit";
import {
  type GroupLimits,
  onlyKeys,
  type ParsedCommon,
  parseCommon,
  type Retention,
  WORKER_KEYS,
  type WorkerOptions,
} from "./options.js";

export { onlyKeys, WORKER_KEYS, type WorkerOptions };

/** Default lease of a running job: 30 s. */
export const DEFAULT_LEASE_MS = 30_000;
/** Shortest lease: 1 s (renewed every third of it). */
export const MIN_LEASE_MS = 1_000;
/** Default `blockMs`: 2 s. */
export const DEFAULT_BLOCK_MS = 2_000;

/** Validated worker options. */
export interface ParsedWorker<T, R> extends ParsedCommon<T, R> {
  readonly concurrency: number;
  readonly leaseMs: number;
  /** Local safety margin on the lease: `leaseMs * 0.01 + 2` ms (clock drift, as for locks). */
  readonly driftMs: number;
  /** Group concurrency limit, 0 = none. */
  readonly groupLimit: number;
  /** Group rate-limit rules as the fetch script takes them, '' = none. */
  readonly groupRules: string;
  readonly blockMs: number;
  readonly schedules: boolean;
  readonly observer: CoordisObserver | undefined;
  readonly retention: Readonly<Required<Retention>>;
}

const SHORT: Record<NormalizedRule["algorithm"], string> = {
  "fixed-window": "fw",
  "sliding-window": "sw",
  "token-bucket": "tb",
  gcra: "gcra",
};

function gcd(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

/**
 * One rule as lua/_lib/ratelimit.lua's rl_rules() reads it: `<name> <alg> <limit> <windowMs> <capacity>`, with limit
 * and window of token-bucket and GCRA rules divided by their gcd (that library counts those in integer ticks).
 */
function ruleSpec(r: NormalizedRule): string {
  const g = r.algorithm === "token-bucket" || r.algorithm === "gcra" ? gcd(r.limit, r.windowMs) : 1;
  return `${r.name} ${SHORT[r.algorithm]} ${r.limit / g} ${r.windowMs / g} ${r.capacity}`;
}

/**
 * Validates a worker's options. Group rate-limit rules are validated by `@coordis/ratelimit` itself (a RateLimiter is
 * built and dropped, no Redis call), so they mean exactly what they mean there.
 * @throws InvalidArgumentError
 */
export function parseWorker<T, R>(redis: RedisClient, o: WorkerOptions<T, R>): ParsedWorker<T, R> {
  const common = parseCommon<T, R>(o);
  const concurrency = validate.optional(o.concurrency, 1, (v) =>
    validate.positiveInteger("options.concurrency", v, 10_000),
  );
  const leaseMs = validate.optional(o.leaseMs, DEFAULT_LEASE_MS, (v) =>
    validate.durationMs("options.leaseMs", v, { min: MIN_LEASE_MS, max: 24 * 60 * 60 * 1000 }),
  );
  const blockMs = validate.optional(o.blockMs, DEFAULT_BLOCK_MS, (v) =>
    validate.durationMs("options.blockMs", v, { min: 10, max: 60_000 }),
  );
  const schedules = validate.optional(o.schedules, true, (v) => validate.boolean("options.schedules", v));
  const g = validate.options<GroupLimits>("options.groups", o.groups);
  onlyKeys("options.groups", g, ["concurrency", "rateLimit"]);
  const groupLimit = validate.optional(g.concurrency, 0, (v) =>
    validate.positiveInteger("options.groups.concurrency", v, 1_000_000),
  );
  let groupRules = "";
  if (g.rateLimit !== undefined) {
    let rules: readonly NormalizedRule[];
    try {
      rules = new RateLimiter(redis, { rules: g.rateLimit as never }).rules;
    } catch (err) {
      if (err instanceof InvalidArgumentError) {
        const argument = err.argument.replace(/^options\.rules/, "options.groups.rateLimit");
        throw new InvalidArgumentError(argument, err.message.replace(/^Invalid argument "[^"]*": /, ""));
      }
      throw err;
    }
    groupRules = rules.map(ruleSpec).join(";");
  }
  return {
    ...common,
    concurrency,
    leaseMs,
    driftMs: Math.floor(leaseMs * 0.01) + 2,
    groupLimit,
    groupRules,
    blockMs,
    schedules,
  };
}
