import { performance } from "node:perf_hooks";
import { CoordisError, InvalidArgumentError, validate } from "@coordis/core";

/** A promise neither resolved nor rejected within the time it was given ({@link withDeadline}). */
export class DeadlineExceededError extends CoordisError {
  /** What was awaited, as named by the caller. */
  readonly what: string;
  /** The deadline it missed, ms. */
  readonly deadlineMs: number;

  constructor(what: string, deadlineMs: number) {
    super("ERR_DEADLINE_EXCEEDED", `${what} neither resolved nor rejected within ${deadlineMs} ms`);
    this.what = what;
    this.deadlineMs = deadlineMs;
  }
}

function checkMs(ms: number): void {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
    throw new InvalidArgumentError(
      "ms",
      `expected a finite number of milliseconds ≥ 0, got ${validate.describeValue(ms)}`,
    );
  }
}

/**
 * Settles like `promise` if it settles within `ms` milliseconds; otherwise rejects with
 * {@link DeadlineExceededError} naming `what`. Use it to prove an operation never hangs. The timer is cleared as
 * soon as the promise settles, so it keeps no process alive.
 *
 * @example
 * await expect(withDeadline(mutex.acquire(), 3_000, "acquire during blackhole")).rejects.toThrow(RedisUnavailableError);
 * @throws InvalidArgumentError when `ms` is negative or not finite
 */
export function withDeadline<T>(promise: PromiseLike<T>, ms: number, what: string): Promise<T> {
  checkMs(ms);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DeadlineExceededError(what, ms)), ms);
    Promise.resolve(promise).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** A promise a {@link Watchdog} saw miss its deadline. */
export interface DeadlineViolation {
  /** What was awaited. */
  readonly what: string;
  /** Its deadline, ms. */
  readonly deadlineMs: number;
  /** When it finally settled, ms after it was watched; `undefined` while it still hangs. */
  settledAfterMs: number | undefined;
}

/**
 * Watches many promises with a deadline each and keeps the record a chaos checker needs: how many were watched,
 * which missed their deadline (and whether they settled later or still hang).
 *
 * @example
 * const watchdog = new Watchdog();
 * await watchdog.watch(runScript(redis, coreScripts.probe, keys, args), 2_500, "probe").catch(() => {});
 * expect(watchdog.violations).toEqual([]);
 */
export class Watchdog {
  private readonly missed: DeadlineViolation[] = [];
  private watchedCount = 0;
  private pendingCount = 0;

  /** How many promises were watched. */
  get watched(): number {
    return this.watchedCount;
  }

  /** Watched promises not settled yet (within or past their deadline). */
  get pending(): number {
    return this.pendingCount;
  }

  /** Every promise that missed its deadline, in the order they missed it. */
  get violations(): readonly DeadlineViolation[] {
    return this.missed;
  }

  /** Violations still unsettled: promises that hang. */
  get hanging(): readonly DeadlineViolation[] {
    return this.missed.filter((v) => v.settledAfterMs === undefined);
  }

  /**
   * Like {@link withDeadline}, and records a violation when the deadline passes first.
   * @throws InvalidArgumentError when `ms` is negative or not finite
   */
  watch<T>(promise: PromiseLike<T>, ms: number, what: string): Promise<T> {
    checkMs(ms);
    this.watchedCount++;
    this.pendingCount++;
    const started = performance.now();
    let violation: DeadlineViolation | undefined;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        violation = { what, deadlineMs: ms, settledAfterMs: undefined };
        this.missed.push(violation);
        reject(new DeadlineExceededError(what, ms));
      }, ms);
      const settled = () => {
        clearTimeout(timer);
        this.pendingCount--;
        if (violation !== undefined) violation.settledAfterMs = Math.round(performance.now() - started);
      };
      Promise.resolve(promise).then(
        (value) => {
          settled();
          resolve(value);
        },
        (err: unknown) => {
          settled();
          reject(err);
        },
      );
    });
  }
}
