import { disconnectWithin, isCluster, type RedisClient } from "@coordis/core";

/**
 * Closes a connection the plugin opened, within `timeoutMs`. A ready connection is asked to QUIT (pending replies
 * arrive first); if that does not finish in time, or the connection is not ready (reconnecting, connecting, waiting),
 * it is cut with core's `disconnectWithin`, which never waits for an `end` event a dead Redis never sends.
 */
export async function closeClient(redis: RedisClient, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  if (redis.status === "ready") {
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<void>((resolve) => redis.once("end", () => resolve()));
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([redis.quit().then(() => ended), timeout]).catch(() => undefined);
    } finally {
      clearTimeout(timer);
    }
  }
  // A cluster's node clients close asynchronously; a standalone client with a live socket ends within a tick. What is
  // left of timeoutMs after the QUIT (at least 50 ms): the whole close stays within about timeoutMs.
  const left = Math.max(50, deadline - performance.now());
  await disconnectWithin(redis, isCluster(redis) ? left : Math.min(left, 200));
}
