import {
  type CoordisObserver,
  instrument,
  notifyEvent,
  RedisUnavailableError,
  type ReportAttributes,
  reportOperation,
  ScriptError,
} from "@coordis/core";
import { type CacheCodec, decodeWith, encodeWith, Undecodable } from "./codec.js";
import type { L1 } from "./l1.js";
import { abortable, assertNotLoading, detached, runLoading } from "./load-scope.js";
import type { EntrySettings } from "./options.js";
import { fillToken, type L2Read, type RedisTier } from "./redis-tier.js";

/** A loader: computes the value of a missing key. Its result must be encodable by the cache's codec. */
export type Loader<T> = () => Promise<T> | T;

/** Where a read was answered. */
export type Tier = "l1" | "l2";
/** What a read found. */
export type Result = "hit" | "miss" | "stale";

/** How a read ended: the encoded value (or none) and what the `get` report says. */
export interface Outcome {
  readonly data: string | undefined;
  readonly tier: Tier;
  readonly result: Result;
  readonly degraded?: boolean;
}

/** Reports a `get` operation (of `get` or `getOrSet`) with what it found. */
export function reportGet(
  observer: CoordisObserver | undefined,
  namespace: string,
  started: number,
  outcome: Outcome,
): void {
  const attributes = { namespace, tier: outcome.tier, result: outcome.result };
  reportOperation(
    observer,
    { primitive: "cache", op: "get", attributes: outcome.degraded ? { ...attributes, degraded: true } : attributes },
    started,
    outcome.result,
  );
}

/** Redis is full and does not evict (`noeviction`): nothing is stored, not even a lock; the loader answers. */
function outOfMemory(err: unknown): boolean {
  return err instanceof ScriptError && err.redisMessage.startsWith("OOM ");
}

/**
 * A load of one key in progress in this process, shared by every call that joined it. `callers` counts the calls
 * still waiting for it (one without a signal never leaves); once it drops to 0 before the loader started, the load is
 * dropped: no further Redis call, no loader call (its fill lock, if it took one, is given back).
 */
interface Flight {
  readonly outcome: Promise<Outcome>;
  readonly started: number;
  readonly state: FlightState;
}

interface FlightState {
  callers: number;
  committed: boolean; // the loader is called: the load runs to its end and fills the cache, callers or not
  dropped: boolean;
  wake: (() => void) | undefined; // ends the flight's current wait for another replica's load
}

const LOADED = "loader result"; // the argument a loader's result is named by in errors
/** What a dropped flight settles with (nobody is waiting for it any more). */
const DROPPED = new Error("every caller of this load aborted");

/** The loader is about to run for `flight`: dropped, it throws {@link DROPPED} after `giveBack`; else it commits. */
function commit(flight: FlightState | undefined, giveBack?: () => void): void {
  if (flight === undefined) return;
  if (flight.dropped) {
    giveBack?.();
    throw DROPPED;
  }
  flight.committed = true;
}

/** What the filler needs from the cache it works for. */
export interface FillContext {
  readonly l1: L1;
  readonly l2: RedisTier;
  readonly codec: CacheCodec;
  readonly observer: CoordisObserver | undefined;
  readonly namespace: string;
  /** `{ namespace }`, the attributes of every report. */
  readonly attributes: ReportAttributes;
  readonly lockTtlMs: number;
  readonly lockWaitMs: number;
  readonly detectLoaderCycles: boolean; // loaders run in a tracked context; a getOrSet of a loading key is refused
  /** Publishes an invalidation of `k` (never throws). */
  publish(k: string): Promise<unknown>;
  isClosed(): boolean;
}

/**
 * Stampede protection and the fill of a missing key: concurrent misses of one key in one process share one load
 * (a flight); across replicas one caller takes the fill lock in Redis and loads while the others wait (woken by the
 * bus, polling with backoff) for at most `lock.waitMs`, then load themselves. A stale entry is served while one
 * caller refreshes it in the background. When Redis is unavailable, L1 (what it got within `l1.ttlMs`, up to its
 * stale deadline) or the loader answers.
 */
export class Filler {
  readonly #c: FillContext;
  /** The load in progress per key, and when it started (`performance.now()`). */
  readonly #flights = new Map<string, Flight>();
  /** The background refresh in progress per key, and when it started (`performance.now()`). */
  readonly #refreshing = new Map<string, { readonly started: number }>();
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Per key with a call in its fill loop: how many wakes it got (one during a read makes the call read again). */
  readonly #wakes = new Map<string, { count: number; calls: number }>();
  #loads = 0;

  constructor(context: FillContext) {
    this.#c = context;
  }

  /** Loader calls made so far. */
  get loads(): number {
    return this.#loads;
  }

  /**
   * The outcome of `k` after an L1 miss, joining the load already in flight in this process if there is one, unless
   * it started `lock.ttlMs` ago or more: its fill lock has expired, other replicas have given up on it, and so does
   * this one (a loader that never returns would otherwise hold every later call of the key in this process).
   * `signal` aborting rejects this call at once, the load going on for the others (see {@link Flight}).
   * @throws InvalidArgumentError when the loader of `k` (of this cache) makes this call: it would wait for itself
   */
  get(k: string, loader: Loader<unknown>, entry: EntrySettings, signal?: AbortSignal): Promise<Outcome> {
    if (this.#c.detectLoaderCycles) assertNotLoading(this, this.#c.namespace, k);
    const now = performance.now();
    let flight = this.#flights.get(k);
    if (flight === undefined || now - flight.started >= this.#c.lockTtlMs) {
      const state: FlightState = { callers: 0, committed: false, dropped: false, wake: undefined };
      const mine = { outcome: this.#fill(k, loader, entry, state), started: now, state };
      this.#flights.set(k, mine);
      mine.outcome.then(
        () => this.#forgetFlight(k, mine),
        () => this.#forgetFlight(k, mine),
      );
      flight = mine;
    }
    const joined = flight;
    const state = joined.state;
    state.callers++;
    if (signal === undefined) return joined.outcome;
    return abortable(joined.outcome, signal, () => {
      if (--state.callers > 0 || state.committed) return;
      // Nobody waits for it any more and its loader has not started: dropped (a later call starts afresh).
      state.dropped = true;
      this.#forgetFlight(k, joined);
      state.wake?.();
    });
  }

  #forgetFlight(k: string, flight: Flight): void {
    if (this.#flights.get(k) === flight) this.#flights.delete(k);
  }

  /** The value `data` (read for `k`) decodes to, or an Undecodable (reported as an `undecodable` event). */
  decode(k: string, data: string): unknown {
    const c = this.#c;
    const value = decodeWith(c.codec, data);
    if (value instanceof Undecodable) {
      const event = { primitive: "cache", type: "undecodable", name: k, attributes: c.attributes };
      notifyEvent(c.observer, { ...event, error: value.error });
    }
    return value;
  }

  /**
   * Drops an entry the codec cannot read (`data`, as read): from this replica's L1 and flights, and from Redis and
   * every replica's L1 only while Redis still holds that value (a value written since, maybe by a load another replica
   * holds the fill lock for, is kept; of several callers that read it, one deletes and announces it). When Redis
   * cannot be reached, the next read goes the degraded way (the loader answers): a failure here is not the caller's.
   */
  async dropUndecodable(k: string, data: string): Promise<void> {
    this.forget(k);
    if (await this.#c.l2.deleteIfValue(k, data).catch(() => false)) await this.#c.publish(k);
  }

  /**
   * `k` was invalidated: its L1 entry goes, and a call made from now on must not join a load that may have read the
   * old value (callers already waiting keep it).
   */
  forget(k: string): void {
    this.#c.l1.invalidate(k);
    this.#flights.delete(k);
  }

  /** Every key may have been invalidated. */
  forgetAll(): void {
    this.#flights.clear();
  }

  /** Wakes the callers waiting for another replica's load of `k` (its result may be there now). */
  wake(k: string): void {
    const woken = this.#wakes.get(k);
    if (woken !== undefined) woken.count++;
    const set = this.#waiters.get(k);
    if (set !== undefined) for (const wake of set) wake();
  }

  /** Wakes every waiting caller (each then reads once more and loads itself). */
  close(): void {
    for (const set of this.#waiters.values()) for (const wake of set) wake();
    this.#waiters.clear();
  }

  /** The shared part of getOrSet after an L1 miss: L2, then the fill lock, waiting or loading. */
  async #fill(k: string, loader: Loader<unknown>, entry: EntrySettings, flight: FlightState): Promise<Outcome> {
    const woken = this.#wakes.get(k) ?? { count: 0, calls: 0 };
    this.#wakes.set(k, woken);
    woken.calls++;
    try {
      return await this.#fillLoop(k, loader, entry, woken, flight);
    } finally {
      if (--woken.calls === 0 && this.#wakes.get(k) === woken) this.#wakes.delete(k);
    }
  }

  /**
   * {@link #fill}'s loop; `woken` counts the wakes of `k` (see {@link #wakes}). Each step first checks that somebody
   * still waits for it (see {@link Flight}); the loader once started runs to its end.
   */
  async #fillLoop(
    k: string,
    loader: Loader<unknown>,
    entry: EntrySettings,
    woken: { readonly count: number },
    flight: FlightState,
  ): Promise<Outcome> {
    const c = this.#c;
    // The lock token is also our fill token: what we load is written back only while it holds the lock (or, after
    // the wait timed out, is registered in the entry), i.e. while nobody set, deleted or filled the key meanwhile.
    const lockToken = fillToken();
    const deadline = performance.now() + c.lockWaitMs;
    let delay = 5;
    for (;;) {
      if (flight.dropped) throw DROPPED;
      // The last read, once the wait is over: take the lock if it is free now, else register our fill token.
      const last = performance.now() >= deadline || c.isClosed();
      const wakes = woken.count;
      const epoch = c.l1.epoch;
      let read: L2Read;
      const sent = performance.now(); // before Redis takes the lock this read may take
      try {
        read = await c.l2.read(k, lockToken, entry.tags, last);
      } catch (err) {
        // Full: no lock can be taken, nothing stored; the loader answers (kept in L1, which the bus still guards).
        if (!outOfMemory(err) && !(err instanceof RedisUnavailableError)) throw err;
        commit(flight);
        if (outOfMemory(err)) return { data: await this.loadDirect(k, loader, entry), tier: "l2", result: "miss" };
        return this.#degraded(k, loader, entry);
      }
      if (read.state === 1) {
        c.l1.store(k, read.data, read.fresh, read.stale, read.tags, epoch);
        return { data: read.data, tier: "l2", result: "hit" };
      }
      if (read.state === 2) {
        // Dropped meanwhile: no refresh for nobody, the lock given back (the next stale read takes it).
        if (read.locked && flight.dropped) c.l2.unlock(k, lockToken);
        else if (read.locked) this.#refresh(k, loader, entry, lockToken, sent);
        return { data: read.data, tier: "l2", result: "stale" };
      }
      if (flight.dropped) {
        if (read.locked) c.l2.unlock(k, lockToken); // taken for nobody: given back
        throw DROPPED;
      }
      if (read.locked || last) {
        if (!read.locked) {
          notifyEvent(c.observer, {
            primitive: "cache",
            type: "lock-wait-timeout",
            name: k,
            attributes: { namespace: c.namespace, waitMs: c.lockWaitMs },
          });
        }
        return { data: await this.#loadAndStore(k, loader, entry, lockToken, flight), tier: "l2", result: "miss" };
      }
      // Another caller (maybe another replica) is loading: wait for its result, woken by the bus or by polling
      // (at once when a wake came while the read was out).
      if (woken.count !== wakes) continue;
      await this.#waitFor(k, Math.max(0, Math.min(delay, deadline - performance.now())), flight);
      delay = Math.min(delay * 2, 200);
    }
  }

  #waitFor(k: string, ms: number, flight: FlightState): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(k);
      if (set === undefined) {
        set = new Set();
        this.#waiters.set(k, set);
      }
      const owner = set;
      const done = () => {
        clearTimeout(timer);
        owner.delete(done);
        if (owner.size === 0 && this.#waiters.get(k) === owner) this.#waiters.delete(k);
        flight.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      owner.add(done);
      flight.wake = done;
    });
  }

  /**
   * Loads and writes the value back. The write is conditional on `fill`, the token that holds the fill lock (or was
   * registered in the entry) since the last read: Redis refuses it when anybody set, deleted or filled the key
   * since that read, or when more than the lock TTL passed since it (server time, so a slow loader, a slow network
   * and a stalled Redis all count). `flight` (none for a refresh) dropped before the loader starts: the lock goes back.
   */
  async #loadAndStore(k: string, loader: Loader<unknown>, entry: EntrySettings, fill: string, flight?: FlightState) {
    const c = this.#c;
    const epoch = c.l1.epoch; // before the tags' versions are read (Cache.set): a later invalidation keeps it out of L1
    let pairs: Awaited<ReturnType<RedisTier["tagVersions"]>>;
    try {
      pairs = await c.l2.tagVersions(entry);
    } catch (err) {
      // Redis filled up since the read that took the lock: the loader answers, and the lock is given back.
      if (outOfMemory(err)) c.l2.unlock(k, fill);
      else if (!(err instanceof RedisUnavailableError)) throw err;
      commit(flight, () => c.l2.unlock(k, fill)); // a lock taken for nobody is given back
      return this.loadDirect(k, loader, entry);
    }
    commit(flight, () => c.l2.unlock(k, fill));
    const t0 = performance.now();
    let data: string;
    try {
      data = await this.#runLoader(k, loader);
    } catch (err) {
      c.l2.unlock(k, fill);
      throw err;
    }
    // The script would refuse this write anyway (its deadline counts from before the load): don't send the value.
    if (performance.now() - t0 >= c.lockTtlMs) {
      c.l2.unlock(k, fill);
      return data;
    }
    try {
      // Redis starts the entry's lifetime when the write runs, after this moment: counted from here, L1's deadlines
      // never outlast Redis', however long the reply takes.
      const sent = performance.now();
      const written = await c.l2.write(k, data, entry, pairs, fill);
      if (written !== 0) {
        // As after a set: reads of this replica that found the value this write replaced may answer after it (their
        // tags still to read): evicted again, they cannot store it over the new one. An invalidation since the epoch
        // was taken: the value is stored by nobody.
        const current = epoch === c.l1.epoch;
        this.forget(k);
        this.wake(k); // calls of this instance waiting for this load (its message does not reach them)
        if (current) c.l1.store(k, data, sent + entry.ttlMs, sent + entry.ttlMs + entry.staleMs, pairs, c.l1.epoch);
        // Wakes the callers waiting on other replicas and evicts older L1 copies there. A load nobody waited for, of
        // a key Redis had no entry for, has nobody to tell (older copies were evicted, expired, or are within l1.ttlMs).
        if (written === 2) await c.publish(k);
      }
    } catch (err) {
      if (outOfMemory(err)) {
        // Full since the read: the value is the caller's answer, kept in L1 as a load without Redis is.
        c.l2.unlock(k, fill);
        this.#keepLoaded(k, data, entry, epoch);
      } else if (!(err instanceof RedisUnavailableError)) {
        throw err;
      }
    }
    return data;
  }

  #runLoader(k: string, loader: Loader<unknown>): Promise<string> {
    const c = this.#c;
    this.#loads++;
    return instrument(
      c.observer,
      { primitive: "cache", op: "load", name: k, attributes: c.attributes },
      // detectLoaderCycles: the loader's async context knows it loads k (a getOrSet of k it makes is refused).
      async () => encodeWith(c.codec, await (c.detectLoaderCycles ? runLoading(this, k, loader) : loader()), LOADED),
      { errors: "keep" },
    );
  }

  /**
   * Background refresh of a stale entry (this instance holds the fill lock). A refresh of the key running here for less
   * than `lock.ttlMs` (timed from the send of the read that took its lock, so that it is that old here once Redis has
   * expired the lock) keeps it, the new lock given back; an older one can no longer write and may never return (a hung
   * loader): a new one starts, as a call made that late does not join a load in flight (see {@link get}).
   */
  #refresh(k: string, loader: Loader<unknown>, entry: EntrySettings, lockToken: string, sent: number): void {
    const running = this.#refreshing.get(k);
    if (running !== undefined && performance.now() - running.started < this.#c.lockTtlMs) {
      // Already loading it here (under a lock that ended early: deleted, evicted). No second load; give the new lock
      // back, or no replica could refresh the key until it expires.
      this.#c.l2.unlock(k, lockToken);
      return;
    }
    const mine = { started: sent };
    this.#refreshing.set(k, mine);
    const load = () => this.#loadAndStore(k, loader, entry, lockToken);
    // Nobody waits for a refresh, not even a loader whose stale read started it: it runs outside of that loader's call.
    (this.#c.detectLoaderCycles ? detached(load) : load())
      .catch((error: unknown) => {
        notifyEvent(this.#c.observer, {
          primitive: "cache",
          type: "refresh-error",
          name: k,
          attributes: { namespace: this.#c.namespace },
          ...(error instanceof Error ? { error } : {}),
        });
      })
      .finally(() => {
        if (this.#refreshing.get(k) === mine) this.#refreshing.delete(k);
      });
  }

  /** Redis is unavailable: serve L1 (what it got within `l1.ttlMs`, up to its stale deadline) or call the loader. */
  async #degraded(k: string, loader: Loader<unknown>, entry: EntrySettings): Promise<Outcome> {
    const e = this.#c.l1.fallback(k);
    if (e !== undefined) return { data: e.data, tier: "l1", result: e.fresh ? "hit" : "stale", degraded: true };
    return { data: await this.loadDirect(k, loader, entry), tier: "l2", result: "miss", degraded: true };
  }

  /**
   * Calls the loader without Redis and keeps the result in L1 for at most `l1.ttlMs`, and no longer than the entry's
   * `ttlMs` (it is fresh for that long, as it would be in Redis).
   */
  async loadDirect(k: string, loader: Loader<unknown>, entry: EntrySettings): Promise<string> {
    const epoch = this.#c.l1.epoch;
    const data = await this.#runLoader(k, loader);
    this.#keepLoaded(k, data, entry, epoch);
    return data;
  }

  /** Keeps a value Redis did not store in L1 for at most `l1.ttlMs`, and no longer than the entry's `ttlMs`. */
  #keepLoaded(k: string, data: string, entry: EntrySettings, epoch: number): void {
    const until = performance.now() + Math.min(entry.ttlMs, this.#c.l1.ttlMs);
    // Kept for at most l1.ttlMs: invalidations cannot reach us while Redis is down. Its tags go with it (no version:
    // none was read), so an invalidateTag this instance hears of (a full Redis still carries them) evicts it.
    const tags = entry.tags.map((t) => [t, ""] as const);
    this.#c.l1.store(k, data, until, until, tags, epoch);
  }
}
