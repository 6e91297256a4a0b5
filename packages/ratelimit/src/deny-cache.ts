import type { Decision } from "./decision.js";

interface Entry {
  /** When the rejection was remembered (monotonic clock, ms). */
  readonly at: number;
  /** When its retryAfterMs has passed (monotonic clock, ms). */
  readonly until: number;
  readonly cost: number;
  readonly decision: Decision;
}

/**
 * Remembers rejections so a {@link RateLimiter} can answer the same key locally, without a Redis call, until the
 * rejection's `retryAfterMs` has passed. Bounded: the oldest entries are dropped beyond `maxKeys`.
 *
 * Durations are measured on the monotonic clock (`performance.now()`), never the wall clock: a wall clock stepped
 * back (NTP) would otherwise keep a key rejected locally for as long as the step. A local answer's `retryAfterMs`
 * and `resetMs` (per rule too) are the remembered ones less the time since 1 ms before the call was issued, rounded
 * up, so they name the same instants as Redis' answer did, or up to 1 ms earlier (Redis decides on whole ms): the
 * local answer never outlasts Redis'.
 *
 * A rejection is only remembered when no refund or reset of its key was issued after the rejected call was: calls are
 * stamped with {@link DenyCache.stamp} when issued, and {@link DenyCache.delete} records the stamp of the refund or
 * reset, so the answer of a call that Redis decided before the refund cannot outlive it.
 */
export class DenyCache {
  readonly #entries = new Map<string, Entry>();
  /** Per key, the stamp of its latest refund or reset (the oldest dropped beyond maxKeys). */
  readonly #cleared = new Map<string, number>();
  readonly #maxKeys: number;
  #clock = 0;
  /** The newest stamp dropped from #cleared: a call issued before it may have been overtaken by a forgotten clear. */
  #forgotten = 0;

  constructor(maxKeys: number) {
    this.#maxKeys = maxKeys;
  }

  /** A stamp for a call being issued now, to pass to {@link DenyCache.remember} with its answer. */
  stamp(): number {
    return ++this.#clock;
  }

  /**
   * Records a rejected call of `cost` units issued at `issued` (its {@link DenyCache.stamp}). Only Redis' rejections
   * are kept: a failure policy's (fail-closed, memory fallback) must not outlive the outage that made it.
   */
  remember(key: string, cost: number, decision: Decision, issued: number, now = performance.now()): void {
    if (decision.allowed || decision.reason !== "redis" || decision.retryAfterMs <= 0) return;
    if (issued <= this.#forgotten || issued < (this.#cleared.get(key) ?? 0)) return;
    // Redis decides on whole ms (TIME cut to the ms): a call it rejected at x.9 ms passes there at x + retryAfterMs,
    // up to 1 ms before the issue time + retryAfterMs. Timed from 1 ms before the call was issued, the local answer
    // ends no later than Redis' instant.
    const at = now - 1;
    this.#entries.delete(key);
    this.#entries.set(key, { at, until: at + decision.retryAfterMs, cost, decision });
    if (this.#entries.size > this.#maxKeys) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }

  /**
   * A local rejection for a call of `cost` when a call of that same cost is still known to be rejected. (A larger
   * cost waits longer, by an amount only Redis knows: it goes to Redis, as does a smaller one, which may pass.)
   */
  lookup(key: string, cost: number, now = performance.now()): Decision | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (now >= e.until) {
      this.#entries.delete(key);
      return undefined;
    }
    if (cost !== e.cost) return undefined;
    const elapsed = now - e.at;
    const since = (ms: number) => Math.max(0, Math.ceil(ms - elapsed));
    return {
      ...e.decision,
      resetMs: since(e.decision.resetMs),
      retryAfterMs: Math.ceil(e.until - now),
      reason: "deny-cache",
      rules: e.decision.rules.map((r) => {
        const retryAfterMs = since(r.retryAfterMs);
        return { ...r, allowed: r.allowed || retryAfterMs === 0, resetMs: since(r.resetMs), retryAfterMs };
      }),
    };
  }

  /** Forgets `key` when a refund or reset of it is issued: calls issued before now are no longer remembered. */
  delete(key: string): void {
    this.#entries.delete(key);
    this.#cleared.delete(key);
    this.#cleared.set(key, this.stamp());
    if (this.#cleared.size > this.#maxKeys) {
      const [oldest, stamp] = this.#cleared.entries().next().value as [string, number];
      this.#cleared.delete(oldest);
      this.#forgotten = stamp;
    }
  }
}
