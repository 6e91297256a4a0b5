import {
  ClosedError,
  type CoordisObserver,
  instrument,
  notifyEvent,
  type RedisClient,
  RedisUnavailableError,
  type ReportAttributes,
  validate,
  validateName,
} from "@coordis/core";
import type { CacheStats } from "./cache-stats.js";
import { CircuitBreaker, type CircuitState } from "./circuit-breaker.js";
import { type CacheCodec, encodeWith, Undecodable, undecodableError } from "./codec.js";
import { Filler, type Loader, type Outcome, reportGet } from "./fill.js";
import {
  announced,
  type BusMessage,
  type BusMessageBody,
  type GapReason,
  InvalidationBus,
} from "./invalidation-bus.js";
import { L1 } from "./l1.js";
import { abortable } from "./load-scope.js";
import {
  type CacheOptions,
  checkTag,
  type EntryOptions,
  type GetOrSetOptions,
  parseCacheOptions,
  parseEntryOptions,
  parseGetOrSetOptions,
} from "./options.js";
import { RedisTier } from "./redis-tier.js";

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
  readonly #defaults: { readonly ttlMs: number; readonly staleMs: number };
  readonly #codec: CacheCodec;
  readonly #observer: CoordisObserver | undefined;
  /** `{ namespace }`: the attributes of every operation report. */
  readonly #attributes: ReportAttributes;
  readonly #breaker: CircuitBreaker;
  readonly #l1: L1;
  readonly #l2: RedisTier;
  readonly #filler: Filler;
  /** The subscribed bus (`undefined` with `bus: false`), and the one that announces changes either way. */
  readonly #bus: InvalidationBus | undefined;
  readonly #announcer: InvalidationBus;
  readonly #started: Promise<void>;
  #busHealthy = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #gaps = 0;

  /**
   * @param redis ioredis client or cluster (from `connect()`); the cache never closes it
   * @throws InvalidArgumentError for an invalid or unknown option
   */
  constructor(redis: RedisClient, options: CacheOptions) {
    validate.options("options", options);
    validate.redisClient("redis", redis);
    const s = parseCacheOptions(options);
    this.namespace = s.namespace;
    this.prefix = s.prefix;
    this.#defaults = { ttlMs: s.ttlMs, staleMs: s.staleMs };
    this.#codec = s.codec;
    this.#observer = s.observer;
    this.#attributes = Object.freeze({ namespace: s.namespace });
    this.#breaker = new CircuitBreaker(s.breaker.failures, s.breaker.cooldownMs, (state, error) =>
      this.#circuitChanged(state, error),
    );
    this.#l1 = new L1(s.l1, () => this.#bus === undefined || this.#busHealthy);
    this.#l2 = new RedisTier(redis, s.keys, s.lockTtlMs, this.#breaker);
    // `bus: false`: no subscription, but changes are still announced (other replicas' L1 bounds depend on it).
    const bus = new InvalidationBus(redis, s.prefix, s.namespace, s.observer, {
      message: (msg) => this.#onBusMessage(msg),
      gap: (reason, flush) => this.#onGap(reason, flush),
      health: (healthy) => {
        // What L1 got while not subscribed (before the first subscription too) missed every invalidation of that
        // time: it is never read.
        if (healthy) this.#dropL1();
        this.#busHealthy = healthy;
      },
    });
    this.#announcer = bus;
    this.#bus = s.bus ? bus : undefined;
    this.#filler = new Filler({
      l1: this.#l1,
      l2: this.#l2,
      codec: s.codec,
      observer: s.observer,
      namespace: s.namespace,
      attributes: this.#attributes,
      lockTtlMs: s.lockTtlMs,
      lockWaitMs: s.lockWaitMs,
      detectLoaderCycles: s.detectLoaderCycles,
      publish: (k) => bus.publish({ k }).catch(() => {}),
      isClosed: () => this.#closed,
    });
    this.#started = Promise.all([
      this.#bus?.start(),
      s.checkEvictionPolicy ? this.#l2.checkEvictionPolicy(s.observer, s.namespace) : undefined,
    ]).then(() => undefined);
  }

  /**
   * Resolves once the invalidation subscription is live (or has failed and is being retried in the background)
   * and the eviction-policy check is done. Using the cache before that is fine: L1 is simply not read until the
   * subscription is live.
   */
  ready(): Promise<void> {
    return this.#started;
  }

  /**
   * Returns the cached value of `key`, or loads it with `loader`, stores it and returns it. Concurrent calls for a
   * key share one load per process, and one load across replicas (see the class description). A loader error is
   * passed to every caller sharing the load and nothing is cached. Aborting `options.signal` rejects this call at
   * once with `signal.reason`; the load goes on for the other callers sharing it and fills the cache, and is dropped
   * before its loader starts when every caller sharing it aborted.
   *
   * @throws InvalidArgumentError for a bad key, loader or option (an unknown option key too; before any Redis
   *   call), or when the loader's result cannot be encoded, or at once when the loader of `key` (directly or through
   *   other keys' loaders) calls getOrSet(key) again (it would wait for itself); whatever the loader throws;
   *   `signal.reason` (before any Redis call when already aborted). Redis being unavailable is not an error: the
   *   loader is called directly. A stored value the codec cannot decode is a miss (see the README); CoordisError
   *   `ERR_CACHE_DECODE` when the codec cannot decode what it just encoded.
   */
  async getOrSet<T>(key: string, loader: Loader<T>, options?: GetOrSetOptions): Promise<T> {
    this.#assertOpen();
    const k = validateName(key, "key");
    validate.func("loader", loader);
    const entry = parseGetOrSetOptions(options, this.#defaults);
    const { signal } = entry;
    if (signal?.aborted) throw signal.reason;
    const started = performance.now();
    const hit = this.#l1.fresh(k);
    let outcome: Outcome =
      hit !== undefined
        ? { data: hit.data, tier: "l1", result: "hit" }
        : await this.#filler.get(k, loader as Loader<unknown>, entry, signal);
    let value = this.#filler.decode(k, outcome.data as string);
    if (value instanceof Undecodable) {
      // An entry this codec cannot read (written with another codec, or by another version of the application): a
      // miss. It is dropped here and, while it still holds what was read, in Redis and every replica's L1; then it
      // is read or loaded again.
      await this.#filler.dropUndecodable(k, outcome.data as string);
      if (signal?.aborted) throw signal.reason;
      outcome = await this.#filler.get(k, loader as Loader<unknown>, entry, signal);
      value = this.#filler.decode(k, outcome.data as string);
      if (value instanceof Undecodable && outcome.result !== "miss") {
        // Another writer stored such a value again since (an older replica, mid-deploy): the loader answers, and
        // its value is kept in this replica's L1 only.
        const direct = this.#filler.loadDirect(k, loader as Loader<unknown>, entry);
        outcome = { data: await abortable(direct, signal), tier: "l2", result: "miss" };
        value = this.#filler.decode(k, outcome.data as string);
      }
      if (value instanceof Undecodable) {
        this.#invalidateLocal(k);
        throw undecodableError(this.namespace, k, value);
      }
    }
    this.#reportGet(started, outcome);
    return value as T;
  }

  /**
   * Returns the fresh cached value of `key`, or `undefined`. Never loads. When Redis is unavailable, answers from
   * L1 (a value it got at most `l1.ttlMs` ago, up to `staleMs` past its freshness) or `undefined`.
   * @throws InvalidArgumentError for a bad key
   */
  async get<T>(key: string): Promise<T | undefined> {
    this.#assertOpen();
    const k = validateName(key, "key");
    const started = performance.now();
    const hit = this.#l1.fresh(k);
    let outcome: Outcome;
    /** The decoded value, once decoded (an L2 hit is decoded before it enters L1). */
    let value: unknown;
    let decoded = false;
    if (hit !== undefined) {
      outcome = { data: hit.data, tier: "l1", result: "hit" };
    } else {
      const epoch = this.#l1.epoch;
      try {
        const read = await this.#l2.read(k, "", []);
        if (read.state === 1) {
          value = this.#filler.decode(k, read.data);
          decoded = true;
          // What this codec cannot read stays out of L1: every read of it is a miss until getOrSet replaces it.
          if (!(value instanceof Undecodable)) this.#l1.store(k, read.data, read.fresh, read.stale, read.tags, epoch);
          outcome = { data: read.data, tier: "l2", result: "hit" };
        } else {
          outcome = { data: undefined, tier: "l2", result: "miss" };
        }
      } catch (err) {
        if (!(err instanceof RedisUnavailableError)) throw err;
        const e = this.#l1.fallback(k);
        outcome =
          e !== undefined
            ? { data: e.data, tier: "l1", result: e.fresh ? "hit" : "stale", degraded: true }
            : { data: undefined, tier: "l1", result: "miss", degraded: true };
      }
    }
    if (outcome.data === undefined) {
      this.#reportGet(started, outcome);
      return undefined;
    }
    if (!decoded) value = this.#filler.decode(k, outcome.data);
    if (value instanceof Undecodable) {
      // A miss (getOrSet replaces such an entry); an L1 copy goes.
      if (outcome.tier === "l1") this.#invalidateLocal(k);
      this.#reportGet(started, { data: undefined, tier: outcome.tier, result: "miss" });
      return undefined;
    }
    this.#reportGet(started, outcome);
    return value as T;
  }

  /**
   * Stores `value` under `key` (fresh for `ttlMs`, then stale for `staleMs`) and evicts it from every replica's L1.
   * @throws InvalidArgumentError for a bad key, option (an unknown option key too) or a value the codec cannot
   *   encode (nothing is sent); RedisUnavailableError when Redis cannot be reached (the local L1 entry is dropped;
   *   a write that timed out may still be applied when a stalled Redis resumes, its invalidation following it), also
   *   when only the invalidation could not be published (the value may be in Redis, other replicas were not told)
   */
  async set(key: string, value: unknown, options?: EntryOptions): Promise<void> {
    this.#assertOpen();
    const k = validateName(key, "key");
    const entry = parseEntryOptions(options, this.#defaults);
    const data = encodeWith(this.#codec, value, "value");
    await this.#operation("set", k, async () => {
      this.#invalidateLocal(k);
      await this.#announced({ k }, async () => {
        // Taken before the tags' versions are read: an invalidation from then on (of a tag, here or elsewhere) may
        // have come after that read in Redis, leaving the value under an old version, which Redis reads as a miss.
        const epoch = this.#l1.epoch;
        const pairs = await this.#l2.tagVersions(entry);
        // Redis starts the entry's lifetime when the write runs, after this moment: L1's deadlines count from here.
        const sent = performance.now();
        const written = await this.#l2.write(k, data, entry, pairs, "");
        // Reads of this replica sent before the write landed (after the invalidation above, during the tag read) may
        // have read the old value, and their answers can come after this one: invalidated again, they cannot store
        // it over ours. Another change of this key or its tags since the epoch was taken: stored by nobody.
        const current = epoch === this.#l1.epoch;
        this.#invalidateLocal(k);
        this.#filler.wake(k); // calls here waiting for a load of k (our own message never reaches them)
        if (written !== 0 && current) {
          this.#l1.store(k, data, sent + entry.ttlMs, sent + entry.ttlMs + entry.staleMs, pairs, this.#l1.epoch);
        }
      });
    });
  }

  /**
   * Deletes `key` everywhere (Redis and every replica's L1). A load that started before the delete can no longer
   * write its outdated value back, however long it or its write takes (its fill token is deleted with the entry).
   * @returns whether a value existed in Redis
   * @throws InvalidArgumentError for a bad key; RedisUnavailableError when Redis cannot be reached (also when only
   *   the invalidation could not be published: other replicas were not told)
   */
  async delete(key: string): Promise<boolean> {
    this.#assertOpen();
    const k = validateName(key, "key");
    return this.#operation("delete", k, async () => {
      this.#invalidateLocal(k);
      return this.#announced({ k }, async () => {
        const existed = await this.#l2.delete(k);
        this.#invalidateLocal(k); // a read sent before the delete landed stores nothing
        this.#filler.wake(k);
        return existed;
      });
    });
  }

  /**
   * Invalidates every entry carrying `tag`, in Redis (O(1): the tag's version is deleted; entries recorded under it
   * become misses) and in every replica's L1.
   * @throws InvalidArgumentError for a bad tag; RedisUnavailableError when Redis cannot be reached (also when only
   *   the invalidation could not be published: other replicas were not told)
   */
  async invalidateTag(tag: string): Promise<void> {
    this.#assertOpen();
    const t = checkTag(tag, "tag");
    await this.#operation("invalidate-tag", t, async () => {
      this.#l1.evictTag(t);
      this.#filler.forgetAll();
      await this.#announced({ t }, async () => {
        await this.#l2.deleteTag(t);
        this.#l1.evictTag(t); // a read sent before the invalidation landed stores nothing
        this.#filler.forgetAll();
      });
    });
  }

  /**
   * Removes every entry and tag version of this namespace from Redis (SCAN + UNLINK on every master; keys written
   * concurrently may survive) and from every replica's L1. Meant for maintenance, not for the request path.
   * @throws RedisUnavailableError when Redis cannot be reached (also when only the invalidation could not be
   *   published: other replicas were not told); the error Redis answered a delete with (NOPERM without `+unlink`,
   *   MOVED or READONLY during a reshard or failover): the keys it names were not deleted
   */
  async clear(): Promise<void> {
    this.#assertOpen();
    await this.#operation("clear", undefined, async () => {
      this.#dropL1();
      // Reads during the walk can still find entries it has not reached yet: dropped again once it is done. Refused by
      // the open circuit breaker before its first UNLINK, it changed nothing: nothing to announce.
      let wrote = false;
      await this.#announced(
        { c: 1 },
        async () => {
          await this.#l2.clear(() => {
            wrote = true;
          });
          this.#dropL1();
        },
        { partial: () => wrote },
      );
    });
  }

  /** Current counters. */
  stats(): CacheStats {
    return {
      l1Entries: this.#l1.size,
      gaps: this.#gaps,
      busHealthy: this.#bus !== undefined && this.#busHealthy,
      circuit: this.#breaker.current,
      shortCircuited: this.#breaker.shortCircuited,
      redisCalls: this.#breaker.passed,
      loads: this.#filler.loads,
    };
  }

  /**
   * Stops the invalidation subscription and drops L1. The Redis client stays open (it is yours). Resolves once the
   * subscriber connection is closed: at once when Redis answers, within 1 s when it does not (an outage, a client
   * waiting to reconnect); nothing of the cache (socket, timer) is left afterwards. Calls made afterwards throw
   * ClosedError; a call already in flight finishes, and a change it makes is still published to the other replicas
   * (through your client, so keep it open until such calls are done). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closed = true;
    this.#l1.close();
    this.#filler.close();
    this.#closing = this.#bus?.close() ?? Promise.resolve();
    return this.#closing;
  }

  // ---------------------------------------------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError("Cache", { code: "ERR_CACHE_CLOSED" });
  }

  /** Runs a change, then announces it to the other replicas (see {@link announced}). */
  #announced<T>(body: BusMessageBody, change: () => Promise<T>, options: { partial?: () => boolean } = {}): Promise<T> {
    return announced(this.#announcer, body, change, options.partial ?? (() => false), () => this.#l2.fence(body));
  }

  #operation<T>(op: string, name: string | undefined, fn: () => Promise<T>): Promise<T> {
    return instrument(this.#observer, { primitive: "cache", op, name, attributes: this.#attributes }, fn);
  }

  #reportGet(started: number, outcome: Outcome): void {
    reportGet(this.#observer, this.namespace, started, outcome);
  }

  /**
   * Forgets everything local about `k`: its L1 entry, and its in-flight load (callers already waiting keep it, but a
   * call made after the invalidation must not join a load that may have read the old value).
   */
  #invalidateLocal(k: string): void {
    this.#filler.forget(k);
  }

  #dropL1(): void {
    this.#filler.forgetAll();
    this.#l1.drop();
  }

  #onBusMessage(msg: BusMessage): void {
    if (msg.c === 1) this.#dropL1();
    if (typeof msg.t === "string") {
      this.#l1.evictTag(msg.t);
      this.#filler.forgetAll();
    }
    if (typeof msg.k === "string") {
      this.#invalidateLocal(msg.k);
      this.#filler.wake(msg.k);
    }
    notifyEvent(this.#observer, {
      primitive: "cache",
      type: "invalidation",
      attributes: { namespace: this.namespace, kind: msg.c === 1 ? "clear" : msg.t !== undefined ? "tag" : "key" },
    });
  }

  #onGap(reason: GapReason, flush: boolean): void {
    this.#gaps++;
    if (flush) this.#dropL1();
    else this.#l1.bump();
    notifyEvent(this.#observer, { primitive: "cache", type: "gap", attributes: { namespace: this.namespace, reason } });
  }

  #circuitChanged(state: CircuitState, error?: Error): void {
    if (state === "half-open") return;
    notifyEvent(this.#observer, {
      primitive: "cache",
      type: state === "open" ? "degraded" : "recovered",
      attributes: { namespace: this.namespace },
      ...(error === undefined ? {} : { error }),
    });
  }
}
