import { isCluster, type RedisClient } from "./client.js";
import { InvalidArgumentError } from "./errors.js";

/** How often a Cluster client of {@link safeClusterOptions} (and `connect()`) reads the slot map again, ms. */
export const CLUSTER_SLOTS_REFRESH_MS = 2_000;

/** Command timeout `connect()` sets unless told otherwise: a command unanswered for 2 s fails. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 2_000;

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
 * The ioredis `Cluster` options Coordis relies on, to spread into a Cluster you build yourself (with
 * {@link safeRedisOptions} as its `redisOptions`): `new Cluster(nodes, { ...safeClusterOptions, redisOptions: {
 * ...safeRedisOptions } })`. ioredis' Cluster keeps some commands in a queue of its own and sends them again later,
 * even after the command timeout has told the caller the outcome is unknown (and the caller may have undone it: a
 * lock releases a grant it may have got). A command sent again then can take effect after that undo: a lock held by
 * a token nobody holds, a rate-limit unit taken twice. With these settings such a command fails at once instead.
 * - `retryDelayOnFailover: 0`: a command whose node connection closed before its reply (default: sent again after
 *   100 ms on a new connection, so a command the server did run would run twice).
 * - `retryDelayOnClusterDown: 0`: a command refused with `CLUSTERDOWN` (default: sent again every 100 ms until the
 *   cluster is up).
 * - `retryDelayOnTryAgain: 0`: a command refused with `TRYAGAIN` (a multi-key command during a slot migration) is
 *   sent again at once rather than 100 ms later, well before the caller's timeout.
 * - `slotsRefreshInterval: 2000`: the slot map is read again every 2 s. ioredis has no default for it and reads it
 *   again only on MOVED / ASK or when a node's connection closes; a master that froze or was cut off does neither,
 *   so after its replica was promoted every call to its slots would keep timing out against it.
 *
 * `connect()` sets them already.
 */
export const safeClusterOptions: Readonly<{
  retryDelayOnFailover: 0;
  retryDelayOnClusterDown: 0;
  retryDelayOnTryAgain: 0;
  slotsRefreshInterval: number;
}> = Object.freeze({
  retryDelayOnFailover: 0,
  retryDelayOnClusterDown: 0,
  retryDelayOnTryAgain: 0,
  slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
});

/**
 * The largest `commandTimeout` Coordis accepts without a warning, ms: the most `connect()` accepts
 * (`commandTimeoutMs`). A call to an unreachable Redis waits that long before it fails.
 */
const MAX_SAFE_COMMAND_TIMEOUT_MS = 600_000;

/** The largest delay Node's timers keep: a longer one (or `Infinity`) fires after 1 ms instead. */
const MAX_TIMER_MS = 2_147_483_647;

/** An ioredis setting Coordis cannot work with, and what goes wrong with it. */
export interface UnusableSetting {
  readonly key: "keyPrefix" | "stringNumbers" | "replyMapping";
  readonly why: string;
}

/**
 * The settings of ioredis `options` that make Coordis' calls go wrong (see {@link unsupportedClientOptions}), for a
 * client given to a primitive and for the options given to `connect()` alike.
 */
export function unusableSettings(options: Record<string, unknown>): UnusableSetting[] {
  const found: UnusableSetting[] = [];
  if (options.keyPrefix) {
    found.push({
      key: "keyPrefix",
      why: "ioredis applies it to command keys but not to the keys and channels Coordis names in scripts and arguments (a queue's result() would never hear of its job, a session store's length() would find nothing)",
    });
  }
  if (options.stringNumbers === true) {
    found.push({
      key: "stringNumbers",
      why: "it turns Redis' integer replies into strings where Coordis reads numbers (a rate limiter would allow every call)",
    });
  }
  if (options.replyMapping === "resp3") {
    found.push({
      key: "replyMapping",
      why: "it turns Redis' map replies into objects where Coordis reads arrays (an event-log tail would wait forever)",
    });
  }
  return found;
}

/** What to do instead, for a client given to a primitive. */
const CLIENT_FIX: Record<UnusableSetting["key"], string> = {
  keyPrefix:
    "name Coordis' keys with the primitive's prefix option instead, and give it a client without keyPrefix (redis.duplicate({ keyPrefix: undefined }))",
  stringNumbers: "give it a client without stringNumbers (redis.duplicate({ stringNumbers: false }))",
  replyMapping: 'give it a client with the default mapping (redis.duplicate({ replyMapping: "legacy" }))',
};

/** What `unsupportedClientOptions` reads of a client: ioredis' options and, on a standalone client, its state. */
interface ClientShape {
  readonly options?: {
    readonly keyPrefix?: unknown;
    readonly redisOptions?: Record<string, unknown>;
  } & Record<string, unknown>;
  /** ioredis' connection state: `subscriber` is set once it ran (P|S)SUBSCRIBE; `protocol` is 3 on RESP3. */
  readonly condition?: { readonly subscriber?: unknown; readonly protocol?: unknown } | null;
}

/**
 * The ioredis settings of a client that make Coordis' calls go wrong, not merely unsafe (empty when none), each
 * naming the option and what to do instead. Every primitive refuses such a client at construction (an
 * `InvalidArgumentError`), and {@link assertSafeClient} does too:
 * - `keyPrefix`: ioredis prefixes the keys of commands, but not keys and channels Coordis names inside its scripts
 *   and arguments, nor SCAN patterns: a queue's `result()` never hears of its job (its announcement goes to another
 *   channel than the one subscribed), a session store's `length()` / `all()` find nothing. Coordis' own `prefix`
 *   option names every key and channel.
 * - `stringNumbers`: integer replies arrive as strings, which Coordis reads as numbers: a rate limiter allows every
 *   call, a mutex acquire never returns, a cache read fails with a `SyntaxError`.
 * - `replyMapping: "resp3"`: map replies arrive as objects where Coordis reads arrays: an event-log tail waits
 *   forever.
 * - a `commandTimeout` that is not a finite number of ms up to 2^31 − 1: Node fires the timer after 1 ms, so every
 *   call fails with "Command timed out" while Redis is fine.
 * - a standalone client in subscriber mode on RESP2 (ioredis 5, or `protocol: 2`): ioredis refuses every other
 *   command on it.
 */
export function unsupportedClientOptions(redis: RedisClient): string[] {
  const client = redis as unknown as ClientShape;
  const own = client.options ?? {};
  const options = (isCluster(redis) ? own.redisOptions : own) ?? {};
  const problems: string[] = [];
  const settings: Record<string, unknown> = { ...options, keyPrefix: own.keyPrefix || options.keyPrefix };
  for (const { key, why } of unusableSettings(settings)) {
    const shown =
      key === "keyPrefix"
        ? `keyPrefix ${JSON.stringify(String(settings.keyPrefix))}`
        : `${key}: ${JSON.stringify(settings[key])}`;
    problems.push(`it has ${shown}; ${why}: ${CLIENT_FIX[key]}`);
  }
  const timeout = options.commandTimeout;
  if (typeof timeout === "number" && timeout > 0 && !(timeout <= MAX_TIMER_MS)) {
    problems.push(
      `its commandTimeout ${timeout} is above ${MAX_TIMER_MS} ms, the longest timer Node keeps: Node fires it after 1 ms, so every call would fail with "Command timed out": set commandTimeout to at most ${MAX_SAFE_COMMAND_TIMEOUT_MS} ms (safeRedisOptions has ${DEFAULT_COMMAND_TIMEOUT_MS})`,
    );
  }
  const condition = isCluster(redis) ? undefined : client.condition;
  if (condition?.subscriber && condition.protocol !== 3) {
    problems.push(
      "it is in subscriber mode (it ran SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE) on RESP2, where ioredis refuses every other command: give it a client of its own that subscribes to nothing (redis.duplicate())",
    );
  }
  return problems;
}

/**
 * Throws when a client has a setting Coordis cannot work with (see {@link unsupportedClientOptions}).
 * @param argument the argument name used in the error, e.g. `"options.redis"`
 * @throws InvalidArgumentError naming the option and what to do instead
 */
export function assertSupportedClient(redis: RedisClient, argument = "redis"): void {
  const problems = unsupportedClientOptions(redis);
  if (problems.length === 0) return;
  throw new InvalidArgumentError(argument, `unsupported ioredis client: ${problems.join("; ")}`);
}

/**
 * What is unsafe about a client for Coordis (empty when nothing): it re-sends unanswered commands after a reconnect,
 * or it has no command timeout, or one above 600 000 ms (the most `connect()` accepts), or a setting Coordis cannot
 * work with at all (see {@link unsupportedClientOptions}). For a `Cluster` the per-node `redisOptions` are checked, and its
 * `retryDelayOnFailover`, `retryDelayOnClusterDown` and `retryDelayOnTryAgain` (see {@link safeClusterOptions}), and
 * a `scaleReads` other than `"master"`. Failover options are not among them (see {@link clientFailoverProblems}).
 */
export function clientSafetyProblems(redis: RedisClient): string[] {
  const options = (isCluster(redis) ? redis.options.redisOptions : redis.options) ?? {};
  const problems: string[] = unsupportedClientOptions(redis);
  if (isCluster(redis) && (redis.options.retryDelayOnFailover ?? 100) > 0) {
    problems.push(
      "it re-sends a command whose node connection closed unanswered (retryDelayOnFailover is not 0), so a command Redis ran can run twice",
    );
  }
  if (isCluster(redis) && (redis.options.retryDelayOnClusterDown ?? 100) > 0) {
    problems.push(
      "it re-sends a command refused with CLUSTERDOWN until the cluster is up (retryDelayOnClusterDown is not 0), also after its caller timed out and undid it",
    );
  }
  if (isCluster(redis) && (redis.options.retryDelayOnTryAgain ?? 100) > 0) {
    problems.push(
      "it re-sends a command refused with TRYAGAIN after a delay (retryDelayOnTryAgain is not 0), possibly after its caller timed out and undid it",
    );
  }
  if (options.autoResendUnfulfilledCommands !== false) {
    problems.push(
      "it re-sends unanswered commands after a reconnect (autoResendUnfulfilledCommands is not false), so a call that timed out can still run later",
    );
  }
  const scaleReads = isCluster(redis) ? redis.options.scaleReads : undefined;
  if (scaleReads !== undefined && scaleReads !== "master") {
    problems.push(
      "it sends read commands to replicas (scaleReads is not \"master\"), where a read Coordis makes right after a write (a cache's tag versions, a session, an event log's entries) can find the state from before it",
    );
  }
  const timeout = options.commandTimeout;
  if (typeof timeout !== "number" || !(timeout > 0)) {
    problems.push("it has no commandTimeout, so a call to an unreachable Redis never settles");
  } else if (timeout > MAX_SAFE_COMMAND_TIMEOUT_MS && timeout <= MAX_TIMER_MS) {
    problems.push(
      `its commandTimeout ${timeout} is above ${MAX_SAFE_COMMAND_TIMEOUT_MS} ms, so a call to an unreachable Redis waits that long before it fails`,
    );
  }
  return problems;
}

/**
 * Why a client would not follow a failover away from a master that froze or was cut off (empty when it would). Such
 * a master answers nothing and closes nothing, and ioredis looks for the new master only when a connection closes
 * (or, on a Cluster, on a `MOVED` / `ASK` reply): every call to it then fails by its command timeout for as long as
 * it stays so, though its replica was promoted. No call goes wrong (each fails as `RedisUnavailableError`, its
 * outcome unknown), so these are warned about, not refused by {@link assertSafeClient}:
 * - a `Cluster` without a positive `slotsRefreshInterval` (see {@link safeClusterOptions});
 * - a Sentinel client (`sentinels` set) without `failoverDetector: true` (see `safeSentinelOptions`).
 */
export function clientFailoverProblems(redis: RedisClient): string[] {
  const problems: string[] = [];
  if (isCluster(redis)) {
    const interval = redis.options.slotsRefreshInterval;
    if (typeof interval !== "number" || !(interval > 0)) {
      problems.push(
        "it reads the slot map again only on MOVED / ASK or when a node's connection closes (no slotsRefreshInterval), so after a master that froze or was cut off is replaced by its replica, every call to its slots keeps failing by its timeout",
      );
    }
    return problems;
  }
  const options = (redis as { options?: { sentinels?: unknown; failoverDetector?: unknown } }).options ?? {};
  if (Array.isArray(options.sentinels) && options.sentinels.length > 0 && options.failoverDetector !== true) {
    problems.push(
      "it asks the sentinels for the master only when its connection closes (failoverDetector is not true), so after a master that froze or was cut off is replaced by its replica, every call keeps failing by its timeout",
    );
  }
  return problems;
}

const warnedClients = new WeakSet<object>();

/**
 * Warns once per client, as a Node process warning (`CoordisWarning`, code `COORDIS_UNSAFE_CLIENT`), when a client
 * given to a Coordis primitive lacks the settings Coordis relies on (see {@link clientSafetyProblems}): without a
 * command timeout a call to an unreachable Redis waits for Coordis' own deadline (about 10 s), and a client that
 * re-sends unanswered commands can run a call twice. The primitive still works. A client that would not follow a
 * failover away from a frozen master (see {@link clientFailoverProblems}) gets a warning of its own (code
 * `COORDIS_CLIENT_FAILOVER`). Objects that are not ioredis clients
 * (no `options`) are left alone. A client with a setting Coordis cannot work with is refused instead, every time it is
 * given (see {@link assertSupportedClient}).
 * @throws InvalidArgumentError for a client of {@link unsupportedClientOptions}
 */
export function warnIfUnsafeClient(redis: RedisClient): void {
  if (typeof (redis as { options?: unknown }).options !== "object") return;
  assertSupportedClient(redis);
  if (warnedClients.has(redis)) return;
  warnedClients.add(redis);
  const problems = clientSafetyProblems(redis);
  if (problems.length > 0) {
    process.emitWarning(`Coordis was given an unsafe ioredis client: ${problems.join("; ")}. ${safeClientFix(redis)}`, {
      type: "CoordisWarning",
      code: "COORDIS_UNSAFE_CLIENT",
    });
  }
  const failover = clientFailoverProblems(redis);
  if (failover.length > 0) {
    const fix = isCluster(redis)
      ? "Create it with new Cluster(nodes, { ...safeClusterOptions, ... })"
      : "Create it with new Redis({ ...safeRedisOptions, ...safeSentinelOptions, sentinels, name }) and guardSentinelClient()";
    process.emitWarning(
      `Coordis was given an ioredis client that does not follow a failover away from a frozen master: ${failover.join("; ")}. ${fix} (from @coordis/core), or use connect() of @coordis/core`,
      { type: "CoordisWarning", code: "COORDIS_CLIENT_FAILOVER" },
    );
  }
}

/**
 * Throws when a user-supplied client lacks the settings Coordis relies on (see {@link safeRedisOptions}).
 * @param argument the argument name used in the error, e.g. `"options.redis"`
 * @throws InvalidArgumentError naming the problems and the fix
 */
export function assertSafeClient(redis: RedisClient, argument = "redis"): void {
  const problems = clientSafetyProblems(redis);
  if (problems.length === 0) return;
  throw new InvalidArgumentError(argument, `unsafe client: ${problems.join("; ")}. ${safeClientFix(redis)}`);
}

/** How to build a client like `redis` that Coordis can rely on. */
function safeClientFix(redis: RedisClient): string {
  const fix = isCluster(redis)
    ? "new Cluster(nodes, { ...safeClusterOptions, redisOptions: { ...safeRedisOptions, ... } })"
    : "new Redis({ ...safeRedisOptions, ... })";
  return `Create it with ${fix} (safeRedisOptions and safeClusterOptions from @coordis/core), or use connect() of @coordis/core`;
}
