import { Cluster, type Redis } from "ioredis";

/** What every Coordis primitive takes: an ioredis standalone/sentinel client or a cluster client. */
export type RedisClient = Redis | Cluster;

/** True when `redis` is an ioredis `Cluster`. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster || (redis as { isCluster?: boolean }).isCluster === true;
}

/**
 * Whether the application closed the client (`quit()`, `disconnect()`): it never answers again, so nothing is worth
 * retrying on it.
 */
export function isClosed(redis: RedisClient): boolean {
  return (redis as { status?: string }).status === "end";
}

/** The `commandTimeout` (ms) configured on a client, or `undefined` when it has none. */
export function commandTimeoutOf(redis: RedisClient): number | undefined {
  const options = isCluster(redis) ? redis.options.redisOptions : redis.options;
  const t = options?.commandTimeout;
  return typeof t === "number" && t > 0 ? t : undefined;
}
