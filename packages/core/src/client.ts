import { Cluster, type Redis } from "ioredis";

/** What every Coordis primitive takes: an ioredis standalone/sentinel client or a cluster client. */
export type RedisClient = Redis | Cluster;

/** True when `redis` is an ioredis `Cluster`. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster || (redis as { isCluster?: boolean }).isCluster === true;
}

/**
 * Whether the application closed the client (`quit()`, `disconnect()`): it never answers again, so nothing is worth
 * retrying on it. A client disconnected while it waited to reconnect stays `"reconnecting"` in ioredis (no close event
 * comes any more to end it), with its `manuallyClosing` flag set until the application connects it again; a Cluster
 * that had lost every node stays `"disconnecting"` for good (no node is left whose close would end it).
 */
export function isClosed(redis: RedisClient): boolean {
  const { status, manuallyClosing } = redis as unknown as { status?: string; manuallyClosing?: boolean };
  return status === "end" || (manuallyClosing === true && (status === "reconnecting" || status === "disconnecting"));
}

/** The `commandTimeout` (ms) configured on a client, or `undefined` when it has none. */
export function commandTimeoutOf(redis: RedisClient): number | undefined {
  const options = isCluster(redis) ? redis.options.redisOptions : redis.options;
  const t = options?.commandTimeout;
  return typeof t === "number" && t > 0 ? t : undefined;
}
