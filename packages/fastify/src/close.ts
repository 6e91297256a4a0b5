import { isCluster, type RedisClient } from "@coordis/core";

/**
 * Closes a connection the plugin opened, within `timeoutMs`. A ready connection is asked to QUIT (pending replies
 * arrive first); if that does not finish in time, or the connection is not ready (reconnecting, connecting, waiting),
 * it is cut with `disconnect()`. ioredis emits `end` only when a socket closes, and a client between two reconnect
 * attempts has no socket, so waiting for `end` is bounded too: the close never hangs on a dead Redis.
 */
export async function closeClient(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === "end") return;
  const ended = new Promise<void>((resolve) => redis.once("end", () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const timeout = (ms: number) =>
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    });
  try {
    if (redis.status === "ready") {
      await Promise.race([redis.quit().then(() => ended), timeout(timeoutMs)]).catch(() => undefined);
      clearTimeout(timer);
    }
    if ((redis.status as string) !== "end") {
      redis.disconnect();
      // A cluster's node clients close asynchronously; a standalone client with a live socket ends within a tick.
      await Promise.race([ended, timeout(isCluster(redis) ? timeoutMs : Math.min(timeoutMs, 200))]);
      clearTimeout(timer);
    }
  } finally {
    clearTimeout(timer);
  }
}
