import type { RedisClient } from "@coordis/core";

/** A node being tested by one call (a probe): the other calls keep to their failure policy until its answer. */
const PROBING = Number.POSITIVE_INFINITY;

/**
 * What the rate limiters of one Redis client know of its reachability: the nodes that failed lately (the master of a
 * key's slot on a Cluster, "" otherwise). Shared by every limiter on the client, so an outage costs one command timeout
 * per pause for all of them, not one per limiter (a route's limiter and its ban limiter, every route of a service).
 * Each limiter pauses after a failure for its own `redisRetryMs`, counted from the failure any of them met.
 */
export class RedisHealth {
  /** Per failed node, when it failed (`performance.now()` ms), or PROBING. Empty while Redis answers. */
  readonly #failed = new Map<string, number>();

  /** Whether any node failed lately: the one check of the common path. */
  get troubled(): boolean {
    return this.#failed.size !== 0;
  }

  /**
   * Whether a call to `node` at `now` is decided by the failure policy without trying Redis: the node failed less
   * than `retryMs` ago, or a probe is testing it. Otherwise the call goes to Redis as the probe: the others keep to
   * the policy until its answer, which the caller reports for this same `node` (answered or failed), whichever node
   * the client's slot map names by then.
   */
  skip(node: string, now: number, retryMs: number): boolean {
    const at = this.#failed.get(node);
    if (at === undefined) return false;
    if (now < at + retryMs) return true; // PROBING + retryMs is PROBING
    this.#failed.set(node, PROBING);
    return false;
  }

  /** Redis answered a call to `node` (a reply or an error reply): it is reachable. */
  answered(node: string): void {
    if (this.#failed.size !== 0) this.#failed.delete(node);
  }

  /** A call to `node` failed at `now`: Redis was unreachable (refused, timed out, closed). */
  failed(node: string, now: number): void {
    this.#failed.set(node, now);
  }
}

const healths = new WeakMap<RedisClient, RedisHealth>();

/** The health shared by the limiters of `redis`. */
export function healthOf(redis: RedisClient): RedisHealth {
  let health = healths.get(redis);
  if (health === undefined) {
    health = new RedisHealth();
    healths.set(redis, health);
  }
  return health;
}
