import { DEFAULT_PREFIX, validatePrefix } from "./keys.js";
import * as validate from "./validate.js";

/**
 * Every command Coordis sends or runs inside its Lua scripts (Redis checks each `redis.call()` of a script against
 * the caller's ACL too), as Redis ACL command rules. Grouped: the ioredis handshake and ready check; scripts;
 * pub/sub (the `s…` variants are sharded pub/sub on Cluster); event-log reads and consumer groups sent by the
 * client; then the commands inside the scripts.
 */
export const ACL_COMMAND_RULES: readonly string[] = Object.freeze([
  "+hello",
  "+ping",
  "+info",
  "+client|setname",
  "+select",
  "+evalsha",
  "+eval",
  // Only with the opt-in durability setting (WAIT after a script, one round trip): see durability.ts.
  "+wait",
  "+publish",
  "+subscribe",
  "+unsubscribe",
  "+psubscribe",
  "+punsubscribe",
  "+spublish",
  "+ssubscribe",
  "+sunsubscribe",
  "+xrange",
  "+xrevrange",
  "+xlen",
  "+xread",
  "+xreadgroup",
  "+xack",
  "+xgroup|create",
  "+xinfo|stream",
  "+xinfo|groups",
  "+xinfo|consumers",
  "+hmget",
  "+time",
  "+get",
  "+set",
  "+del",
  "+exists",
  "+incr",
  "+incrby",
  "+pexpire",
  "+pexpireat",
  "+pttl",
  "+hget",
  "+hset",
  "+hdel",
  "+hexists",
  "+hincrby",
  "+hsetnx",
  "+hlen",
  "+hscan",
  "+lpush",
  "+lrange",
  "+ltrim",
  "+xadd",
  "+xdel",
  "+xtrim",
  "+xautoclaim",
  "+xclaim",
  "+xpending",
  "+zadd",
  "+zcard",
  "+zrange",
  "+zrevrange",
  "+zrank",
  "+zrevrank",
  "+zrem",
  "+zpopmin",
  "+zremrangebyscore",
  "+zscore",
]);

/**
 * What ioredis' Cluster client adds on Redis Cluster: it reads the slot map (`CLUSTER SLOTS`), checks the cluster
 * state before it reports ready (`CLUSTER INFO`; without it the client never becomes ready) and follows `ASK`
 * redirections during resharding (`ASKING`).
 */
export const ACL_CLUSTER_RULES: readonly string[] = Object.freeze(["+cluster|slots", "+cluster|info", "+asking"]);

const ACL_RULES_OPTION_KEYS: readonly (keyof AclRulesOptions)[] = ["prefix", "cluster", "waitAof"];

/** Options of {@link aclRules}. */
export interface AclRulesOptions {
  /** The `prefix` the primitives are given; default `"coordis"`. Several prefixes: one pattern pair each. */
  prefix?: string | readonly string[];
  /** Add the rules ioredis needs on Redis Cluster ({@link ACL_CLUSTER_RULES}). Default false. */
  cluster?: boolean;
  /**
   * Add `+waitaof`, used by the durability setting with `aof` on Redis ≥ 7.2. Default false: Redis 7.0 and 7.1 do
   * not know the command and refuse an ACL rule naming it.
   */
  waitAof?: boolean;
}

/**
 * The least-privilege ACL rules for a Coordis user: only keys and pub/sub channels under the prefix
 * (`~<prefix>:*`, `&<prefix>:*`) and only the commands Coordis needs. Use them in an ACL file
 * (`user coordis on >secret <rules>`) or at run time (`ACL SETUSER coordis reset on >secret <rules>`).
 * Administrative commands (`KEYS`, `SCAN`, `FLUSH*`, `CONFIG`, `SCRIPT`, `MONITOR`, `DEBUG`, `ACL`...) stay refused.
 *
 * @example
 * await admin.call("ACL", "SETUSER", "coordis", "reset", "on", ">secret", ...aclRules({ prefix: "myapp" }));
 * const redis = connect("redis://coordis:secret@10.0.0.5:6379");
 * @throws InvalidArgumentError for an invalid prefix, a flag that is not a boolean or an unknown option
 */
export function aclRules(options: AclRulesOptions = {}): string[] {
  // Checked whole: a misspelt `waitaof` or `clusters` would otherwise leave out rules the user asked for.
  validate.options("options", options, ACL_RULES_OPTION_KEYS);
  validate.optional(options.cluster, false, (v) => validate.boolean("options.cluster", v));
  validate.optional(options.waitAof, false, (v) => validate.boolean("options.waitAof", v));
  const prefixes = options.prefix === undefined ? [DEFAULT_PREFIX] : [options.prefix].flat();
  prefixes.forEach((p, i) => {
    validatePrefix(p, Array.isArray(options.prefix) ? `options.prefix[${i}]` : "options.prefix");
  });
  return [
    "resetkeys",
    ...prefixes.map((p) => `~${p}:*`),
    "resetchannels",
    ...prefixes.map((p) => `&${p}:*`),
    "-@all",
    ...ACL_COMMAND_RULES,
    ...(options.cluster === true ? ACL_CLUSTER_RULES : []),
    ...(options.waitAof === true ? ["+waitaof"] : []),
  ];
}
