import {
  type CoordisObserver,
  disconnectWithin,
  duplicateOwn,
  notifyEvent,
  type RedisClient,
  RedisUnavailableError,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { ResultTimeoutError } from "./errors.js";
import type { PartitionKeys } from "./keys.js";

/** How often a waiting `result()` looks at its job anyway, in case an announcement was missed (a reconnect). */
export const RESULT_RECHECK_MS = 5_000;

/** One `result()` call waiting. `check` resolves true once it settled the call. */
interface Waiter {
  readonly check: () => Promise<boolean>;
}

/**
 * Waits for jobs to finish without polling Redis in a loop: the finish, fetch and cancel scripts announce the ids they
 * completed, buried or cancelled on the partition's sharded pub/sub channel (`SPUBLISH`, one message per script
 * call); a waiter looks at its job when its id is announced, when the subscription is restored after a reconnect,
 * and every {@link RESULT_RECHECK_MS} as a bounded fallback. One subscriber connection per Queue, opened on the first
 * wait.
 */
export class ResultWaiters {
  readonly #redis: RedisClient;
  readonly #keys: readonly PartitionKeys[];
  readonly #observer: CoordisObserver | undefined;
  readonly #name: string;
  #conn: Redis | Cluster | undefined;
  readonly #subscribed = new Map<string, Promise<unknown>>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  #closed = false;

  constructor(redis: RedisClient, keys: readonly PartitionKeys[], name: string, observer: CoordisObserver | undefined) {
    this.#redis = redis;
    this.#keys = keys;
    this.#name = name;
    this.#observer = observer;
  }

  /**
   * Settles through `check` (which reads the job and resolves true when it is final, having settled the caller):
   * subscribes first, then checks, then checks again on every announcement of `id`, on reconnects, every
   * {@link RESULT_RECHECK_MS}, and rejects with ResultTimeoutError after `timeoutMs` (undefined: no limit), counted from
   * the call: a subscription Redis does not answer (unreachable) does not hold the timeout back. A failed first look
   * rejects; once one succeeded, a look that cannot reach Redis is reported (event `result-error`) and the wait goes on.
   */
  async wait(
    id: string,
    partition: number,
    timeoutMs: number | undefined,
    check: () => Promise<boolean>,
    reject: (err: Error) => void,
  ): Promise<void> {
    let done = false;
    let busy = false;
    let again = false;
    /** Whether a look at the job succeeded: later looks that cannot reach Redis do not end the wait. */
    let looked = false;
    let recheck: NodeJS.Timeout | undefined;
    const finish = () => {
      done = true;
      clearInterval(recheck);
      clearTimeout(timeout);
      const s = this.#waiters.get(id);
      s?.delete(waiter);
      if (s?.size === 0) this.#waiters.delete(id);
    };
    const waiter: Waiter = {
      check: async () => {
        if (done) return true;
        if (busy) {
          again = true;
          return false;
        }
        busy = true;
        try {
          // Announcements that came during a look (again) get a look of their own, also after a failed one.
          do {
            again = false;
            try {
              if (await check()) finish();
              looked = true;
            } catch (err) {
              if (looked && err instanceof RedisUnavailableError) {
                // A blip: the next announcement, reconnect or periodic look tries again, until timeoutMs.
                notifyEvent(this.#observer, { primitive: "queue", type: "result-error", name: this.#name, error: err });
              } else {
                finish();
                reject(err instanceof Error ? err : new Error(String(err)));
              }
            }
          } while (again && !done);
        } finally {
          busy = false;
        }
        return done;
      },
    };
    const timeout =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            if (done) return;
            finish();
            reject(new ResultTimeoutError(id, timeoutMs));
          }, timeoutMs);
    // After close() no subscriber connection is opened again: the wait relies on its periodic looks (the first one at
    // once), as the calls already waiting at close() do.
    if (!this.#closed) {
      try {
        await this.#subscribe((this.#keys[partition] as PartitionKeys).channel);
      } catch (err) {
        if (done) return;
        // Closed while the subscription was on its way (its connection was closed under it): a waiting call, it goes
        // on with its periodic looks.
        if (!this.#closed) {
          finish();
          throw err;
        }
      }
    }
    if (done) return;
    let set = this.#waiters.get(id);
    if (set === undefined) {
      set = new Set();
      this.#waiters.set(id, set);
    }
    set.add(waiter);
    recheck = setInterval(() => void waiter.check(), RESULT_RECHECK_MS);
    await waiter.check();
  }

  /**
   * Closes the subscriber connection, within core's `disconnectWithin` bound (1 s) even when Redis cannot be reached.
   * Waiting calls keep their timers (and fall back to their periodic checks); later calls wait by those checks alone.
   */
  close(): Promise<void> {
    this.#closed = true;
    const conn = this.#conn;
    this.#conn = undefined;
    return conn === undefined ? Promise.resolve() : disconnectWithin(conn);
  }

  #subscribe(channel: string): Promise<unknown> {
    let pending = this.#subscribed.get(channel);
    if (pending === undefined) {
      const conn = this.#connection();
      pending = conn.ssubscribe(channel).catch((err: unknown) => {
        this.#subscribed.delete(channel);
        throw err;
      });
      this.#subscribed.set(channel, pending);
    }
    return pending;
  }

  #connection(): Redis | Cluster {
    if (this.#conn !== undefined) return this.#conn;
    const redis = this.#redis;
    const conn = duplicateOwn(redis, {}, { shardedSubscribers: true });
    conn.on("error", (error: Error) => {
      notifyEvent(this.#observer, { primitive: "queue", type: "connection-error", name: this.#name, error });
    });
    // ioredis restores subscriptions after a reconnect; anything announced meanwhile was missed: look again.
    let connectedOnce = false;
    const restored = () => {
      if (!connectedOnce) {
        connectedOnce = true;
        return;
      }
      for (const set of this.#waiters.values()) for (const w of set) void w.check();
    };
    conn.on("ready", restored);
    conn.on("subscribersReady", restored);
    conn.on("smessage", (_channel: string, message: string) => this.#announced(message));
    this.#conn = conn;
    if (this.#closed) void disconnectWithin(conn);
    return conn;
  }

  #announced(message: string): void {
    for (const line of message.split("\n")) {
      const set = this.#waiters.get(line.slice(2));
      if (set !== undefined) for (const w of set) void w.check();
    }
  }
}
