import { InvalidArgumentError, type RedisClient } from "@coordis/core";

/** Longest stall: past the server's `busy-reply-threshold` (5 s) other connections get BUSY errors, not a wait. */
export const MAX_STALL_MS = 4_500;

/**
 * Stalls the server for `ms` (1 – {@link MAX_STALL_MS}): a script spinning on TIME (EVAL and TIME are granted to the
 * Coordis ACL user, unlike DEBUG SLEEP). Commands sent after it on the same connection are surely queued behind it,
 * and other connections wait too. Resolves with 1 when the stall ends, or rejects like any command (e.g. the
 * client's command timeout). For a longer outage, `pause()` the server.
 * @throws InvalidArgumentError for an `ms` out of range
 */
export function stallServer(redis: RedisClient, ms: number): Promise<unknown> {
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_STALL_MS) {
    throw new InvalidArgumentError(
      "ms",
      `expected 1 to ${MAX_STALL_MS} ms, got ${String(ms)}: past the server's busy-reply-threshold (5 s) other ` +
        "connections get BUSY errors instead of waiting; pause() the server for a longer outage",
    );
  }
  return redis.eval(
    "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] " +
      "repeat local t = redis.call('TIME') until t[1] * 1000000 + t[2] - t0 >= tonumber(ARGV[1]) * 1000 return 1",
    0,
    ms,
  );
}
