import type { RedisClient } from "@coordis/core";

/**
 * What the rate limiters of one Redis client know of its reachability: the nodes that failed lately (the master of a
 * key's slot on a Cluster, "" otherwise). Shared by every limiter on the client, so an outage costs one command timeout
 * per pause for all of them, not one per limiter (a route's limiter and its ban limiter, every route of a service).
 * Each limiter pauses after a failure for its own `redisRetryMs`, counted from the failure any of them met.
 */
export class RedisHealth {
  /**
   * Per failed node, when it failed (`performance.now()` ms), or minus when a call started probing it (its answer
   * clears or renews the entry). Empty while Redis answers.
   */
  readonly #failed = new Map<string, number>();

  /** Whether any node failed lately: the one check of the common path. */
  get troubled(): boolean {
    return this.#failed.size !== 0;
  }

  /**
   * Whether a call to `node` at `now` is decided by the failure policy without trying Redis: the node failed less
   * than `retryMs` ago, or a probe started less than `retryMs` ago is testing it. Otherwise the call goes to Redis
   * as the probe (the others keep to the policy until its answer, or for `retryMs`: a probe whose answer is credited
   * to another node, the slot having moved meanwhile, never holds a node's calls for longer).
   */
  skip(node: string, now: number, retryMs: number): boolean {
    const at = this.#failed.get(node);
    if (at === undefined) return false;
    if (now < (at < 0 ? -at : at) + retryMs) return true;
    this.#failed.set(node, -now);
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
