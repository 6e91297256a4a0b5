import {
  type CoordisObserver,
  DEFAULT_PREFIX,
  type Durability,
  type DurabilityOptions,
  InvalidArgumentError,
  isCluster,
  parseDurability,
  type RedisClient,
  validate,
  validatePrefix,
} from "@coordis/core";

/** Default lease time to live: 30 s. */
export const DEFAULT_TTL_MS = 30_000;
/** Longest lease time to live and longest wait: 24 h (Node timers cannot reach much further than 24.8 days). */
export const MAX_LOCK_MS = 24 * 60 * 60 * 1000;
/**
 * Shortest `ttlMs`: 10 ms. A lease's validity is its ttl less the clock-drift allowance (`ttlMs * driftFactor + 2`
 * ms), which leaves nothing of a ttl of 1 or 2 ms: every acquire would give its grant up as expired.
 */
export const MIN_LOCK_MS = 10;
/** Default `waitMs` of `acquire()` and `using()`: 10 s. */
export const DEFAULT_WAIT_MS = 10_000;
/** Default clock-drift factor: the local validity of a lease is shortened by `ttlMs * 0.01 + 2` ms. */
export const DEFAULT_DRIFT_FACTOR = 0.01;
/** Tokens are 128 random bits. */
export const TOKEN_BYTES = 16;

/** The keys every lock constructor accepts (each primitive adds its own). */
export const COMMON_KEYS = ["ttlMs", "prefix", "observer", "durability"] as const;
const ACQUIRE_KEYS = ["waitMs", "signal"] as const;
const USING_KEYS = [...ACQUIRE_KEYS, "autoExtend"] as const;

/** Options every lock constructor takes. */
export interface CommonLockOptions {
  /** Lease time to live, ms (10 ms to 24 h). Default 30 000. */
  ttlMs?: number;
  /** Key prefix; default `"coordis"`. */
  prefix?: string;
  /** Receives acquire/extend/release operations and `lease-lost` events. */
  observer?: CoordisObserver;
  /**
   * Opt-in: an acquisition (and an extension, and Redlock's fence raise) counts only once `replicas` replicas
   * acknowledged it (`WAIT`, sent behind the script in the same round trip), and with `aof` once it was fsynced
   * (`WAITAOF`, Redis ≥ 7.2), within `timeoutMs`. Costs the replication round trip on every acquire and extend.
   * A won acquisition that is not confirmed in time is released and the attempt counts as failed
   * (`DurabilityError`, retried until `waitMs` like an unreachable Redis); an unconfirmed extension throws
   * `DurabilityError` and leaves the lease's local deadline where it was (earlier when it asked for a shorter time to
   * live, which the primary ran). Default: none (asynchronous replication).
   */
  durability?: DurabilityOptions;
}

/** Options of `acquire()`. */
export interface AcquireOptions {
  /**
   * How long to wait for a busy lock, or for a Redis that does not answer (a restart, a dropped connection), ms
   * (0 = one attempt). Default 10 000.
   */
  waitMs?: number;
  /** Aborting it stops waiting at once: `acquire()` rejects with `signal.reason` and nothing stays held. */
  signal?: AbortSignal;
}

/** Options of `using()`. */
export interface UsingOptions extends AcquireOptions {
  /** Extend the lease every `ttlMs / 3` while the routine runs. Default true. */
  autoExtend?: boolean;
}

/** Validates a lease TTL. @throws InvalidArgumentError */
export function validateTtl(value: unknown, argument: string): number {
  return validate.durationMs(argument, value, { min: MIN_LOCK_MS, max: MAX_LOCK_MS });
}

/** Validates the options shared by every lock constructor. @throws InvalidArgumentError */
export function parseCommon(
  raw: CommonLockOptions,
  clients: readonly RedisClient[],
  argument = "options",
): { ttlMs: number; prefix: string; observer: CoordisObserver | undefined; durability: Durability | undefined } {
  const ttlMs = raw.ttlMs === undefined ? DEFAULT_TTL_MS : validateTtl(raw.ttlMs, `${argument}.ttlMs`);
  const prefix = raw.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(raw.prefix, `${argument}.prefix`);
  const observer = validate.observer(`${argument}.observer`, raw.observer);
  const durability = parseDurability(`${argument}.durability`, raw.durability, clients);
  if (durability !== undefined && durability.timeoutMs >= ttlMs) {
    throw new InvalidArgumentError(
      `${argument}.durability.timeoutMs`,
      `${durability.timeoutMs} ms must be below ttlMs (${ttlMs} ms): a lease would expire while its acquisition is confirmed`,
    );
  }
  return { ttlMs, prefix, observer, durability };
}

/**
 * Validates the options of a lock constructor whole: `raw` must be an object whose keys are {@link COMMON_KEYS} or
 * one of `extraKeys` (an unknown key is an `InvalidArgumentError` naming it).
 * @throws InvalidArgumentError
 */
export function parseLockOptions<T extends CommonLockOptions>(
  raw: unknown,
  extraKeys: readonly string[] = NO_KEYS,
  argument = "options",
): Partial<T> {
  let allowed = allowedKeys.get(extraKeys);
  if (allowed === undefined) {
    allowed = [...COMMON_KEYS, ...extraKeys];
    allowedKeys.set(extraKeys, allowed);
  }
  return validate.options<T>(argument, raw, allowed);
}

const NO_KEYS: readonly string[] = [];
/** The allowed keys per list of extra keys (each primitive passes one constant list): built once, not per call. */
const allowedKeys = new WeakMap<readonly string[], readonly string[]>();

/**
 * Validates `acquire()` options (`using` false) or `using()` options (`using` true, `autoExtend` allowed), unknown
 * keys included. @throws InvalidArgumentError
 */
export function parseAcquire(
  raw: unknown,
  using: boolean,
  argument = "options",
): { waitMs: number; signal: AbortSignal | undefined; autoExtend: boolean } {
  const o = validate.options<UsingOptions>(argument, raw, using ? USING_KEYS : ACQUIRE_KEYS);
  const waitMs =
    o.waitMs === undefined
      ? DEFAULT_WAIT_MS
      : validate.durationMs(`${argument}.waitMs`, o.waitMs, { min: 0, max: MAX_LOCK_MS });
  const signal = validate.abortSignal(`${argument}.signal`, o.signal);
  const autoExtend = o.autoExtend === undefined ? true : validate.boolean(`${argument}.autoExtend`, o.autoExtend);
  return { waitMs, signal, autoExtend };
}

/** `host:port` of one of a Cluster client's startup nodes (a port, `"host:port"`, a `redis://` URL or `{ host, port }`). */
function seedOf(node: unknown): string {
  if (typeof node === "number") return `localhost:${node}`;
  if (typeof node === "string") {
    if (/^\d+$/.test(node)) return `localhost:${node}`;
    try {
      const url = new URL(node.includes("://") ? node : `redis://${node}`);
      return `${url.hostname === "" ? "localhost" : url.hostname}:${url.port === "" ? 6379 : url.port}`;
    } catch {
      return node;
    }
  }
  const o = (node ?? {}) as { host?: string; port?: number };
  return `${o.host ?? "localhost"}:${o.port ?? 6379}`;
}

/**
 * The servers a client's options name, one text per way to reach one: its Sentinel master by each sentinel, its
 * socket, host:port; a Cluster client's startup nodes (two clients seeded with one node reach one cluster).
 */
function serversOf(redis: RedisClient): string[] {
  if (isCluster(redis)) {
    // ioredis keeps the nodes a Cluster was created with as `startupNodes` (not part of its typed API).
    const seeds = (redis as unknown as { startupNodes?: unknown }).startupNodes;
    return Array.isArray(seeds) ? seeds.map(seedOf) : [];
  }
  const o = redis.options;
  if (o.sentinels !== undefined && o.sentinels !== null && o.sentinels.length > 0) {
    return o.sentinels.map(
      (s) => `the Sentinel master "${o.name}" (sentinel ${s.host ?? "localhost"}:${s.port ?? 26379})`,
    );
  }
  if (typeof o.path === "string" && o.path !== "") return [`the socket ${o.path}`];
  return [`${o.host ?? "localhost"}:${o.port ?? 6379}`];
}

/**
 * Redlock's nodes: an array of 1 to `max` clients, each a different client whose options name a different server
 * (the same host and port, socket, Sentinel master through a shared sentinel, or a Cluster's startup node is
 * refused): Redlock's quorum counts each node once, so one server counted twice lets a lock be granted by fewer
 * independent masters than the majority it promises. Only what the options say is compared (two names of one host, a
 * proxy, or Cluster clients seeded with different nodes of one cluster are not recognised).
 * @throws InvalidArgumentError("nodes" or "nodes[i]")
 */
export function validateRedlockNodes(nodes: readonly RedisClient[], max: number): void {
  if (!Array.isArray(nodes) || nodes.length < 1 || nodes.length > max) {
    throw new InvalidArgumentError("nodes", `expected an array of 1 to ${max} Redis clients`);
  }
  // Every index, holes of a sparse array included (forEach skips them: [a, , c] passed as three masters).
  for (let i = 0; i < nodes.length; i++) validate.redisClient(`nodes[${i}]`, nodes[i]);
  if (new Set(nodes).size !== nodes.length) {
    throw new InvalidArgumentError("nodes", "the same client appears twice; each must reach a different master");
  }
  const seen = new Map<string, number>();
  nodes.forEach((node, i) => {
    for (const server of serversOf(node)) {
      const first = seen.get(server);
      if (first !== undefined && first !== i) {
        throw new InvalidArgumentError(
          "nodes",
          `nodes[${first}] and nodes[${i}] both connect to ${server}; each node must reach a different, independent master (the quorum counts each node once); for one server, pass it once or use a Mutex`,
        );
      }
      seen.set(server, i);
    }
  });
}
