import { isCluster, type RedisClient } from "./client.js";
import { DEFAULT_COMMAND_TIMEOUT_MS } from "./connect.js";
import { InvalidArgumentError } from "./errors.js";

/**
 * The ioredis options Coordis relies on, to spread into a client you build yourself:
 * `new Redis({ ...safeRedisOptions, host, port })` (or `redisOptions` of a `Cluster`).
 * - `autoResendUnfulfilledCommands: false`: a command whose connection died before its reply is not written again on
 *   the next connection, where it could run a second time or long after its caller gave up (a phantom lock, a
 *   rate-limit unit taken twice). Its caller gets the command timeout instead, as an unknown outcome.
 * - `commandTimeout` ({@link DEFAULT_COMMAND_TIMEOUT_MS}): a command unanswered for 2 s fails, so an outage surfaces as
 *   `RedisUnavailableError` instead of a request that hangs.
 *
 * `connect()` sets both already.
 */
export const safeRedisOptions: Readonly<{ autoResendUnfulfilledCommands: false; commandTimeout: number }> =
  Object.freeze({ autoResendUnfulfilledCommands: false, commandTimeout: DEFAULT_COMMAND_TIMEOUT_MS });

/**
 * The ioredis `Cluster` option Coordis relies on, to spread into a Cluster you build yourself (with
 * {@link safeRedisOptions} as its `redisOptions`): `new Cluster(nodes, { ...safeClusterOptions, redisOptions: {
 * ...safeRedisOptions } })`.
 * - `retryDelayOnFailover: 0`: ioredis' Cluster re-sends a command whose node connection closed before its reply
 *   (after this delay, 100 ms by default, on a new connection), so a command the server did run would run twice (a
 *   unit counted twice, a lock granted to a token nobody holds). With 0 it fails as an unknown outcome instead.
 *
 * `connect()` sets it already.
 */
export const safeClusterOptions: Readonly<{ retryDelayOnFailover: 0 }> = Object.freeze({ retryDelayOnFailover: 0 });

/**
 * What is unsafe about a client for Coordis (empty when nothing): it re-sends unanswered commands after a reconnect,
 * or it has no command timeout. For a `Cluster` the per-node `redisOptions` are checked, and its
 * `retryDelayOnFailover` (see {@link safeClusterOptions}).
 */
export function clientSafetyProblems(redis: RedisClient): string[] {
  const options = (isCluster(redis) ? redis.options.redisOptions : redis.options) ?? {};
  const problems: string[] = [];
  if (isCluster(redis) && (redis.options.retryDelayOnFailover ?? 100) > 0) {
    problems.push(
      "it re-sends a command whose node connection closed unanswered (retryDelayOnFailover is not 0), so a command Redis ran can run twice",
    );
  }
  if (options.autoResendUnfulfilledCommands !== false) {
    problems.push(
      "it re-sends unanswered commands after a reconnect (autoResendUnfulfilledCommands is not false), so a call that timed out can still run later",
    );
  }
  const timeout = options.commandTimeout;
  if (typeof timeout !== "number" || !(timeout > 0)) {
    problems.push("it has no commandTimeout, so a call to an unreachable Redis never settles");
  }
  return problems;
}

/**
 * Throws when a user-supplied client lacks the settings Coordis relies on (see {@link safeRedisOptions}).
 * @param argument the argument name used in the error, e.g. `"options.redis"`
 * @throws InvalidArgumentError naming the problems and the fix
 */
export function assertSafeClient(redis: RedisClient, argument = "redis"): void {
  const problems = clientSafetyProblems(redis);
  if (problems.length === 0) return;
  const fix = isCluster(redis)
    ? "new Cluster(nodes, { ...safeClusterOptions, redisOptions: { ...safeRedisOptions, ... } })"
    : "new Redis({ ...safeRedisOptions, ... })";
  throw new InvalidArgumentError(
    argument,
    `unsafe client: ${problems.join("; ")}. Create it with ${fix} (safeRedisOptions and safeClusterOptions from @coordis/core), or use connect() of @coordis/core`,
  );
}
