import {
  type CoordisObserver,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  keyHead,
  parseCodec,
  validate,
  validatePrefix,
} from "@coordis/core";
import type { CircuitBreakerOptions } from "./circuit-breaker.js";
import { type CacheCodec, jsonCodec } from "./codec.js";

/** Default number of L1 entries. */
export const DEFAULT_L1_MAX_ENTRIES = 10_000;
/** Default L1 lifetime of an entry, ms: the staleness bound when an invalidation is lost without being detected. */
export const DEFAULT_L1_TTL_MS = 5_000;
/**
 * Default lifetime of the fill lock, and the longest time (Redis server time) from the read that starts a load to
 * the write of its result that Redis still accepts, ms.
 */
export const DEFAULT_LOCK_TTL_MS = 10_000;
/** Default time a caller waits for another replica's load before loading itself, ms. */
export const DEFAULT_LOCK_WAIT_MS = 5_000;
/** Most tags one entry may carry. */
export const MAX_TAGS = 32;

const NAMESPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_TAG_BYTES = 256;

/** L1 (in-process) options. */
export interface L1Options {
  /** Most entries kept (1–10,000,000); default {@link DEFAULT_L1_MAX_ENTRIES}. */
  maxEntries?: number;
  /**
   * Most bytes kept (optional), an entry counted as the characters of its key and encoded value + 64, plus each
   * tag's and its version's characters + 32 (JavaScript holds text outside Latin-1 at 2 bytes a character, so such
   * values may take up to twice this in memory).
   */
  maxBytes?: number;
  /** Longest time an entry is served from L1 without asking Redis, ms; default {@link DEFAULT_L1_TTL_MS}. */
  ttlMs?: number;
}

/** Options of {@link Cache}. */
export interface CacheOptions {
  /** Name of this cache: 1–64 characters of letters, digits, `.`, `_`, `-`. Keys of different namespaces never mix. */
  namespace: string;
  /** How long a value is fresh, ms (1 ms – 365 days). */
  ttlMs: number;
  /** How long after `ttlMs` a value may still be served while it is refreshed in the background, ms; default 0. */
  staleMs?: number;
  /** The in-process L1 in front of Redis, or `false` for none. Default `{ maxEntries: 10000, ttlMs: 5000 }`. */
  l1?: L1Options | false;
  /** Value encoding; default {@link jsonCodec}. */
  codec?: CacheCodec;
  /** Key prefix; default `"coordis"`. */
  prefix?: string;
  /** Receives operations (`get` with `{tier, result}`, `load`, `set`...) and events (gaps, degraded mode...). */
  observer?: CoordisObserver;
  /**
   * Hear other replicas' invalidations over pub/sub (one subscriber connection per Cache). Default `true`. Without it
   * an L1 entry of this instance can be outdated for up to `l1.ttlMs` after a change on another replica. This
   * instance's own changes are announced either way (a PUBLISH on the client), so the other replicas hear of them.
   */
  bus?: boolean;
  /** Stampede protection across replicas. */
  lock?: {
    /**
     * Fill lock lifetime, and the longest time from the read that starts a load to its write-back (server time: a
     * slow loader, network or Redis all count) after which the result is no longer written, ms; default
     * {@link DEFAULT_LOCK_TTL_MS}.
     */
    ttlMs?: number;
    /** Longest wait for another replica's load before loading ourselves, ms; default {@link DEFAULT_LOCK_WAIT_MS}. */
    waitMs?: number;
  };
  /** Circuit breaker for Redis outages; default `{ failures: 3, cooldownMs: 2000 }`. */
  breaker?: CircuitBreakerOptions;
  /** Read `maxmemory-policy` at start and warn when Redis may refuse writes instead of evicting; default `true`. */
  checkEvictionPolicy?: boolean;
  /**
   * Refuse at once (`InvalidArgumentError`) a `getOrSet` that a loader makes, directly or through other keys' loaders,
   * on its own key, which would otherwise wait for ever on the load it is part of; default `false`. Tracked with
   * `AsyncLocalStorage`, which on Node 20 makes every `await` of the whole process slower (about 2.5x measured) once
   * a loader ran: turn it on in development and tests.
   */
  detectLoaderCycles?: boolean;
}

/** Per-call options of {@link Cache.getOrSet} and {@link Cache.set}. */
export interface EntryOptions {
  /** Fresh lifetime of this entry, ms; default the cache's `ttlMs`. */
  ttlMs?: number;
  /** Stale window of this entry, ms; default the cache's `staleMs`. */
  staleMs?: number;
  /** Tags for {@link Cache.invalidateTag} (up to 32, each 1–256 bytes without `{` `}`). */
  tags?: readonly string[];
}

/** Options of {@link Cache.getOrSet}: those of the entry, and a signal. */
export interface GetOrSetOptions extends EntryOptions {
  /**
   * Aborting it rejects this call at once with `signal.reason`; the load goes on for the other callers sharing it
   * (and fills the cache), and is dropped before its loader starts when every caller sharing it aborted.
   */
  signal?: AbortSignal;
}

const CACHE_KEYS: readonly (keyof CacheOptions)[] = [
  "namespace",
  "ttlMs",
  "staleMs",
  "l1",
  "codec",
  "prefix",
  "observer",
  "bus",
  "lock",
  "breaker",
  "checkEvictionPolicy",
  "detectLoaderCycles",
];
const L1_KEYS: readonly (keyof L1Options)[] = ["maxEntries", "maxBytes", "ttlMs"];
const LOCK_KEYS: readonly string[] = ["ttlMs", "waitMs"];
const BREAKER_KEYS: readonly (keyof CircuitBreakerOptions)[] = ["failures", "cooldownMs"];
const ENTRY_KEYS: readonly (keyof EntryOptions)[] = ["ttlMs", "staleMs", "tags"];
const GET_OR_SET_KEYS: readonly (keyof GetOrSetOptions)[] = [...ENTRY_KEYS, "signal"];

/** {@link CacheOptions} after validation, defaults filled in. */
export interface CacheSettings {
  readonly namespace: string;
  readonly prefix: string;
  readonly ttlMs: number;
  readonly staleMs: number;
  readonly codec: CacheCodec;
  readonly observer: CoordisObserver | undefined;
  /** `undefined` = no L1. */
  readonly l1:
    | { readonly maxEntries: number; readonly maxBytes: number | undefined; readonly ttlMs: number }
    | undefined;
  readonly bus: boolean;
  readonly lockTtlMs: number;
  readonly lockWaitMs: number;
  readonly breaker: { readonly failures: number; readonly cooldownMs: number };
  readonly checkEvictionPolicy: boolean;
  readonly detectLoaderCycles: boolean;
  readonly keys: CacheKeys;
}

/** The settings of one entry (a `set` or a `getOrSet` call). */
export interface EntrySettings {
  readonly ttlMs: number;
  readonly staleMs: number;
  readonly tags: readonly string[];
}

/** {@link GetOrSetOptions} after validation. */
export interface GetOrSetSettings extends EntrySettings {
  readonly signal: AbortSignal | undefined;
}

/**
 * The keys of one namespace: entries at `<prefix>:cache:{<namespace>:<key>}` (each entry in its own slot on Redis
 * Cluster) with a `:lock` sibling, tag versions at `<prefix>:cache-tag:{<namespace>:<tag>}`.
 */
export class CacheKeys {
  readonly #entry: string;
  readonly #tag: string;
  /** SCAN patterns matching every key of the namespace. */
  readonly patterns: readonly string[];

  constructor(prefix: string, namespace: string) {
    this.#entry = `${keyHead(prefix, "cache")}{${namespace}:`;
    this.#tag = `${keyHead(prefix, "cache-tag")}{${namespace}:`;
    this.patterns = [`${this.#entry}*`, `${this.#tag}*`];
  }

  /** The entry's key and its fill-lock sibling. */
  entry(k: string): [entry: string, lock: string] {
    const entry = `${this.#entry}${k}}`;
    return [entry, `${entry}:lock`];
  }

  tag(t: string): string {
    return `${this.#tag}${t}}`;
  }
}

/**
 * Validates `new Cache(redis, options)` as a whole: unknown keys (at every level) are rejected too.
 * @throws InvalidArgumentError naming the option
 */
export function parseCacheOptions(raw: unknown): CacheSettings {
  const opts = validate.options<CacheOptions>("options", raw, CACHE_KEYS);
  const namespace = validate.string("options.namespace", opts.namespace, { maxBytes: 64 });
  if (!NAMESPACE_PATTERN.test(namespace)) {
    throw new InvalidArgumentError(
      "options.namespace",
      'must be 1-64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit',
    );
  }
  const prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
  if (opts.ttlMs === undefined) {
    throw new InvalidArgumentError(
      "options.ttlMs",
      "is required: how long a value stays fresh, in ms (e.g. { ttlMs: 60_000 }); there is no default",
    );
  }
  const ttlMs = validate.durationMs("options.ttlMs", opts.ttlMs);
  const staleMs = opts.staleMs === undefined ? 0 : validate.durationMs("options.staleMs", opts.staleMs, { min: 0 });
  const codec = parseCodec("options.codec", opts.codec, jsonCodec);
  const observer = validate.observer("options.observer", opts.observer);
  const lock = validate.options<NonNullable<CacheOptions["lock"]>>("options.lock", opts.lock, LOCK_KEYS);
  const lockTtlMs =
    lock.ttlMs === undefined ? DEFAULT_LOCK_TTL_MS : validate.durationMs("options.lock.ttlMs", lock.ttlMs);
  const lockWaitMs =
    lock.waitMs === undefined
      ? DEFAULT_LOCK_WAIT_MS
      : validate.durationMs("options.lock.waitMs", lock.waitMs, { min: 0 });
  const breaker = validate.options<CircuitBreakerOptions>("options.breaker", opts.breaker, BREAKER_KEYS);
  const failures =
    breaker.failures === undefined ? 3 : validate.positiveInteger("options.breaker.failures", breaker.failures, 1000);
  const cooldownMs =
    breaker.cooldownMs === undefined ? 2_000 : validate.durationMs("options.breaker.cooldownMs", breaker.cooldownMs);
  let l1: CacheSettings["l1"];
  if (opts.l1 !== false) {
    const o = validate.options<L1Options>("options.l1", opts.l1, L1_KEYS);
    l1 = {
      maxEntries:
        o.maxEntries === undefined
          ? DEFAULT_L1_MAX_ENTRIES
          : validate.positiveInteger("options.l1.maxEntries", o.maxEntries, 10_000_000),
      maxBytes: o.maxBytes === undefined ? undefined : validate.positiveInteger("options.l1.maxBytes", o.maxBytes),
      ttlMs: o.ttlMs === undefined ? DEFAULT_L1_TTL_MS : validate.durationMs("options.l1.ttlMs", o.ttlMs),
    };
  }
  const bus = opts.bus === undefined ? true : validate.boolean("options.bus", opts.bus);
  const checkEvictionPolicy =
    opts.checkEvictionPolicy === undefined
      ? true
      : validate.boolean("options.checkEvictionPolicy", opts.checkEvictionPolicy);
  return {
    namespace,
    prefix,
    ttlMs,
    staleMs,
    codec,
    observer,
    l1,
    bus,
    lockTtlMs,
    lockWaitMs,
    breaker: { failures, cooldownMs },
    checkEvictionPolicy,
    detectLoaderCycles:
      opts.detectLoaderCycles === undefined
        ? false
        : validate.boolean("options.detectLoaderCycles", opts.detectLoaderCycles),
    keys: new CacheKeys(prefix, namespace),
  };
}

/** Validates a tag (1–256 bytes, no braces). @throws InvalidArgumentError naming `argument` */
export function checkTag(tag: unknown, argument: string): string {
  const t = validate.string(argument, tag, { maxBytes: MAX_TAG_BYTES });
  if (t.includes("{") || t.includes("}")) throw new InvalidArgumentError(argument, 'must not contain "{" or "}"');
  return t;
}

/**
 * Validates the per-call options of `set`/`getOrSet` (unknown keys rejected), defaults from the cache.
 * @throws InvalidArgumentError naming the option
 */
export function parseEntryOptions(raw: unknown, defaults: { ttlMs: number; staleMs: number }): EntrySettings {
  return parseOptions(raw, defaults, ENTRY_KEYS);
}

/** {@link GetOrSetOptions}: an entry's settings and the signal. */
export function parseGetOrSetOptions(raw: unknown, defaults: { ttlMs: number; staleMs: number }): GetOrSetSettings {
  return parseOptions(raw, defaults, GET_OR_SET_KEYS);
}

function parseOptions(
  raw: unknown,
  defaults: { ttlMs: number; staleMs: number },
  keys: readonly string[],
): GetOrSetSettings {
  const o = validate.options<GetOrSetOptions>("options", raw, keys);
  const ttlMs = o.ttlMs === undefined ? defaults.ttlMs : validate.durationMs("options.ttlMs", o.ttlMs);
  const staleMs =
    o.staleMs === undefined ? defaults.staleMs : validate.durationMs("options.staleMs", o.staleMs, { min: 0 });
  let tags: string[] = [];
  if (o.tags !== undefined) {
    if (!Array.isArray(o.tags)) throw new InvalidArgumentError("options.tags", "expected an array of strings");
    // Repeats count once: the limit is on distinct tags, the array itself is bounded so a huge one is refused cheaply.
    if (o.tags.length > MAX_TAGS * 8) {
      throw new InvalidArgumentError("options.tags", `at most ${MAX_TAGS} tags (got an array of ${o.tags.length})`);
    }
    // Indexed, not map(): map() skips the holes of a sparse array, which would then read as undefined.
    const checked = new Set<string>();
    for (let i = 0; i < o.tags.length; i++) checked.add(checkTag(o.tags[i], `options.tags[${i}]`));
    tags = [...checked];
    if (tags.length > MAX_TAGS) {
      throw new InvalidArgumentError("options.tags", `at most ${MAX_TAGS} distinct tags (got ${tags.length})`);
    }
  }
  const signal = o.signal === undefined ? undefined : validate.abortSignal("options.signal", o.signal);
  return { ttlMs, staleMs, tags, signal };
}
