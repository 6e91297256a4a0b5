import type { RedisClient } from "./client.js";
import { InvalidArgumentError, toCoordisError } from "./errors.js";
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

const cache = new WeakMap<RedisClient, Promise<ServerInfo>>();
/** The same, once read: for callers that must decide without a turn of delay. */
const known = new WeakMap<RedisClient, ServerInfo>();

/** What {@link serverInfo} read for `redis`, or undefined when it has not read it yet. */
export function knownServerInfo(redis: RedisClient): ServerInfo | undefined {
  return known.get(redis);
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
 * Reads the server's version and mode once per client (cached; a failed read is retried on the next call).
 * On a cluster it asks one node; Coordis assumes every node runs the same version.
 * @throws RedisUnavailableError when the server cannot be reached.
 */
export function serverInfo(redis: RedisClient): Promise<ServerInfo> {
  let pending = cache.get(redis);
  if (pending === undefined) {
    pending = (async () => {
      try {
        const text = (await redis.info("server")) as string;
        const fields = parseInfo(text);
        const version = fields.redis_version ?? "0.0.0";
        const info = { version, versionParts: parseVersion(version), mode: fields.redis_mode ?? "standalone" };
        known.set(redis, info);
        return info;
      } catch (err) {
        cache.delete(redis);
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
