import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { CoordisError, InvalidArgumentError } from "@coordis/core";

/** How long and how often {@link waitUntil}, {@link eventually} and {@link tryWaitUntil} poll. */
export interface WaitOptions {
  /** Give up after this many ms; default 5,000. */
  timeoutMs?: number;
  /** Pause between two checks, ms; default 10. */
  intervalMs?: number;
  /**
   * Treat a check that throws (or rejects) as "not yet" and poll on; the last error is named in the timeout message
   * and kept as its `cause`. Default false: the first error fails the wait at once.
   */
  ignoreErrors?: boolean;
}

/** A condition polled by {@link waitUntil} or {@link eventually} did not hold within its timeout. */
export class WaitTimeoutError extends CoordisError {
  /** What was awaited, as named by the caller. */
  readonly what: string;
  /** The timeout it missed, ms. */
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number, lastError?: unknown) {
    super(
      "ERR_WAIT_TIMEOUT",
      `timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? "" : `: ${String(lastError)}`}`,
      lastError === undefined ? undefined : { cause: lastError },
    );
    this.what = what;
    this.timeoutMs = timeoutMs;
  }
}

function parse(options: number | WaitOptions | undefined): Required<WaitOptions> {
  const o = typeof options === "number" ? { timeoutMs: options } : (options ?? {});
  const timeoutMs = o.timeoutMs ?? 5_000;
  const intervalMs = o.intervalMs ?? 10;
  for (const [name, ms] of [
    ["timeoutMs", timeoutMs],
    ["intervalMs", intervalMs],
  ] as const) {
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw new InvalidArgumentError(name, `expected a finite number of milliseconds ≥ 0, got ${String(ms)}`);
    }
  }
  return { timeoutMs, intervalMs, ignoreErrors: o.ignoreErrors === true };
}

const NOT_YET: unique symbol = Symbol("not yet");
const HUNG: unique symbol = Symbol("hung");
/** How long past the deadline a check still running is waited for before the wait gives up on it. */
const HUNG_GRACE_MS = 1_000;

/** The one polling loop: the value of the first check that is not `NOT_YET`, or `NOT_YET` when time ran out. */
async function poll<T>(
  check: () => T | typeof NOT_YET | PromiseLike<T | typeof NOT_YET>,
  { timeoutMs, intervalMs, ignoreErrors }: Required<WaitOptions>,
): Promise<{ value: T } | { lastError: unknown }> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    // A check that hangs (a command to a paused server on a client without a command timeout) is not waited for
    // past the deadline: the wait times out as promised, naming it.
    const pending = Promise.resolve().then(check);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<typeof HUNG>((resolve) => {
      timer = setTimeout(() => resolve(HUNG), Math.max(0, deadline - performance.now()) + HUNG_GRACE_MS);
    });
    try {
      const value = await Promise.race([pending, late]);
      if (value === HUNG) {
        pending.catch(() => {}); // settles later, unobserved
        return {
          lastError: new Error(`the last check had not settled ${HUNG_GRACE_MS} ms after the ${timeoutMs} ms ran out`),
        };
      }
      if (value !== NOT_YET) return { value };
    } catch (err) {
      if (!ignoreErrors) throw err;
      lastError = err;
    } finally {
      clearTimeout(timer);
    }
    if (performance.now() > deadline) return { lastError };
    await sleep(intervalMs);
  }
}

/**
 * Polls `check` (every 10 ms by default) until it returns true; the check runs once more at once, so a condition
 * that already holds costs no wait.
 *
 * @param what names the condition in the timeout message: `timed out after 5000 ms waiting for <what>`
 * @param options a timeout in ms, or {@link WaitOptions}
 * @returns the ms it took
 * @throws WaitTimeoutError when `check` did not return true within the timeout
 * @example
 * await waitUntil("the subscriber to resubscribe", () => bus.stats().resubscriptions === 1, 5_000);
 */
export async function waitUntil(
  what: string,
  check: () => boolean | PromiseLike<boolean>,
  options?: number | WaitOptions,
): Promise<number> {
  const o = parse(options);
  const started = performance.now();
  const result = await poll(async () => ((await check()) === true ? true : NOT_YET), o);
  if (!("value" in result)) throw new WaitTimeoutError(what, o.timeoutMs, result.lastError);
  return performance.now() - started;
}

/**
 * Like {@link waitUntil} but resolves `false` instead of throwing when time runs out: for runs that report a
 * condition that never came (a chaos run's "did not drain") rather than fail on it.
 *
 * @returns whether `check` returned true within the timeout
 */
export async function tryWaitUntil(
  check: () => boolean | PromiseLike<boolean>,
  options?: number | WaitOptions,
): Promise<boolean> {
  const result = await poll(async () => ((await check()) === true ? true : NOT_YET), parse(options));
  return "value" in result;
}

/**
 * Polls `check` until it returns a value other than `undefined` or `null`, and resolves with that value.
 *
 * @param what names the awaited value in the timeout message
 * @param options a timeout in ms, or {@link WaitOptions}
 * @throws WaitTimeoutError when every check returned `undefined` or `null` within the timeout
 * @example
 * const lease = await eventually("the lock to be free again", () => mutex.tryAcquire(), 8_000);
 */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | null | PromiseLike<T | undefined | null>,
  options?: number | WaitOptions,
): Promise<T> {
  const o = parse(options);
  const result = await poll(async () => (await check()) ?? NOT_YET, o);
  if (!("value" in result)) throw new WaitTimeoutError(what, o.timeoutMs, result.lastError);
  return result.value;
}
