import type { RedisClient } from "@coordis/core";

/**
 * Stalls the server for `ms`: a script spinning on TIME (EVAL and TIME are granted to the Coordis ACL user, unlike
 * DEBUG SLEEP). Commands sent after it on the same connection are surely queued behind it, and other connections
 * wait too. Resolves with 1 when the stall ends, or rejects like any command (e.g. the client's command timeout).
 */
export function stallServer(redis: RedisClient, ms: number): Promise<unknown> {
  return redis.eval(
    "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] " +
      "repeat local t = redis.call('TIME') until t[1] * 1000000 + t[2] - t0 >= tonumber(ARGV[1]) * 1000 return 1",
    0,
    ms,
  );
}
