import { RedisUnavailableError } from "@coordis/core";

/** Options of the cache's circuit breaker. */
export interface CircuitBreakerOptions {
  /** Consecutive Redis-unavailable failures that open the circuit (1–1000); default 3. */
  failures?: number;
  /** How long the circuit stays open before one probe call is let through, ms; default 2000. */
  cooldownMs?: number;
}

/** State of a {@link CircuitBreaker}: `closed` (normal), `open` (Redis skipped), `half-open` (one probe in flight). */
export type CircuitState = "closed" | "open" | "half-open";

/** The errors of calls the open circuit breaker refused (nothing was sent to Redis). Internal. */
const refusedByBreaker = new WeakSet<object>();

/** Whether `err` is the `RedisUnavailableError` of a call the open circuit breaker refused without sending it. */
export function isShortCircuit(err: unknown): boolean {
  return typeof err === "object" && err !== null && refusedByBreaker.has(err);
}

/**
 * A circuit breaker around Redis calls: after `failures` consecutive `RedisUnavailableError`s it opens, and for
 * `cooldownMs` every call fails at once with `RedisUnavailableError` without sending anything, so callers don't each
 * wait for the command timeout. Then one probe call is let through (half-open): success closes the circuit, failure
 * opens it for another cooldown. Other errors (a script error) count as success: Redis answered.
 */
export class CircuitBreaker {
  #state: CircuitState = "closed";
  #consecutive = 0;
  #openedAt = 0;
  readonly #failures: number;
  readonly #cooldownMs: number;
  readonly #onChange: (state: CircuitState, error?: Error) => void;
  /** Calls rejected without touching Redis, for tests and metrics. */
  shortCircuited = 0;
  /** Calls let through to Redis, for tests and metrics. */
  passed = 0;

  constructor(failures: number, cooldownMs: number, onChange: (state: CircuitState, error?: Error) => void) {
    this.#failures = failures;
    this.#cooldownMs = cooldownMs;
    this.#onChange = onChange;
  }

  /** Current state (an open circuit whose cooldown has passed reports `open` until the next call probes). */
  get current(): CircuitState {
    return this.#state;
  }

  /** True when a call would be rejected right now without reaching Redis. */
  get blocking(): boolean {
    if (this.#state === "half-open") return true;
    return this.#state === "open" && performance.now() - this.#openedAt < this.#cooldownMs;
  }

  /** Runs `fn` through the breaker. @throws RedisUnavailableError when open; whatever `fn` throws otherwise */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#state !== "closed") {
      if (this.blocking) {
        this.shortCircuited++;
        const err = new RedisUnavailableError("Redis is unavailable (the cache's circuit breaker is open)");
        refusedByBreaker.add(err);
        throw err;
      }
      this.#state = "half-open";
      this.#onChange("half-open");
    }
    this.passed++;
    try {
      const result = await fn();
      this.#success();
      return result;
    } catch (err) {
      if (err instanceof RedisUnavailableError) this.#failure(err);
      else this.#success();
      throw err;
    }
  }

  #success(): void {
    this.#consecutive = 0;
    if (this.#state !== "closed") {
      this.#state = "closed";
      this.#onChange("closed");
    }
  }

  #failure(err: Error): void {
    this.#consecutive++;
    if (this.#state === "half-open" || (this.#state === "closed" && this.#consecutive >= this.#failures)) {
      this.#state = "open";
      this.#openedAt = performance.now();
      this.#onChange("open", err);
    } else if (this.#state === "open") {
      this.#openedAt = performance.now();
    }
  }
}
