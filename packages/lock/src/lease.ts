import { performance } from "node:perf_hooks";
import {
  type CoordisObserver,
  InvalidArgumentError,
  notifyEvent,
  type OperationSite,
  RedisUnavailableError,
  reportOperation,
  toCoordisError,
} from "@coordis/core";
import { LeaseLostError } from "./errors.js";
import { validateTtl } from "./options.js";

/**
 * A held lock (or one semaphore permit). Obtained from `acquire()`, `tryAcquire()` or `using()`.
 * Not reentrant: acquiring the same name again from the same process waits like any other holder would.
 */
export interface Lease {
  /** The lock's name. */
  readonly name: string;
  /** The random token that identifies this holder in Redis. */
  readonly token: string;
  /**
   * Fencing token: strictly increases with every successful acquisition of this name, across holders and client
   * restarts, for as long as Redis keeps its data. Pass it to the system you write to and have it reject writes
   * carrying a lower fence than one it already accepted.
   */
  readonly fence: number;
  /**
   * Aborts when the lease is lost (reason: a {@link LeaseLostError}) or released (reason: an `AbortError`
   * `DOMException`, as soon as `release()` is called, before Redis answered it). Reading it also checks the local
   * validity deadline, so a lease whose validity ran out while the process was paused reads as aborted at once.
   */
  readonly signal: AbortSignal;
  /** Milliseconds of local validity left (0 once lost or released). Lower than Redis' TTL by elapsed time and drift. */
  remainingMs(): number;
  /**
   * Resets the lease's time to live to `ttlMs` (default: the lease's current time to live, at first the lock's
   * `ttlMs`) from now, in one round trip. The given `ttlMs` becomes the lease's time to live: under `using()`'s
   * automatic extension, the next one follows `ttlMs / 3` after this call and renews to `ttlMs` again, so a
   * shorter time to live does not run out before the next automatic extension.
   * @throws LeaseLostError when the lease is no longer held (its `signal` aborts too), or was released
   * @throws InvalidArgumentError for a bad `ttlMs`; RedisUnavailableError when Redis cannot be reached (the extension
   *   may have run: a `ttlMs` shorter than what the lease had left shortens its local validity to it)
   */
  extend(ttlMs?: number): Promise<void>;
  /**
   * Releases the lease (compare-and-delete: never removes someone else's lock), in one round trip; aborts `signal`
   * when called, before the release is sent.
   * @returns true when this lease still held the lock in Redis, false when it had already been lost (or released)
   * @throws RedisUnavailableError when Redis cannot be reached: the lease expires by itself, or call release() again
   *   (it asks Redis again; false then can also mean the unanswered call did release it)
   */
  release(): Promise<boolean>;
}

/** How a lease talks to Redis: one script each. Internal. */
export interface LeaseBackend {
  /**
   * Resets the TTL when `token` still holds; resolves false only when Redis answered that it no longer does, and
   * rejects (RedisUnavailableError) when that is unknown (no answer, a timeout, too few Redlock masters answering).
   */
  extend(token: string, ttlMs: number): Promise<boolean>;
  /**
   * Compare-and-delete; resolves whether `token` still held, and rejects (RedisUnavailableError) when that is
   * unknown. `progress` is the lease's own, kept across its release calls: what an unanswered call already released.
   */
  release(token: string, progress?: ReleaseProgress): Promise<boolean>;
}

/** What a lease's earlier, unconfirmed release() calls did (Redlock: the masters that answered "released"). */
export interface ReleaseProgress {
  releasedNodes?: Set<number>;
}

/** Clock drift allowance of a lease with `ttlMs` (Redlock's rule): `ttlMs * driftFactor + 2` ms. */
export function driftMs(ttlMs: number, driftFactor: number): number {
  return Math.floor(ttlMs * driftFactor) + 2;
}

/** Parameters of a {@link LeaseImpl}. Internal. */
export interface LeaseInit {
  kind: string;
  name: string;
  token: string;
  fence: number;
  ttlMs: number;
  driftFactor: number;
  /** Local deadline, `performance.now()` time base. */
  deadline: number;
  backend: LeaseBackend;
  observer: CoordisObserver | undefined;
  /** The lock's `durability.timeoutMs`, when set: `extend(ttlMs)` refuses a `ttlMs` not above it. */
  durabilityTimeoutMs?: number;
}

/** The reason a released lease's signal aborts with (built only when someone reads the signal). */
function releasedReason(name: string): DOMException {
  return new DOMException(`Lease on "${name}" was released`, "AbortError");
}

/**
 * The one Lease implementation shared by Mutex, Semaphore, Redlock and runOncePerTick. Internal.
 *
 * The `AbortController` and the local deadline timer are created lazily: the controller when `signal` is first
 * read (already aborted, with the same reason, when the lease ended before), the timer when someone can observe the
 * deadline passing on its own — a reader of `signal` or an observer with `onEvent` (the `lease-lost` event). Every
 * other path (`signal`, `remainingMs()`, `extend()`) checks the deadline when called, so a lease nobody watches
 * costs no controller and no timer.
 */
export class LeaseImpl implements Lease {
  readonly name: string;
  readonly token: string;
  readonly fence: number;
  readonly #init: LeaseInit;
  #controller: AbortController | undefined;
  /** True once lost or released (what `signal.aborted` reports). */
  #aborted = false;
  /** The abort reason: the LeaseLostError, or undefined for a release (a DOMException, built lazily). */
  #reason: LeaseLostError | undefined;
  #deadline: number;
  /** Whether the deadline timer is wanted (someone can observe the deadline passing). */
  #watched: boolean;
  #timer: NodeJS.Timeout | undefined;
  #autoTimer: NodeJS.Timeout | undefined;
  #autoExtending = false;
  /** The time to live of the latest extension asked for (the lock's ttlMs until then): what extensions renew to. */
  #ttl: number;
  #released = false;
  #releaseProgress: ReleaseProgress | undefined;
  /** Extensions sent so far (each takes the next number), and the highest number among those that have settled. */
  #extensionsSent = 0;
  #extensionsSettled = 0;
  /** The release() in flight, if any. */
  #releasing: Promise<boolean> | undefined;

  constructor(init: LeaseInit) {
    this.#init = init;
    this.name = init.name;
    this.token = init.token;
    this.fence = init.fence;
    this.#deadline = init.deadline;
    this.#ttl = init.ttlMs;
    this.#watched = init.observer?.onEvent !== undefined;
    if (this.#watched) this.#armDeadline();
  }

  get signal(): AbortSignal {
    this.#checkDeadline();
    let controller = this.#controller;
    if (controller === undefined) {
      controller = new AbortController();
      this.#controller = controller;
      if (this.#aborted) {
        controller.abort(this.#reason ?? releasedReason(this.name));
      } else if (!this.#watched && !this.#released) {
        // A reader may now wait for the abort event: the deadline must fire it on its own from here on.
        this.#watched = true;
        this.#armDeadline();
      }
    }
    return controller.signal;
  }

  /** The local validity deadline (`performance.now()` time base), also after the lease ended. Internal. */
  get validUntil(): number {
    return this.#deadline;
  }

  remainingMs(): number {
    this.#checkDeadline();
    if (this.#aborted) return 0;
    return Math.max(0, this.#deadline - performance.now());
  }

  async extend(ttlMs?: number): Promise<void> {
    const ttl = ttlMs === undefined ? this.#ttl : validateTtl(ttlMs, "ttlMs");
    const confirmMs = this.#init.durabilityTimeoutMs;
    if (confirmMs !== undefined && ttl <= confirmMs) {
      // As the constructor refuses: the lease would expire while its extension is being confirmed.
      throw new InvalidArgumentError(
        "ttlMs",
        `${ttl} ms must be above durability.timeoutMs (${confirmMs} ms): the lease would expire while its extension is confirmed`,
      );
    }
    if (ttl !== this.#ttl) {
      this.#ttl = ttl;
      // A new time to live: the next automatic extension comes a third of it from now (and renews to it), or at half
      // the validity left when sooner: a longer ttlMs whose extension fails leaves the deadline where it was, and a
      // third of it could fall past that deadline (extend(90_000) in a blip on a 30 s lease: lost, never retried).
      if (this.#autoExtending) this.#scheduleAuto(this.#nextAuto());
    }
    return this.#extend(ttl);
  }

  /** One extension to `ttl`, for extend() and the automatic extensions alike. */
  async #extend(ttl: number): Promise<void> {
    // A lease past its local deadline (the process paused) is lost, not extended; so is one being released (an
    // extension sent behind the release would find the token gone and report the released lease lost).
    this.#checkDeadline();
    if (this.#aborted || this.#released) {
      throw this.#reason instanceof LeaseLostError
        ? this.#reason
        : new LeaseLostError(this.name, this.fence, "not-held");
    }
    const start = performance.now();
    const sent = ++this.#extensionsSent;
    let held: boolean;
    try {
      held = await this.#init.backend.extend(this.token, ttl);
    } catch (err) {
      this.#extensionsSettled = Math.max(this.#extensionsSettled, sent);
      // Unknown outcome: the extension may have run (only its answer lost, or not confirmed by the replicas), and then
      // Redis' TTL is `ttl` from some instant after `start`. A time to live shorter than what the lease had left would
      // then end it sooner: the local deadline keeps the earlier of the two, never the longer validity it had.
      const bound = start + ttl - driftMs(ttl, this.#init.driftFactor);
      if (bound < this.#deadline && !this.#released && !this.#aborted) {
        this.#deadline = bound;
        if (this.#watched) this.#armDeadline();
        this.#checkDeadline();
      }
      const error = toCoordisError(err);
      this.#report("extend", "error", start, error);
      throw error;
    }
    if (!held) {
      const lost = new LeaseLostError(this.name, this.fence, "not-held");
      this.#report("extend", "lost", start, lost);
      this.lose(lost);
      throw lost;
    }
    // The new deadline counts from before the request was sent (the server's TTL started no earlier than that).
    const deadline = start + ttl - driftMs(ttl, this.#init.driftFactor);
    // Whether no extension sent after this one has settled yet. One that has settled ran after this one wherever both
    // ran (a node runs a connection's commands in order), so its time to live, not this one's, is what Redis holds,
    // though its answer came first (a Redlock round ends once decided, and this one's may wait longer for a master).
    const latest = sent > this.#extensionsSettled;
    this.#extensionsSettled = Math.max(this.#extensionsSettled, sent);
    if (this.#released) {
      // Released while the extension was out (e.g. using() finishing during an automatic one): it ran before the
      // release on the same connection, and the release has ended the lease since.
      this.#report("extend", "ok", start);
      return;
    }
    if (this.#reason !== undefined) {
      // Lost while the extension was out (its deadline passed): the lease stays lost.
      this.#report("extend", "lost", start, this.#reason);
      throw this.#reason;
    }
    if (performance.now() >= deadline) {
      // The answer came after the extension's own validity (the process paused, a slow reply): as for an acquire,
      // Redis may already have expired it, so the lease is lost, not extended.
      const lost = new LeaseLostError(this.name, this.fence, "expired");
      this.#report("extend", "lost", start, lost);
      this.lose(lost);
      throw lost;
    }
    // Redis now holds exactly `ttl` from the reply: the local deadline follows it, even when that is shorter. Behind
    // a later extension that has settled, it only moves earlier: a longer time to live answered last must not undo
    // that one's shorter validity (extend() then extend(1000) under one silent Redlock master: 30 s read for 1 s).
    this.#deadline = latest ? deadline : Math.min(this.#deadline, deadline);
    if (this.#watched) this.#armDeadline();
    this.#report("extend", "ok", start);
  }

  release(): Promise<boolean> {
    // A release() while another is still out shares its outcome: answering false ("already lost") at once would
    // be wrong when that one gets no answer and the lock is still held.
    if (this.#releasing !== undefined) return this.#releasing;
    if (this.#released) return Promise.resolve(false);
    const releasing = this.#release().finally(() => {
      this.#releasing = undefined;
    });
    this.#releasing = releasing;
    // The lease is being given up from now on: code that watches the signal stops as the release is sent, not once
    // Redis answered it (a round trip later, or a command timeout later during an outage). After #releasing is set:
    // an abort listener that calls release() gets this call's outcome.
    if (!this.#aborted) this.#abort(undefined);
    return releasing;
  }

  async #release(): Promise<boolean> {
    this.#released = true;
    this.stopAutoExtend();
    clearTimeout(this.#timer);
    // Reported through #report, which builds nothing without an observer (as tryAcquire in lock-base.ts).
    const start = performance.now();
    try {
      this.#releaseProgress ??= {};
      const held = await this.#init.backend.release(this.token, this.#releaseProgress);
      this.#report("release", held ? "released" : "not-held", start);
      return held;
    } catch (err) {
      // No answer: the lock may still be held in Redis. A later release() sends the compare-and-delete again (safe
      // to repeat) instead of answering false without asking; the signal stays aborted.
      this.#released = false;
      const error = toCoordisError(err);
      this.#report("release", "error", start, error);
      throw error;
    }
  }

  /**
   * using()'s release: release(), sent again in the background while Redis does not answer it (50 ms doubling to
   * 1 s, on timers that keep no process alive) until it is answered or the lease's validity has ended: one release
   * lost in a blip as the routine ends left the lock held by nobody for up to its time to live. Settles as the first
   * attempt does. Internal.
   */
  releaseUntilAnswered(): Promise<boolean> {
    const again = (delay: number) => (err: unknown) => {
      if (!(err instanceof RedisUnavailableError) || performance.now() + delay >= this.#deadline) return;
      setTimeout(() => this.release().catch(again(Math.min(1_000, delay * 2))), delay).unref();
    };
    const first = this.release();
    first.catch(again(50));
    return first;
  }

  /** Ends a lease nobody was handed (its grant is given back by other means) without a word to Redis. Internal. */
  discard(): void {
    this.#released = true;
    this.stopAutoExtend();
    clearTimeout(this.#timer);
    if (!this.#aborted) this.#abort(undefined);
  }

  /** Marks the lease lost: aborts the signal with `error` and reports a `lease-lost` event. Idempotent. */
  lose(error: LeaseLostError): void {
    if (this.#aborted) return;
    this.stopAutoExtend();
    clearTimeout(this.#timer);
    this.#abort(error);
    notifyEvent(this.#init.observer, {
      primitive: "lock",
      type: "lease-lost",
      name: this.name,
      attributes: { kind: this.#init.kind, reason: error.reason },
      error,
    });
  }

  /**
   * Extends every `ttl / 3` until released or lost, or sooner when the lease has less validity left than that
   * allows for (see #nextAuto). A failed extension (not held) loses the lease at once; one that fails because Redis
   * is unreachable is retried sooner, until the local deadline loses the lease.
   */
  startAutoExtend(): void {
    if (this.#autoExtending) return;
    this.#autoExtending = true;
    this.#scheduleAuto(this.#nextAuto());
  }

  /**
   * When the next automatic extension is due, counted from the lease's deadline rather than from when the last
   * round ended: a third of the time to live from now, or half the validity left when that is sooner (an acquire or
   * an extension that took long to answer — a Redlock round waiting for a master — left less than two thirds). With
   * prompt answers the lease has `ttl − drift` left and the third is sooner.
   */
  #nextAuto(): number {
    return Math.max(1, Math.floor(Math.min(this.#ttl / 3, (this.#deadline - performance.now()) / 2)));
  }

  /**
   * (Re)arms the one automatic-extension timer: after `delay`, extend to the lease's current time to live, then again
   * after #nextAuto (a twelfth of the time to live after an unanswered attempt, or sooner as #nextAuto).
   */
  #scheduleAuto(delay: number): void {
    if (this.#autoTimer !== undefined) clearTimeout(this.#autoTimer);
    this.#autoTimer = setTimeout(async () => {
      if (!this.#autoExtending || this.#aborted) return;
      const timer = this.#autoTimer;
      let next: number | undefined;
      try {
        await this.#extend(this.#ttl);
      } catch (err) {
        if (err instanceof LeaseLostError) return;
        // A twelfth of the time to live, or half the validity left when sooner (a longer ttlMs not applied yet).
        next = Math.min(Math.max(1, Math.floor(Math.floor(this.#ttl / 3) / 4)), this.#nextAuto());
      }
      // A manual extend() to another time to live while this one was out has armed the timer afresh: keep that one.
      if (this.#autoExtending && this.#autoTimer === timer) this.#scheduleAuto(next ?? this.#nextAuto());
    }, delay);
  }

  /** Stops automatic extension. */
  stopAutoExtend(): void {
    this.#autoExtending = false;
    if (this.#autoTimer !== undefined) clearTimeout(this.#autoTimer);
  }

  /** Ends the lease locally: `reason` is the LeaseLostError, or undefined for a release. */
  #abort(reason: LeaseLostError | undefined): void {
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason ?? releasedReason(this.name));
  }

  #checkDeadline(): void {
    if (this.#released || this.#aborted) return;
    if (performance.now() >= this.#deadline) this.lose(new LeaseLostError(this.name, this.fence, "expired"));
  }

  #armDeadline(): void {
    clearTimeout(this.#timer);
    const delay = Math.max(0, Math.ceil(this.#deadline - performance.now()));
    this.#timer = setTimeout(() => {
      if (performance.now() < this.#deadline) this.#armDeadline();
      else this.#checkDeadline();
    }, delay);
    this.#timer.unref();
  }

  #report(op: string, outcome: string, start: number, error?: Error): void {
    if (this.#init.observer?.onOperation === undefined) return;
    reportOperation(this.#init.observer, this.#site(op), start, outcome, error);
  }

  /** What a report of `op` says besides its outcome and duration. */
  #site(op: string): OperationSite {
    return { primitive: "lock", op, name: this.name, attributes: { kind: this.#init.kind } };
  }
}
