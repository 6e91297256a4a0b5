import { performance } from "node:perf_hooks";
import {
  type CoordisError,
  type CoordisObserver,
  DurabilityError,
  isClosed,
  type OperationSite,
  onAbort,
  type RedisClient,
  RedisUnavailableError,
  reportOperation,
  toCoordisError,
  undoUntilAnswered,
  validate,
} from "@coordis/core";
import { LockBusyError } from "./errors.js";
import { driftMs, type Lease, type LeaseBackend, LeaseImpl } from "./lease.js";
import { type AcquireOptions, parseAcquire, type UsingOptions } from "./options.js";

/** Shortest and longest pause between two attempts on a busy lock, ms (jittered, doubling). */
const MIN_RETRY_DELAY_MS = 5;
const MAX_RETRY_DELAY_MS = 100;

/** What one acquisition attempt found. Internal. */
export type AttemptResult =
  /** `giveBack` releases the grant when nobody is to hold it after all (its acquire was aborted meanwhile). */
  | { kind: "acquired"; lease: LeaseImpl; giveBack: () => Promise<unknown> }
  /** Held by someone else; `retryAfterMs` is a hint (the holder's remaining TTL), 0 when unknown. */
  | { kind: "busy"; retryAfterMs: number }
  /** Won, but the lease's validity was already gone on return: it was released and not handed out. */
  | { kind: "invalid" }
  /**
   * Redlock: too many masters failed to answer for a quorum; any lock: a grant not confirmed durable (released).
   * Retried until `waitMs`, then thrown.
   */
  | { kind: "unavailable"; error: CoordisError }
  /**
   * Mutex, Semaphore: Redis gave no answer (connection lost, command timeout, reconnecting). Retried with the busy
   * backoff until `waitMs`, then a RedisUnavailableError saying so (with `waitMs: 0`, `tryAcquire()`: `error` itself).
   */
  | { kind: "unanswered"; error: RedisUnavailableError };

/**
 * A lease won for a caller that no longer takes it (its acquire was aborted): never handed out, given back as a late
 * grant is (see `giveBack`: sent again while Redis does not answer it).
 */
function abandon(won: Extract<AttemptResult, { kind: "acquired" }>): void {
  won.lease.discard();
  won.giveBack().catch(() => false);
}

function abortReason(signal: AbortSignal): unknown {
  // Whatever `abort(reason)` was given, null included (abort() without one sets a DOMException itself).
  return signal.reason;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const timer = setTimeout(() => {
      stop?.();
      resolve();
    }, ms);
    const stop =
      signal &&
      onAbort(signal, () => {
        clearTimeout(timer);
        reject(abortReason(signal));
      });
  });
}

/**
 * The acquire / tryAcquire / using surface shared by {@link Mutex}, {@link Semaphore} and {@link Redlock}:
 * each subclass supplies one acquisition attempt; waiting, abort handling, validity, auto-extension and
 * observer reports live here. Not reentrant.
 */
export abstract class LockBase {
  /** The lock's name (its hash tag in Redis). */
  readonly name: string;
  /** Lease time to live, ms. */
  readonly ttlMs: number;
  /** Clock-drift factor used in the validity check. */
  readonly driftFactor: number;
  protected readonly observer: CoordisObserver | undefined;
  readonly #kind: string;
  /** `durability.timeoutMs`, when set: a lease's `extend(ttlMs)` must stay above it, as the constructor's `ttlMs`. */
  readonly #durabilityTimeoutMs: number | undefined;

  protected constructor(
    kind: string,
    name: string,
    ttlMs: number,
    driftFactor: number,
    observer: CoordisObserver | undefined,
    durabilityTimeoutMs?: number,
  ) {
    this.#kind = kind;
    this.#durabilityTimeoutMs = durabilityTimeoutMs;
    this.name = name;
    this.ttlMs = ttlMs;
    this.driftFactor = driftFactor;
    this.observer = observer;
  }

  /** One acquisition attempt with a fresh token (one round trip per node). */
  protected abstract attempt(): Promise<AttemptResult>;

  /**
   * Why an acquire gave up whose last attempt won a grant that came back after its validity (given back, not handed
   * out), and what to change. The lock was not found held: this is a slow answer, not a busy lock.
   */
  protected lateGrantMessage(): string {
    return (
      `Lock "${this.name}": the last grant came back after its validity (ttlMs ${this.ttlMs} ms less ` +
      `${driftMs(this.ttlMs, this.driftFactor)} ms for clock drift) and was given back, not handed out: Redis ` +
      "answered too slowly for this ttlMs (a stalled server, a blocked event loop). Raise ttlMs or find what " +
      "delays the answers."
    );
  }

  /**
   * Runs one acquisition request on `redis`. When it fails without an answer (timeout, dropped connection) the
   * outcome is unknown: the request may still reach Redis (late, behind a stall or a slow link, or re-sent by a client
   * with ioredis' `autoResendUnfulfilledCommands`) and take the
   * lock for a full TTL with a token nobody holds. `undo`, a compare-and-delete of that token, is therefore queued
   * behind it on the same connection, in the background, and sent again until Redis answers it (for at most the TTL:
   * an outage longer than the command timeout makes one attempt fail too), so such a phantom lease is freed as soon as
   * Redis answers again. It goes as EVAL with the script's source (`runScriptSource`): an EVALSHA of a script the
   * server has not cached (after a restart, before any release) would need its NOSCRIPT answer in time, which an
   * outage prevents.
   */
  protected request<R>(redis: RedisClient, undo: () => Promise<unknown>, send: () => Promise<R>): Promise<R> {
    return send().catch((err: unknown) => {
      // A DurabilityError here is `aof: true` on a server without WAITAOF: refused before anything was sent.
      if (!(err instanceof DurabilityError)) undoUntilAnswered(redis, undo, this.ttlMs, undefined, this.#undoReport());
      throw err;
    });
  }

  /**
   * What an attempt whose request failed (see {@link request}) found: Redis gave no answer (`RedisUnavailableError`:
   * a connection lost, a command timeout, a client reconnecting, a server loading or failing over) is an
   * `"unanswered"` attempt, retried until `waitMs`; anything else is thrown and ends the acquire at once: a refusal
   * (`ScriptError`: NOPERM, OOM) would be refused again, and a client the application closed never answers again.
   * The unanswered attempt's own grant, if Redis ran it, is freed by the undo {@link request} queued behind it; the
   * retry uses a new token, so that undo can never delete a lease the retry wins.
   */
  protected unanswered(redis: RedisClient, err: unknown): AttemptResult {
    const error = toCoordisError(err);
    if (error instanceof RedisUnavailableError && !isClosed(redis)) return { kind: "unanswered", error };
    throw error;
  }

  /**
   * A won attempt whose durability was not confirmed in time: the grant may be missing on the replicas, so a
   * failover could hand the lock (and a fence no higher) to someone else while this holder believed it held. It is
   * given back (see {@link giveBack}: sent again while Redis does not answer) and never handed out; the attempt counts
   * as unavailable (retried until `waitMs`, then `DurabilityError`). The fence it consumed is skipped.
   */
  protected async undurable(error: CoordisError, giveBack: () => Promise<unknown>): Promise<AttemptResult> {
    await giveBack().catch(() => false);
    return { kind: "unavailable", error };
  }

  /**
   * Gives back a grant nobody will hold (won too late, not confirmed durable, won for an acquire aborted meanwhile):
   * `release`, a compare-and-delete of
   * its token, then `undo`, the same as EVAL of the script's source, sent again while Redis does not answer it
   * (`undoUntilAnswered`, for up to `ttlMs`): one attempt lost in a blip (a dropped connection, a command timeout)
   * would leave the lock held by nobody for up to its whole time to live. Settles as the first attempt does.
   */
  protected giveBack(
    redis: RedisClient,
    release: () => Promise<unknown>,
    undo: () => Promise<unknown>,
  ): Promise<unknown> {
    const first = release();
    undoUntilAnswered(redis, undo, this.ttlMs, first, this.#undoReport());
    return first;
  }

  /**
   * Builds the lease of a won attempt, or gives it back with `giveBack` when its validity (`start + ttl − elapsed −
   * drift`) is already gone (see {@link giveBack}; a Redlock's follows the round's unanswered acquires). `start` is
   * `performance.now()` taken before the request was sent.
   */
  protected async settle(
    token: string,
    fence: number,
    start: number,
    backend: LeaseBackend,
    giveBack: () => Promise<unknown>,
  ): Promise<AttemptResult> {
    const deadline = start + this.ttlMs - driftMs(this.ttlMs, this.driftFactor);
    if (performance.now() >= deadline) {
      await giveBack().catch(() => false);
      return { kind: "invalid" };
    }
    const lease = new LeaseImpl({
      kind: this.#kind,
      name: this.name,
      token,
      fence,
      ttlMs: this.ttlMs,
      driftFactor: this.driftFactor,
      deadline,
      backend,
      observer: this.observer,
      ...(this.#durabilityTimeoutMs === undefined ? {} : { durabilityTimeoutMs: this.#durabilityTimeoutMs }),
    });
    return { kind: "acquired", lease, giveBack };
  }

  /**
   * One attempt, no waiting.
   * @returns the lease, or null when the lock is held by someone else (or the lease was already invalid on return)
   * @throws RedisUnavailableError when Redis (or, for Redlock, a quorum of masters) cannot be reached
   */
  async tryAcquire(): Promise<Lease | null> {
    // Reported through #report, which builds nothing without an observer (instrument() would take a site object,
    // an options object and two closures per call, and one more async frame: measurable on a Redlock cycle).
    const start = performance.now();
    let result: AttemptResult;
    try {
      result = await this.attempt();
    } catch (err) {
      const error = toCoordisError(err);
      this.#report("error", start, 1, error);
      throw error;
    }
    if (result.kind === "acquired") {
      this.#report("acquired", start, 1);
      return result.lease;
    }
    if (result.kind === "unavailable" || result.kind === "unanswered") {
      this.#report("error", start, 1, result.error);
      throw result.error;
    }
    this.#report("busy", start, 1);
    return null;
  }

  /**
   * Acquires the lock, waiting up to `waitMs` (default 10 s) with jittered exponential backoff while it is busy or
   * while Redis (a quorum, for Redlock) does not answer: an attempt lost to a dropped connection, a command timeout or
   * a client reconnecting is tried again, so a short outage (a restart, a failover) only delays the lease.
   * @throws LockBusyError when it stayed busy for `waitMs` (a single attempt when `waitMs` is 0)
   * @throws `signal.reason` when `signal` aborts (a lease won in flight is released, never handed out)
   * @throws RedisUnavailableError when Redis (a quorum, for Redlock) did not answer until `waitMs` ran out (with
   *   `waitMs` 0, the one attempt's error), when the client was closed, or when the last attempt's grant came back
   *   after its validity (given back: Redis answered too slowly for `ttlMs`)
   * @throws ScriptError at once when Redis refused the attempt (ACL `NOPERM`, `OOM`): retrying would be refused too
   * @throws InvalidArgumentError for bad options, before any Redis call
   */
  acquire(options?: AcquireOptions): Promise<Lease> {
    let parsed: ReturnType<typeof parseAcquire>;
    try {
      parsed = parseAcquire(options, false);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.acquireLease(parsed.waitMs, parsed.signal);
  }

  /**
   * Acquires the lock (as {@link acquire}), runs `fn(lease)`, and always releases. With `autoExtend` (default) the
   * lease is extended every `ttlMs / 3` (sooner when less validity is left); when an extension finds the lock lost, `lease.signal` aborts with
   * `LeaseLostError` — `fn` should watch it and stop writing. `fn`'s own error is rethrown unchanged, in preference
   * to a release error; a release error surfaces only when `fn` succeeded. A release Redis does not answer is sent
   * again in the background until answered or the lease's validity ends.
   * @returns what `fn` returned
   * @throws whatever {@link acquire} throws, or `fn`'s error
   */
  async using<T>(fn: (lease: Lease) => Promise<T> | T, options?: UsingOptions): Promise<T> {
    validate.func("fn", fn);
    const { waitMs, signal, autoExtend } = parseAcquire(options, true);
    const lease = await this.acquireLease(waitMs, signal);
    if (autoExtend) lease.startAutoExtend();
    let result: T;
    try {
      result = await fn(lease);
    } catch (err) {
      lease.stopAutoExtend();
      await lease.releaseUntilAnswered().catch(() => false);
      throw err;
    }
    lease.stopAutoExtend();
    // Sent again in the background while Redis does not answer: a blip here would leave the lock held by nobody.
    await lease.releaseUntilAnswered();
    return result;
  }

  /** The waiting loop of acquire(), after validation. */
  protected async acquireLease(waitMs: number, signal: AbortSignal | undefined): Promise<LeaseImpl> {
    const start = performance.now();
    let attempts = 0;
    /** The attempts in a row, up to the last one, that Redis did not answer, and when the first of them started. */
    let unanswered = 0;
    let unansweredSince = start;
    try {
      if (signal?.aborted) throw abortReason(signal);
      const until = start + waitMs;
      for (;;) {
        attempts++;
        const attemptStart = performance.now();
        const result = await this.#attemptAbortable(signal);
        if (result.kind === "acquired") {
          // An abort that landed after the attempt answered, in the microtasks before this: still never handed out.
          if (signal?.aborted) {
            abandon(result);
            throw abortReason(signal);
          }
          this.#report("acquired", start, attempts);
          return result.lease;
        }
        if (result.kind !== "unanswered") unanswered = 0;
        else if (unanswered++ === 0) unansweredSince = attemptStart;
        const remaining = until - performance.now();
        if (remaining <= 0) {
          if (result.kind === "unavailable") throw result.error;
          if (result.kind === "unanswered") {
            if (waitMs === 0) throw result.error;
            throw new RedisUnavailableError(
              this.#unansweredMessage(waitMs, attempts, unanswered, unansweredSince, result.error),
              { cause: result.error },
            );
          }
          if (result.kind === "invalid") throw new RedisUnavailableError(this.lateGrantMessage());
          throw new LockBusyError(this.name, performance.now() - start);
        }
        const base = Math.min(MAX_RETRY_DELAY_MS, MIN_RETRY_DELAY_MS * 2 ** Math.min(attempts - 1, 10));
        let delay = base / 2 + Math.random() * (base / 2);
        // A holder about to expire: come back just after it does.
        if (result.kind === "busy" && result.retryAfterMs > 0 && result.retryAfterMs < delay) {
          delay = result.retryAfterMs + Math.random() * MIN_RETRY_DELAY_MS;
        }
        await sleep(Math.max(1, Math.min(delay, remaining)), signal);
      }
    } catch (err) {
      if (err instanceof LockBusyError) {
        this.#report(waitMs === 0 ? "busy" : "timeout", start, attempts, err);
      } else if (signal?.aborted && err === signal.reason) {
        this.#report("aborted", start, attempts);
      } else {
        const error = toCoordisError(err);
        this.#report("error", start, attempts, error);
        throw error;
      }
      throw err;
    }
  }

  /** Runs one attempt; when `signal` aborts first, rejects at once and releases whatever the attempt wins. */
  #attemptAbortable(signal: AbortSignal | undefined): Promise<AttemptResult> {
    const pending = this.attempt();
    if (signal === undefined) return pending;
    return new Promise<AttemptResult>((resolve, reject) => {
      const stop = onAbort(signal, () => {
        reject(abortReason(signal));
        pending.then(
          (r) => {
            if (r.kind === "acquired") abandon(r);
          },
          () => {},
        );
      });
      pending.then(
        (r) => {
          stop();
          if (!signal.aborted) resolve(r);
        },
        (err: unknown) => {
          stop();
          if (!signal.aborted) reject(err);
        },
      );
    });
  }

  /**
   * Why an acquire gave up whose last `unanswered` attempts (of `attempts`, the first of them started at `since`) got
   * no answer from Redis, and what to do.
   */
  #unansweredMessage(waitMs: number, attempts: number, unanswered: number, since: number, last: Error): string {
    const what =
      unanswered === attempts
        ? `${attempts === 1 ? "its only attempt" : `any of its ${attempts} attempts`} in the whole wait (waitMs ` +
          `${waitMs} ms)`
        : `its last ${unanswered} of ${attempts} attempts, over the last ${Math.round(performance.now() - since)} ms ` +
          `of the wait (waitMs ${waitMs} ms)`;
    return (
      `Lock "${this.name}": Redis did not answer ${what} (a lost connection, a command ` +
      `timeout, a client reconnecting; last: ${last.message}). Check that Redis is up and reachable from this ` +
      "process (its address, the network, a restart or failover under way), or raise waitMs to wait out longer " +
      "outages."
    );
  }

  #report(outcome: string, start: number, attempts: number, error?: Error): void {
    if (this.observer?.onOperation === undefined) return;
    reportOperation(this.observer, this.#site(attempts), start, outcome, error);
  }

  /** Who hears of undos dropped while Redis does not answer (more than core's cap waiting on one client). */
  #undoReport(): { observer: CoordisObserver | undefined; site: OperationSite } {
    return {
      observer: this.observer,
      site: { primitive: "lock", op: "acquire", name: this.name, attributes: { kind: this.#kind } },
    };
  }

  /** What an acquire report says besides its outcome and duration. */
  #site(attempts: number): OperationSite {
    return { primitive: "lock", op: "acquire", name: this.name, attributes: { kind: this.#kind, attempts } };
  }
}
