import { performance } from "node:perf_hooks";
import type { RedisClient } from "./client.js";
import { InvalidArgumentError, toCoordisError } from "./errors.js";
import { withCommandDeadline } from "./scripts.js";
import { describeValue } from "./validate.js";

/** What Coordis knows about the Redis server behind a client. */
export interface ServerInfo {
  /** `redis_version` as reported by `INFO server`, e.g. `"7.0.15"`. */
  readonly version: string;
  /** The version as `[major, minor, patch]`. */
  readonly versionParts: readonly [number, number, number];
  /** `redis_mode`: `"standalone"`, `"cluster"` or `"sentinel"`. */
  readonly mode: string;
}

/**
 * How long what {@link serverInfo} read stays current, ms. The server behind a client can change: a Sentinel
 * failover, a rolling upgrade (or downgrade) of Redis, a proxy in front of several. Older than this, it is read
 * again on the next use, in the background (the use decides on what was read before).
 */
export const SERVER_INFO_MAX_AGE_MS = 60_000;

const cache = new WeakMap<RedisClient, Promise<ServerInfo>>();
/** The same, once read, and when: for callers that must decide without a turn of delay. */
const known = new WeakMap<RedisClient, { readonly info: ServerInfo; readonly readAt: number }>();
/** Clients whose server info is being read again in the background. */
const refreshing = new WeakSet<RedisClient>();

/**
 * What {@link serverInfo} read for `redis`, or undefined when it has not read it yet. When that is older than
 * {@link SERVER_INFO_MAX_AGE_MS} it is read again in the background, and this answer is what was read before.
 */
export function knownServerInfo(redis: RedisClient): ServerInfo | undefined {
  const entry = known.get(redis);
  if (entry !== undefined && performance.now() - entry.readAt >= SERVER_INFO_MAX_AGE_MS && !refreshing.has(redis)) {
    refreshing.add(redis);
    cache.delete(redis);
    serverInfo(redis)
      .catch(() => {})
      .finally(() => refreshing.delete(redis));
  }
  return entry?.info;
}

/**
 * Forgets what {@link serverInfo} read for `redis`, so that the next use reads it again: the server answered in a
 * way that contradicts it (a command its version should have, refused as unknown: the client now reaches another,
 * older server).
 */
export function forgetServerInfo(redis: RedisClient): void {
  cache.delete(redis);
  known.delete(redis);
}

/** Parses `INFO` text into a field map (ignores section headers and blank lines). */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.indexOf(":");
    if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1);
  }
  return fields;
}

/** Parses `"7.0.15"` into `[7, 0, 15]` (missing parts are 0). */
export function parseVersion(version: string): [number, number, number] {
  const [a = 0, b = 0, c = 0] = version.split(".").map((p) => Number.parseInt(p, 10) || 0);
  return [a, b, c];
}

/**
 * Reads the server's version and mode of a client (cached, and read again when older than
 * {@link SERVER_INFO_MAX_AGE_MS} or when a server refused a command its version should have; a failed read is
 * retried on the next call). On a cluster it asks one node; Coordis assumes every node runs the same version.
 * @throws RedisUnavailableError when the server cannot be reached.
 */
export function serverInfo(redis: RedisClient): Promise<ServerInfo> {
  knownServerInfo(redis); // read again when it is old (then awaited below)
  let pending = cache.get(redis);
  if (pending === undefined) {
    pending = (async () => {
      try {
        // Bounded as a script call on this client is: one of the user's own without commandTimeout would otherwise
        // wait for ever on a server that stopped answering, and the durable call or primitive behind it with it.
        const text = (await withCommandDeadline(redis, redis.info("server"), "INFO server")) as string;
        const fields = parseInfo(text);
        const version = fields.redis_version ?? "0.0.0";
        const info = { version, versionParts: parseVersion(version), mode: fields.redis_mode ?? "standalone" };
        known.set(redis, { info, readAt: performance.now() });
        return info;
      } catch (err) {
        if (cache.get(redis) === pending) cache.delete(redis);
        throw toCoordisError(err);
      }
    })();
    cache.set(redis, pending);
  }
  return pending;
}

/**
 * True when the server behind `redis` is at least `minVersion` (e.g. `"7.2.0"`). Use it to guard commands newer
 * than Redis 7.0, the version Coordis requires.
 * @throws InvalidArgumentError when `minVersion` is not a dotted version (nothing is sent)
 */
export async function serverAtLeast(redis: RedisClient, minVersion: string): Promise<boolean> {
  if (typeof minVersion !== "string" || !/^\d+(\.\d+){0,2}$/.test(minVersion)) {
    throw new InvalidArgumentError(
      "minVersion",
      `expected a version such as "7.2.0", got ${describeValue(minVersion)}`,
    );
  }
  return versionAtLeast((await serverInfo(redis)).versionParts, minVersion);
}

/** True when `versionParts` is at least `minVersion` (a dotted version, checked by the caller). */
export function versionAtLeast(versionParts: readonly [number, number, number], minVersion: string): boolean {
  const want = parseVersion(minVersion);
  for (let i = 0; i < 3; i++) {
    const have = versionParts[i] as number;
    const need = want[i] as number;
    if (have !== need) return have > need;
  }
  return true;
}
