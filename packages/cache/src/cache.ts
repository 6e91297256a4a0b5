import { randomBytes } from "node:crypto";
import {
  CoordisError,
  type CoordisObserver,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  isCluster,
  notifyEvent,
  notifyOperation,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  type ScriptArgs,
  type ScriptDef,
  type ScriptKeys,
  toCoordisError,
  validate,
  validateName,
  validatePrefix,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { LRUCache } from "lru-cache";
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitState } from "./circuit-breaker.js";
import { type CacheCodec, encodeWith, jsonCodec } from "./codec.js";
import { type BusMessage, type GapReason, InvalidationBus } from "./invalidation-bus.js";
import { cacheScripts } from "./scripts.generated.js";

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
  /** Most bytes kept, counted as encoded value + key size (optional). */
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
   * Cross-replica invalidation over pub/sub (one subscriber connection per Cache). Default `true`. Without it an L1
   * entry can be outdated for up to `l1.ttlMs` after a change on another replica.
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

/** A loader: computes the value of a missing key. Its result must be encodable by the cache's codec. */
export type Loader<T> = () => Promise<T> | T;

/** Counters of a {@link Cache}, for tests and metrics. */
export interface CacheStats {
  /** Entries in L1. */
  readonly l1Entries: number;
  /** Times L1 was dropped because invalidations may have been missed. */
  readonly gaps: number;
  /** Whether the invalidation subscription is live (always `false` without a bus). */
  readonly busHealthy: boolean;
  /** Circuit breaker state. */
  readonly circuit: CircuitState;
  /** Redis calls the circuit breaker refused without sending them. */
  readonly shortCircuited: number;
  /** Redis calls (scripts and commands) the circuit breaker let through. */
  readonly redisCalls: number;
  /** Loader calls made by this instance. */
  readonly loads: number;
}

type TagPair = readonly [tag: string, version: string];

interface L1Entry {
  readonly data: string;
  /** performance.now() deadlines. */
  readonly fresh: number;
  readonly stale: number;
  readonly until: number;
  readonly tags: readonly TagPair[];
}

interface Resolved {
  readonly ttlMs: number;
  readonly staleMs: number;
  readonly tags: readonly string[];
}

interface L2Read {
  /** 0 miss, 1 fresh, 2 stale (tags already checked: an entry with an outdated tag is a miss). */
  readonly state: 0 | 1 | 2;
  readonly data: string;
  readonly fresh: number;
  readonly stale: number;
  readonly tags: readonly TagPair[];
  readonly locked: boolean;
}

type Tier = "l1" | "l2";
type Result = "hit" | "miss" | "stale";

interface Outcome {
  readonly data: string | undefined;
  readonly tier: Tier;
  readonly result: Result;
  readonly degraded?: boolean;
}

const warnedClients = new WeakSet<object>();

function token(): string {
  return randomBytes(12).toString("base64url");
}

/**
 * A two-tier cache: an in-process LRU (L1) in front of Redis (L2), shared by every replica of a service.
 *
 * - **Invalidation across replicas.** `set`, `delete`, `invalidateTag` and `clear` evict the entry from every
 *   replica's L1 through a pub/sub channel per namespace. When this instance may have missed a message (its
 *   subscriber disconnected, was resubscribed, its queue overflowed, or a publisher's sequence number skipped) it
 *   drops its whole L1 at once and does not read L1 until the subscription is live again.
 * - **Staleness bound.** An L1 read is at most `l1.ttlMs` old; with the bus, a change is visible everywhere within
 *   pub/sub delivery time, and `l1.ttlMs` only bounds the case of a message lost without any sign.
 * - **Stampede protection.** Concurrent misses of one key in one process share one call; across replicas one caller
 *   takes a fill lock in Redis and loads while the others wait (woken by the bus, polling with backoff) for at most
 *   `lock.waitMs`, then load themselves.
 * - **Stale-while-revalidate.** Within `staleMs` after expiry the old value is served and one caller across all
 *   replicas refreshes it in the background.
 * - **Tags** are versions: an entry records the version of each of its tags, `invalidateTag` deletes the tag's
 *   version (one command, no key scan), and a read treats an entry with an outdated tag as a miss.
 * - **Degradation.** When Redis is unavailable the loader is called directly and its result kept in L1 for
 *   `l1.ttlMs` (entries from before the outage were dropped with the gap); a circuit breaker stops paying the command
 *   timeout on every call.
 *
 * Keys: `<prefix>:cache:{<namespace>:<key>}` (each entry in its own slot on Redis Cluster) with a `:lock` sibling,
 * tag versions at `<prefix>:cache-tag:{<namespace>:<tag>}`.
 *
 * @example
 * const users = new Cache(redis, { namespace: "users", ttlMs: 60_000, staleMs: 30_000 });
 * const user = await users.getOrSet(`user:${id}`, () => db.loadUser(id), { tags: [`org:${orgId}`] });
 * await users.invalidateTag(`org:${orgId}`);
 */
export class Cache {
  /** The namespace. */
  readonly namespace: string;
  /** The key prefix. */
  readonly prefix: string;
  private readonly redis: RedisClient;
  private readonly ttlMs: number;
  private readonly staleMs: number;
  private readonly codec: CacheCodec;
  private readonly observer: CoordisObserver | undefined;
  private readonly l1: LRUCache<string, L1Entry> | undefined;
  private readonly l1TtlMs: number;
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  private readonly breaker: CircuitBreaker;
  private readonly bus: InvalidationBus | undefined;
  private readonly flights = new Map<string, Promise<Outcome>>();
  private readonly refreshing = new Set<string>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly started: Promise<void>;
  /** Bumped by every invalidation this instance learns of; an L1 write is skipped when it changed meanwhile. */
  private epoch = 0;
  private busHealthy = false;
  private closed = false;
  private gaps = 0;
  private loads = 0;

  /**
   * @param redis ioredis client or cluster (from `connect()`); the cache never closes it
   * @throws InvalidArgumentError for an invalid option
   */
  constructor(redis: RedisClient, options: CacheOptions) {
    const opts = validate.options<CacheOptions>("options", options);
    if (redis === null || typeof redis !== "object" || typeof (redis as Redis).evalsha !== "function") {
      throw new InvalidArgumentError("redis", "expected an ioredis Redis or Cluster client");
    }
    this.redis = redis;
    this.namespace = validate.string("options.namespace", opts.namespace, { maxBytes: 64 });
    if (!NAMESPACE_PATTERN.test(this.namespace)) {
      throw new InvalidArgumentError(
        "options.namespace",
        'must be 1-64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit',
      );
    }
    this.prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
    this.ttlMs = validate.durationMs("options.ttlMs", opts.ttlMs);
    this.staleMs = opts.staleMs === undefined ? 0 : validate.durationMs("options.staleMs", opts.staleMs, { min: 0 });
    const codec = opts.codec === undefined ? jsonCodec : opts.codec;
    if (codec === null || typeof codec !== "object") {
      throw new InvalidArgumentError("options.codec", "expected an object with encode() and decode()");
    }
    validate.func("options.codec.encode", codec.encode);
    validate.func("options.codec.decode", codec.decode);
    this.codec = codec;
    this.observer = validate.observer("options.observer", opts.observer);
    const lock = validate.options<NonNullable<CacheOptions["lock"]>>("options.lock", opts.lock);
    this.lockTtlMs =
      lock.ttlMs === undefined ? DEFAULT_LOCK_TTL_MS : validate.durationMs("options.lock.ttlMs", lock.ttlMs);
    this.lockWaitMs =
      lock.waitMs === undefined
        ? DEFAULT_LOCK_WAIT_MS
        : validate.durationMs("options.lock.waitMs", lock.waitMs, { min: 0 });
    const breaker = validate.options<CircuitBreakerOptions>("options.breaker", opts.breaker);
    const failures =
      breaker.failures === undefined ? 3 : validate.positiveInteger("options.breaker.failures", breaker.failures, 1000);
    const cooldownMs =
      breaker.cooldownMs === undefined ? 2_000 : validate.durationMs("options.breaker.cooldownMs", breaker.cooldownMs);
    this.breaker = new CircuitBreaker(failures, cooldownMs, (state, error) => this.circuitChanged(state, error));

    if (opts.l1 === false) {
      this.l1 = undefined;
      this.l1TtlMs = 0;
    } else {
      const l1 = validate.options<L1Options>("options.l1", opts.l1);
      const maxEntries =
        l1.maxEntries === undefined
          ? DEFAULT_L1_MAX_ENTRIES
          : validate.positiveInteger("options.l1.maxEntries", l1.maxEntries, 10_000_000);
      const maxBytes =
        l1.maxBytes === undefined ? undefined : validate.positiveInteger("options.l1.maxBytes", l1.maxBytes);
      this.l1TtlMs = l1.ttlMs === undefined ? DEFAULT_L1_TTL_MS : validate.durationMs("options.l1.ttlMs", l1.ttlMs);
      this.l1 = new LRUCache<string, L1Entry>({
        max: maxEntries,
        ...(maxBytes === undefined
          ? {}
          : { maxSize: maxBytes, sizeCalculation: (e: L1Entry, k: string) => e.data.length + k.length + 64 }),
      });
    }
    const useBus = opts.bus === undefined ? true : validate.boolean("options.bus", opts.bus);
    const checkPolicy =
      opts.checkEvictionPolicy === undefined
        ? true
        : validate.boolean("options.checkEvictionPolicy", opts.checkEvictionPolicy);

    this.bus = useBus
      ? new InvalidationBus(redis, this.prefix, this.namespace, this.observer, {
          message: (msg) => this.onBusMessage(msg),
          gap: (reason, flush) => this.onGap(reason, flush),
          health: (healthy) => {
            this.busHealthy = healthy;
          },
        })
      : undefined;
    this.started = Promise.all([this.bus?.start(), checkPolicy ? this.checkEvictionPolicy() : undefined]).then(
      () => undefined,
    );
  }

  /**
   * Resolves once the invalidation subscription is live (or has failed and is being retried in the background)
   * and the eviction-policy check is done. Using the cache before that is fine: L1 is simply not read until the
   * subscription is live.
   */
  ready(): Promise<void> {
    return this.started;
  }

  /**
   * Returns the cached value of `key`, or loads it with `loader`, stores it and returns it. Concurrent calls for a
   * key share one load per process, and one load across replicas (see the class description). A loader error is
   * passed to every caller sharing the load and nothing is cached.
   *
   * @throws InvalidArgumentError for a bad key, loader or option (before any Redis call), or when the loader's
   *   result cannot be encoded; whatever the loader throws. Redis being unavailable is not an error: the loader is
   *   called directly.
   */
  async getOrSet<T>(key: string, loader: Loader<T>, options?: EntryOptions): Promise<T> {
    this.assertOpen();
    const k = validateName(key, "key");
    validate.func("loader", loader);
    const opts = this.resolve(options);
    const started = performance.now();
    const hit = this.l1Fresh(k);
    if (hit !== undefined) {
      this.reportGet(started, { data: hit.data, tier: "l1", result: "hit" });
      return this.codec.decode(hit.data) as T;
    }
    let flight = this.flights.get(k);
    if (flight === undefined) {
      const mine: Promise<Outcome> = this.fill(k, loader as Loader<unknown>, opts).finally(() => {
        if (this.flights.get(k) === mine) this.flights.delete(k);
      });
      flight = mine;
      this.flights.set(k, flight);
    }
    const outcome = await flight;
    this.reportGet(started, outcome);
    return this.codec.decode(outcome.data as string) as T;
  }

  /**
   * Returns the fresh cached value of `key`, or `undefined`. Never loads. When Redis is unavailable, answers from
   * L1 (a value up to `staleMs` past its freshness) or `undefined`.
   * @throws InvalidArgumentError for a bad key
   */
  async get<T>(key: string): Promise<T | undefined> {
    this.assertOpen();
    const k = validateName(key, "key");
    const started = performance.now();
    const hit = this.l1Fresh(k);
    let outcome: Outcome;
    if (hit !== undefined) {
      outcome = { data: hit.data, tier: "l1", result: "hit" };
    } else {
      const epoch = this.epoch;
      try {
        const read = await this.l2Get(k, "", []);
        if (read.state === 1) {
          this.l1Store(k, read.data, read.fresh, read.stale, read.tags, epoch);
          outcome = { data: read.data, tier: "l2", result: "hit" };
        } else {
          outcome = { data: undefined, tier: "l2", result: "miss" };
        }
      } catch (err) {
        if (!(err instanceof RedisUnavailableError)) throw err;
        const e = this.l1?.get(k);
        const now = performance.now();
        outcome =
          e !== undefined && now < e.stale
            ? { data: e.data, tier: "l1", result: now < e.fresh ? "hit" : "stale", degraded: true }
            : { data: undefined, tier: "l1", result: "miss", degraded: true };
      }
    }
    this.reportGet(started, outcome);
    return outcome.data === undefined ? undefined : (this.codec.decode(outcome.data) as T);
  }

  /**
   * Stores `value` under `key` (fresh for `ttlMs`, then stale for `staleMs`) and evicts it from every replica's L1.
   * @throws InvalidArgumentError for a bad key, option or a value the codec cannot encode (nothing is sent);
   *   RedisUnavailableError when Redis cannot be reached (the local L1 entry is dropped)
   */
  async set(key: string, value: unknown, options?: EntryOptions): Promise<void> {
    this.assertOpen();
    const k = validateName(key, "key");
    const opts = this.resolve(options);
    const data = encodeWith(this.codec, value, "value");
    await this.operation("set", k, async () => {
      this.invalidateLocal(k);
      try {
        const pairs = await this.tagVersions(opts);
        const epoch = this.epoch;
        const keys = this.entryKeys(k);
        const [written] = await this.script(cacheScripts.set, keys, [
          data,
          opts.ttlMs,
          opts.staleMs,
          pairs.length > 0 ? JSON.stringify(pairs) : "",
          "",
        ]);
        const now = performance.now();
        if (written === 1) this.l1Store(k, data, now + opts.ttlMs, now + opts.ttlMs + opts.staleMs, pairs, epoch);
      } finally {
        await this.bus?.publish({ k });
      }
    });
  }

  /**
   * Deletes `key` everywhere (Redis and every replica's L1). A load that started before the delete can no longer
   * write its outdated value back, however long it or its write takes (its fill token is deleted with the entry).
   * @returns whether a value existed in Redis
   * @throws InvalidArgumentError for a bad key; RedisUnavailableError when Redis cannot be reached
   */
  async delete(key: string): Promise<boolean> {
    this.assertOpen();
    const k = validateName(key, "key");
    return this.operation("delete", k, async () => {
      this.invalidateLocal(k);
      try {
        return (await this.script(cacheScripts.delete, this.entryKeys(k), [])) === 1;
      } finally {
        await this.bus?.publish({ k });
      }
    });
  }

  /**
   * Invalidates every entry carrying `tag`, in Redis (O(1): the tag's version is deleted; entries recorded under it
   * become misses) and in every replica's L1.
   * @throws InvalidArgumentError for a bad tag; RedisUnavailableError when Redis cannot be reached
   */
  async invalidateTag(tag: string): Promise<void> {
    this.assertOpen();
    const t = this.checkTag(tag, "tag");
    await this.operation("invalidate-tag", t, async () => {
      this.evictTagLocal(t);
      try {
        await this.command(() => this.redis.del(this.tagKey(t)));
      } finally {
        await this.bus?.publish({ t });
      }
    });
  }

  /**
   * Removes every entry and tag version of this namespace from Redis (SCAN + UNLINK on every master; keys written
   * concurrently may survive) and from every replica's L1. Meant for maintenance, not for the request path.
   * @throws RedisUnavailableError when Redis cannot be reached
   */
  async clear(): Promise<void> {
    this.assertOpen();
    await this.operation("clear", undefined, async () => {
      this.dropL1();
      try {
        const nodes: Redis[] = isCluster(this.redis) ? (this.redis as Cluster).nodes("master") : [this.redis as Redis];
        const patterns = [`${this.prefix}:cache:{${this.namespace}:*`, `${this.prefix}:cache-tag:{${this.namespace}:*`];
        for (const node of nodes) {
          for (const match of patterns) {
            let cursor = "0";
            do {
              const [next, keys] = await this.command(() => node.scan(cursor, "MATCH", match, "COUNT", 500));
              cursor = next;
              if (keys.length > 0) {
                // One UNLINK per key: on a cluster node the keys of one SCAN page live in different slots.
                const pipeline = node.pipeline();
                for (const key of keys) pipeline.unlink(key);
                await this.command(() => pipeline.exec());
              }
            } while (cursor !== "0");
          }
        }
      } finally {
        await this.bus?.publish({ c: 1 });
      }
    });
  }

  /** Current counters. */
  stats(): CacheStats {
    return {
      l1Entries: this.l1?.size ?? 0,
      gaps: this.gaps,
      busHealthy: this.bus !== undefined && this.busHealthy,
      circuit: this.breaker.current,
      shortCircuited: this.breaker.shortCircuited,
      redisCalls: this.breaker.passed,
      loads: this.loads,
    };
  }

  /** Stops the invalidation subscription and drops L1. The Redis client stays open (it is yours). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.l1?.clear();
    for (const set of this.waiters.values()) for (const wake of set) wake();
    this.waiters.clear();
    await this.bus?.close();
  }

  // ---------------------------------------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new CoordisError("ERR_CACHE_CLOSED", "this Cache was closed");
  }

  private checkTag(tag: unknown, argument: string): string {
    const t = validate.string(argument, tag, { maxBytes: MAX_TAG_BYTES });
    if (t.includes("{") || t.includes("}")) throw new InvalidArgumentError(argument, 'must not contain "{" or "}"');
    return t;
  }

  private resolve(options: EntryOptions | undefined): Resolved {
    const o = validate.options<EntryOptions>("options", options);
    const ttlMs = o.ttlMs === undefined ? this.ttlMs : validate.durationMs("options.ttlMs", o.ttlMs);
    const staleMs =
      o.staleMs === undefined ? this.staleMs : validate.durationMs("options.staleMs", o.staleMs, { min: 0 });
    let tags: string[] = [];
    if (o.tags !== undefined) {
      if (!Array.isArray(o.tags)) throw new InvalidArgumentError("options.tags", "expected an array of strings");
      if (o.tags.length > MAX_TAGS) throw new InvalidArgumentError("options.tags", `at most ${MAX_TAGS} tags`);
      tags = [...new Set(o.tags.map((t, i) => this.checkTag(t, `options.tags[${i}]`)))];
    }
    return { ttlMs, staleMs, tags };
  }

  private entryKeys(k: string): [entry: string, lock: string] {
    const entry = `${this.prefix}:cache:{${this.namespace}:${k}}`;
    return [entry, `${entry}:lock`];
  }

  private tagKey(t: string): string {
    return `${this.prefix}:cache-tag:{${this.namespace}:${t}}`;
  }

  /** Runs one script through the circuit breaker. */
  private script<K extends readonly string[], A extends readonly string[], R>(
    def: ScriptDef<K, A, R>,
    keys: ScriptKeys<K>,
    args: ScriptArgs<A>,
  ): Promise<R> {
    return this.breaker.run(() => runScript(this.redis, def, keys, args));
  }

  /** Runs one plain command through the circuit breaker, mapping errors to Coordis errors. */
  private command<T>(fn: () => Promise<T>): Promise<T> {
    return this.breaker.run(async () => {
      try {
        return await fn();
      } catch (err) {
        throw toCoordisError(err);
      }
    });
  }

  private async operation<T>(op: string, name: string | undefined, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await fn();
      notifyOperation(this.observer, {
        primitive: "cache",
        op,
        outcome: "ok",
        durationMs: performance.now() - started,
        ...(name === undefined ? {} : { name }),
        attributes: { namespace: this.namespace },
      });
      return result;
    } catch (err) {
      const error = toCoordisError(err);
      notifyOperation(this.observer, {
        primitive: "cache",
        op,
        outcome: "error",
        durationMs: performance.now() - started,
        ...(name === undefined ? {} : { name }),
        attributes: { namespace: this.namespace },
        error,
      });
      throw error;
    }
  }

  private reportGet(started: number, outcome: Outcome): void {
    notifyOperation(this.observer, {
      primitive: "cache",
      op: "get",
      outcome: outcome.result,
      durationMs: performance.now() - started,
      attributes: {
        namespace: this.namespace,
        tier: outcome.tier,
        result: outcome.result,
        ...(outcome.degraded ? { degraded: true } : {}),
      },
    });
  }

  /** L1 may be read only while the bus is live (or when there is no bus: then `l1.ttlMs` is the only bound). */
  private l1Fresh(k: string): L1Entry | undefined {
    if (this.l1 === undefined || (this.bus !== undefined && !this.busHealthy)) return undefined;
    const e = this.l1.get(k);
    if (e === undefined) return undefined;
    const now = performance.now();
    if (now < e.fresh && now < e.until) return e;
    if (now >= e.stale) this.l1.delete(k);
    return undefined;
  }

  private l1Store(
    k: string,
    data: string,
    fresh: number,
    stale: number,
    tags: readonly TagPair[],
    epoch: number,
  ): void {
    // An invalidation that arrived while we were reading may concern this very value: then it must not enter L1.
    if (this.l1 === undefined || epoch !== this.epoch || this.closed) return;
    const until = Math.min(performance.now() + this.l1TtlMs, stale);
    this.l1.set(k, { data, fresh, stale, until, tags });
  }

  /**
   * Forgets everything local about `k`: its L1 entry, and its in-flight load (callers already waiting keep it, but a
   * call made after the invalidation must not join a load that may have read the old value).
   */
  private invalidateLocal(k: string): void {
    this.epoch++;
    this.l1?.delete(k);
    this.flights.delete(k);
  }

  private evictTagLocal(t: string): void {
    this.epoch++;
    this.flights.clear();
    if (this.l1 === undefined) return;
    const doomed: string[] = [];
    for (const [k, e] of this.l1.entries()) if (e.tags.some(([tag]) => tag === t)) doomed.push(k);
    for (const k of doomed) this.l1.delete(k);
  }

  private dropL1(): void {
    this.epoch++;
    this.flights.clear();
    this.l1?.clear();
  }

  private onBusMessage(msg: BusMessage): void {
    if (msg.c === 1) this.dropL1();
    if (typeof msg.t === "string") this.evictTagLocal(msg.t);
    if (typeof msg.k === "string") {
      this.invalidateLocal(msg.k);
      const set = this.waiters.get(msg.k);
      if (set !== undefined) for (const wake of set) wake();
    }
    notifyEvent(this.observer, {
      primitive: "cache",
      type: "invalidation",
      attributes: { namespace: this.namespace, kind: msg.c === 1 ? "clear" : msg.t !== undefined ? "tag" : "key" },
    });
  }

  private onGap(reason: GapReason, flush: boolean): void {
    this.gaps++;
    if (flush) this.dropL1();
    else this.epoch++;
    notifyEvent(this.observer, {
      primitive: "cache",
      type: "gap",
      attributes: { namespace: this.namespace, reason },
    });
  }

  private circuitChanged(state: CircuitState, error?: Error): void {
    if (state === "half-open") return;
    notifyEvent(this.observer, {
      primitive: "cache",
      type: state === "open" ? "degraded" : "recovered",
      attributes: { namespace: this.namespace },
      ...(error === undefined ? {} : { error }),
    });
  }

  /**
   * Reads an entry (one script) and checks its tags. `lockToken` non-empty = when the entry is unusable, take the
   * fill lock with it; `register` = when another caller holds the lock, register the token in the entry as this
   * caller's fill token instead (see lua/cache/get.lua).
   */
  private async l2Get(k: string, lockToken: string, tags: readonly string[], register = false): Promise<L2Read> {
    const keys = this.entryKeys(k);
    // Tags we already know the entry should carry are read in parallel with the entry itself. They live in other
    // slots than the entry (one slot per tag), so one script cannot read both on a cluster. Both calls are always
    // awaited: when one fails (Redis unavailable) the other must not be left to reject with nobody listening.
    const [entry, prefetched] = await Promise.allSettled([
      this.script(cacheScripts.get, keys, [lockToken, this.lockTtlMs, 0, register ? 1 : 0]),
      this.readTags(tags),
    ]);
    if (entry.status === "rejected") throw entry.reason;
    if (prefetched.status === "rejected") throw prefetched.reason;
    const known = prefetched.value;
    const local = performance.now();
    const [state, data, f, s, tagsJson, serverNow, locked] = entry.value;
    let read: L2Read = {
      state: state as 0 | 1 | 2,
      data,
      fresh: local + (f - serverNow),
      stale: local + (s - serverNow),
      tags: tagsJson === "" ? [] : (JSON.parse(tagsJson) as TagPair[]),
      locked: locked === 1,
    };
    if (read.state === 0 || read.tags.length === 0) return read;
    const missing = read.tags.filter(([t]) => !known.has(t)).map(([t]) => t);
    if (missing.length > 0) for (const [t, v] of await this.readTags(missing)) known.set(t, v);
    if (read.tags.every(([t, v]) => known.get(t) === v)) return read;
    // A tag was invalidated after this value was computed: it is a miss. Take the lock if asked to.
    if (lockToken !== "" && !read.locked) {
      const again = await this.script(cacheScripts.get, keys, [lockToken, this.lockTtlMs, 1, register ? 1 : 0]);
      read = { ...read, locked: again[6] === 1 };
    }
    return { ...read, state: 0, data: "", tags: [] };
  }

  private async readTags(tags: readonly string[]): Promise<Map<string, string | null>> {
    if (tags.length === 0) return new Map();
    const values = await Promise.all(tags.map((t) => this.command(() => this.redis.get(this.tagKey(t)))));
    return new Map(tags.map((t, i) => [t, values[i] ?? null]));
  }

  /** The current version of each tag, created when missing; read before loading so a concurrent invalidation wins. */
  private async tagVersions(opts: Resolved): Promise<TagPair[]> {
    const ttl = opts.ttlMs + opts.staleMs + this.lockTtlMs;
    const versions = await Promise.all(
      opts.tags.map((t) => this.script(cacheScripts.tagVersion, [this.tagKey(t)], [token(), ttl])),
    );
    return opts.tags.map((t, i) => [t, versions[i] as string] as const);
  }

  /** The shared part of getOrSet after an L1 miss: L2, then the fill lock, waiting or loading. */
  private async fill(k: string, loader: Loader<unknown>, opts: Resolved): Promise<Outcome> {
    // The lock token is also our fill token: what we load is written back only while it holds the lock (or, after
    // the wait timed out, is registered in the entry), i.e. while nobody set, deleted or filled the key meanwhile.
    const lockToken = token();
    const deadline = performance.now() + this.lockWaitMs;
    let delay = 5;
    for (;;) {
      // The last read, once the wait is over: take the lock if it is free now, else register our fill token.
      const last = performance.now() >= deadline || this.closed;
      const epoch = this.epoch;
      let read: L2Read;
      try {
        read = await this.l2Get(k, lockToken, opts.tags, last);
      } catch (err) {
        if (!(err instanceof RedisUnavailableError)) throw err;
        return this.degraded(k, loader, opts);
      }
      if (read.state === 1) {
        this.l1Store(k, read.data, read.fresh, read.stale, read.tags, epoch);
        return { data: read.data, tier: "l2", result: "hit" };
      }
      if (read.state === 2) {
        if (read.locked) this.refresh(k, loader, opts, lockToken);
        return { data: read.data, tier: "l2", result: "stale" };
      }
      if (read.locked || last) {
        if (!read.locked) {
          notifyEvent(this.observer, {
            primitive: "cache",
            type: "lock-wait-timeout",
            name: k,
            attributes: { namespace: this.namespace, waitMs: this.lockWaitMs },
          });
        }
        return { data: await this.loadAndStore(k, loader, opts, lockToken), tier: "l2", result: "miss" };
      }
      // Another caller (maybe another replica) is loading: wait for its result, woken by the bus or by polling.
      await this.waitFor(k, Math.max(0, Math.min(delay, deadline - performance.now())));
      delay = Math.min(delay * 2, 200);
    }
  }

  private waitFor(k: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(k);
      if (set === undefined) {
        set = new Set();
        this.waiters.set(k, set);
      }
      const owner = set;
      const done = () => {
        clearTimeout(timer);
        owner.delete(done);
        if (owner.size === 0 && this.waiters.get(k) === owner) this.waiters.delete(k);
        resolve();
      };
      const timer = setTimeout(done, ms);
      owner.add(done);
    });
  }

  /**
   * Loads and writes the value back. The write is conditional on `fill`, the token that holds the fill lock (or was
   * registered in the entry) since the last read: Redis refuses it when anybody set, deleted or filled the key
   * since that read, or when more than the lock TTL passed since it (server time, so a slow loader, a slow network
   * and a stalled Redis all count).
   */
  private async loadAndStore(k: string, loader: Loader<unknown>, opts: Resolved, fill: string): Promise<string> {
    const keys = this.entryKeys(k);
    let pairs: TagPair[];
    try {
      pairs = await this.tagVersions(opts);
    } catch (err) {
      if (!(err instanceof RedisUnavailableError)) throw err;
      return this.loadDirect(k, loader);
    }
    const epoch = this.epoch;
    const t0 = performance.now();
    let data: string;
    // Drops our fill token (and the lock, if ours) when nothing will be written; its outcome does not matter.
    const unlock = () => void this.script(cacheScripts.unlock, keys, [fill]).catch(() => {});
    try {
      data = await this.runLoader(k, loader);
    } catch (err) {
      unlock();
      throw err;
    }
    // The script would refuse this write anyway (its deadline counts from before the load): don't send the value.
    if (performance.now() - t0 >= this.lockTtlMs) {
      unlock();
      return data;
    }
    try {
      const [written] = await this.script(cacheScripts.set, keys, [
        data,
        opts.ttlMs,
        opts.staleMs,
        pairs.length > 0 ? JSON.stringify(pairs) : "",
        fill,
      ]);
      if (written === 1) {
        const now = performance.now();
        this.l1Store(k, data, now + opts.ttlMs, now + opts.ttlMs + opts.staleMs, pairs, epoch);
        // Wakes the callers waiting on other replicas (and evicts any older L1 copy there).
        await this.bus?.publish({ k });
      }
    } catch (err) {
      if (!(err instanceof RedisUnavailableError)) throw err;
    }
    return data;
  }

  private async runLoader(k: string, loader: Loader<unknown>): Promise<string> {
    const started = performance.now();
    this.loads++;
    try {
      const value = await loader();
      const data = encodeWith(this.codec, value, "loader result");
      notifyOperation(this.observer, {
        primitive: "cache",
        op: "load",
        outcome: "ok",
        durationMs: performance.now() - started,
        name: k,
        attributes: { namespace: this.namespace },
      });
      return data;
    } catch (err) {
      notifyOperation(this.observer, {
        primitive: "cache",
        op: "load",
        outcome: "error",
        durationMs: performance.now() - started,
        name: k,
        attributes: { namespace: this.namespace },
        ...(err instanceof Error ? { error: err } : {}),
      });
      throw err;
    }
  }

  /** Background refresh of a stale entry (this instance holds the fill lock). */
  private refresh(k: string, loader: Loader<unknown>, opts: Resolved, lockToken: string): void {
    if (this.refreshing.has(k)) return;
    this.refreshing.add(k);
    this.loadAndStore(k, loader, opts, lockToken)
      .catch((error: unknown) => {
        notifyEvent(this.observer, {
          primitive: "cache",
          type: "refresh-error",
          name: k,
          attributes: { namespace: this.namespace },
          ...(error instanceof Error ? { error } : {}),
        });
      })
      .finally(() => this.refreshing.delete(k));
  }

  /** Redis is unavailable: serve L1 (up to its stale deadline) or call the loader directly. */
  private async degraded(k: string, loader: Loader<unknown>, _opts: Resolved): Promise<Outcome> {
    const e = this.l1?.get(k);
    const now = performance.now();
    if (e !== undefined && now < e.stale) {
      return { data: e.data, tier: "l1", result: now < e.fresh ? "hit" : "stale", degraded: true };
    }
    return { data: await this.loadDirect(k, loader), tier: "l2", result: "miss", degraded: true };
  }

  private async loadDirect(k: string, loader: Loader<unknown>): Promise<string> {
    const epoch = this.epoch;
    const data = await this.runLoader(k, loader);
    const now = performance.now();
    // Kept for at most l1.ttlMs: invalidations cannot reach us while Redis is down.
    this.l1Store(k, data, now + this.l1TtlMs, now + this.l1TtlMs, [], epoch);
    return data;
  }

  private async checkEvictionPolicy(): Promise<void> {
    try {
      const policy = (await this.redis.config("GET", "maxmemory-policy")) as unknown as string[];
      const memory = (await this.redis.config("GET", "maxmemory")) as unknown as string[];
      const name = String(policy[1] ?? "");
      const max = Number(memory[1] ?? 0);
      if (name !== "noeviction" || !(max > 0)) return;
      notifyEvent(this.observer, {
        primitive: "cache",
        type: "eviction-policy",
        attributes: { namespace: this.namespace, policy: name, maxmemory: max },
      });
      if (!warnedClients.has(this.redis)) {
        warnedClients.add(this.redis);
        console.warn(
          `@coordis/cache: Redis has maxmemory ${max} with maxmemory-policy noeviction: when it is full, cache writes ` +
            "fail instead of evicting old entries. Give the cache its own Redis (or DB) with allkeys-lru or allkeys-lfu.",
        );
      }
    } catch {
      // CONFIG is often disabled on managed Redis: nothing to check then.
    }
  }
}
