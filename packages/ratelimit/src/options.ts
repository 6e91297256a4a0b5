import {
  type BatchOptions,
  type BatchSettings,
  batchSettings,
  type CoordisObserver,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  validate,
  validatePrefix,
} from "@coordis/core";
import { type NormalizedRule, normalizeRules, type Rule } from "./rules.js";

/** Default `redisRetryMs`: 1 s. */
export const DEFAULT_REDIS_RETRY_MS = 1_000;
/** Default `failClosedRetryAfterMs`: 1 s. */
export const DEFAULT_FAIL_CLOSED_RETRY_AFTER_MS = 1_000;
/** Keys the deny cache holds when `denyCache: true`. */
export const DEFAULT_DENY_CACHE_KEYS = 10_000;
/** Largest `limit` of a {@link ConcurrencyLimiter}. */
export const MAX_CONCURRENCY = 1_000_000;

const RATE_LIMITER_KEYS = [
  "rules",
  "prefix",
  "observer",
  "onRedisError",
  "redisRetryMs",
  "failClosedRetryAfterMs",
  "denyCache",
  "batch",
] as const;
const FALLBACK_KEYS = ["fallback", "maxKeys"] as const;
const DENY_CACHE_KEYS = ["maxKeys"] as const;
const BATCH_KEYS = ["maxSize", "maxDelayMs"] as const;
const CONCURRENCY_KEYS = ["limit", "ttlMs", "prefix", "observer"] as const;

/**
 * What a {@link RateLimiter} does when Redis is unavailable (`RedisUnavailableError`: refused, timed out...):
 * - `"throw"` (default): the call rejects with `RedisUnavailableError`.
 * - `"fail-open"`: admit the call (`reason: "fail-open"`); nothing is counted.
 * - `"fail-closed"`: reject the call (`reason: "fail-closed"`, `retryAfterMs` = `failClosedRetryAfterMs`).
 * - `{ fallback: "memory" }`: decide with an in-process limiter of the same rules (`reason: "fallback"`); its
 *   counts are per process and start empty, so N replicas admit up to N × the limit during the outage.
 *
 * Script errors (`ScriptError`: a wrong type at the key, a missing permission) always reject: they are bugs, not
 * outages.
 */
export type RedisErrorPolicy = "throw" | "fail-open" | "fail-closed" | { fallback: "memory"; maxKeys?: number };

/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** The limits every key is held to, all checked atomically per call. */
  rules: Rule[];
  /** Key prefix (default `"coordis"`); keys are `<prefix>:rl:{<key>}`. */
  prefix?: string;
  /** Receives one operation event per call (see the README's "Observability"). */
  observer?: CoordisObserver;
  /** Failure policy, default `"throw"`. */
  onRedisError?: RedisErrorPolicy;
  /**
   * After a policy decided because Redis failed, keep deciding locally for this many ms before trying Redis
   * again, so an outage costs one command timeout per interval rather than per call. Default 1000; 0 disables.
   */
  redisRetryMs?: number;
  /** `retryAfterMs` of a fail-closed decision. Default 1000. */
  failClosedRetryAfterMs?: number;
  /**
   * Local deny cache (off by default): after a rejection, calls for the same key (of at least the rejected cost)
   * are rejected locally until `retryAfterMs` has passed, without a Redis call (`reason: "deny-cache"`). `true`
   * holds up to 10 000 keys.
   */
  denyCache?: boolean | { maxKeys?: number };
  /**
   * Micro-batching of {@link RateLimiter.consume} (off by default): consumes issued in the same event-loop turn
   * (or within `maxDelayMs`) go to Redis as one script call per hash slot (one per call batch on a standalone
   * server), applied in call order, each all rules or none on its own, each caller with its own decision or error.
   * `true` = `{ maxSize: 32, maxDelayMs: 0 }`. See the README's "Micro-batching".
   */
  batch?: boolean | BatchOptions;
}

/** {@link RateLimiterOptions} validated, with defaults filled in. */
export interface RateLimiterSettings {
  readonly rules: readonly NormalizedRule[];
  readonly prefix: string;
  readonly observer: CoordisObserver | undefined;
  readonly policy: RedisErrorPolicy;
  /** Keys of the in-memory fallback (`{ fallback: "memory" }` only; undefined: its default). */
  readonly fallback: { readonly maxKeys: number | undefined } | undefined;
  /** Keys of the deny cache, or undefined when it is off. */
  readonly denyCacheKeys: number | undefined;
  readonly redisRetryMs: number;
  readonly failClosedRetryAfterMs: number;
  readonly batch: BatchSettings | undefined;
}

/**
 * Validates the options of a {@link RateLimiter} whole (unknown keys, in the options and in the failure policy,
 * deny cache and batch objects, are an `InvalidArgumentError` naming them).
 * @throws InvalidArgumentError
 */
export function parseRateLimiterOptions(raw: unknown, argument = "options"): RateLimiterSettings {
  const opts = validate.options<RateLimiterOptions>(argument, raw, RATE_LIMITER_KEYS);
  const rules = Object.freeze(normalizeRules(opts.rules, `${argument}.rules`));
  const prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, `${argument}.prefix`);
  const observer = validate.observer(`${argument}.observer`, opts.observer);
  const policy = opts.onRedisError === undefined ? "throw" : opts.onRedisError;
  let fallback: RateLimiterSettings["fallback"];
  if (typeof policy === "string") {
    validate.oneOf(`${argument}.onRedisError`, policy, ["throw", "fail-open", "fail-closed"]);
  } else if (policy === null || typeof policy !== "object" || policy.fallback !== "memory") {
    throw new InvalidArgumentError(
      `${argument}.onRedisError`,
      'expected "throw", "fail-open", "fail-closed" or { fallback: "memory" }',
    );
  } else {
    validate.options(`${argument}.onRedisError`, policy, FALLBACK_KEYS);
    const maxKeys =
      policy.maxKeys === undefined
        ? undefined
        : validate.positiveInteger(`${argument}.onRedisError.maxKeys`, policy.maxKeys);
    fallback = { maxKeys };
  }
  let denyCacheKeys: number | undefined;
  if (opts.denyCache !== undefined && opts.denyCache !== false) {
    const deny =
      opts.denyCache === true
        ? {}
        : validate.options<{ maxKeys?: number }>(`${argument}.denyCache`, opts.denyCache, DENY_CACHE_KEYS);
    denyCacheKeys =
      deny.maxKeys === undefined
        ? DEFAULT_DENY_CACHE_KEYS
        : validate.positiveInteger(`${argument}.denyCache.maxKeys`, deny.maxKeys);
  }
  const redisRetryMs =
    opts.redisRetryMs === undefined
      ? DEFAULT_REDIS_RETRY_MS
      : validate.durationMs(`${argument}.redisRetryMs`, opts.redisRetryMs, { min: 0, max: 600_000 });
  const failClosedRetryAfterMs =
    opts.failClosedRetryAfterMs === undefined
      ? DEFAULT_FAIL_CLOSED_RETRY_AFTER_MS
      : validate.durationMs(`${argument}.failClosedRetryAfterMs`, opts.failClosedRetryAfterMs);
  if (opts.batch !== null && typeof opts.batch === "object" && !Array.isArray(opts.batch)) {
    validate.options(`${argument}.batch`, opts.batch, BATCH_KEYS);
  }
  const batch = batchSettings(`${argument}.batch`, opts.batch);
  return { rules, prefix, observer, policy, fallback, denyCacheKeys, redisRetryMs, failClosedRetryAfterMs, batch };
}

/** Options of {@link ConcurrencyLimiter}. */
export interface ConcurrencyLimiterOptions {
  /** Most permits in flight per key at once (integer ≥ 1). */
  limit: number;
  /** Lease of each permit in ms: a holder that crashes frees its slot after this long. */
  ttlMs: number;
  /** Key prefix (default `"coordis"`); keys are `<prefix>:cl:{<key>}`. */
  prefix?: string;
  /** Receives one operation event per acquire / release / extend. */
  observer?: CoordisObserver;
}

/**
 * Validates the options of a {@link ConcurrencyLimiter} whole (unknown keys included).
 * @throws InvalidArgumentError
 */
export function parseConcurrencyOptions(
  raw: unknown,
  argument = "options",
): { limit: number; ttlMs: number; prefix: string; observer: CoordisObserver | undefined } {
  const opts = validate.options<ConcurrencyLimiterOptions>(argument, raw, CONCURRENCY_KEYS);
  return {
    limit: validate.positiveInteger(`${argument}.limit`, opts.limit, MAX_CONCURRENCY),
    ttlMs: validate.durationMs(`${argument}.ttlMs`, opts.ttlMs),
    prefix: opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, `${argument}.prefix`),
    observer: validate.observer(`${argument}.observer`, opts.observer),
  };
}
