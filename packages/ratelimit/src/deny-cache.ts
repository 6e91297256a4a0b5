import type { Decision } from "./decision.js";

interface Entry {
  readonly until: number;
  readonly cost: number;
  readonly decision: Decision;
}

/**
 * Remembers rejections so a {@link RateLimiter} can answer the same key locally, without a Redis call, until the
 * rejection's `retryAfterMs` has passed. Bounded: the oldest entries are dropped beyond `maxKeys`.
 */
export class DenyCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxKeys: number;

  constructor(maxKeys: number) {
    this.#maxKeys = maxKeys;
  }

  /** Records a rejected call of `cost` units. */
  remember(key: string, cost: number, decision: Decision, now = Date.now()): void {
    if (decision.allowed || decision.retryAfterMs <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { until: now + decision.retryAfterMs, cost, decision });
    if (this.#entries.size > this.#maxKeys) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }

  /** A local rejection for a call of `cost` when one of at least that cost is still known to be rejected. */
  lookup(key: string, cost: number, now = Date.now()): Decision | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (now >= e.until) {
      this.#entries.delete(key);
      return undefined;
    }
    if (cost < e.cost) return undefined;
    const left = e.until - now;
    return {
      ...e.decision,
      retryAfterMs: left,
      reason: "deny-cache",
      rules: e.decision.rules.map((r) => ({ ...r, retryAfterMs: Math.min(r.retryAfterMs, left) })),
    };
  }

  /** Forgets `key` (after a refund or reset). */
  delete(key: string): void {
    this.#entries.delete(key);
  }
}
