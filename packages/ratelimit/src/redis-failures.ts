import { RedisUnavailableError, ScriptError } from "@coordis/core";

/**
 * Redis out of memory (maxmemory reached, noeviction) refused the write before any of it happened: for a rate limit
 * that is Redis unavailable (the failure policy decides a consume; a reset rejects as in an outage).
 */
export function unavailableIfFull(err: unknown): unknown {
  if (err instanceof ScriptError && err.redisMessage.startsWith("OOM ")) {
    return new RedisUnavailableError(`Redis refused the write: ${err.redisMessage}`, { cause: err });
  }
  return err;
}

/** Whether a multi-key call failed because a slot migration split its keys (TRYAGAIN, or redirected until given up). */
export function splitByMigration(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (/\bTRYAGAIN\b|Too many Cluster redirections/.test(e.message)) return true;
  }
  return false;
}
