import { randomBytes } from "node:crypto";
import { isIP, isIPv6 } from "node:net";
import { hostname } from "node:os";

/** Everything a replica reads from its environment. */
export interface DemoConfig {
  /** `PORT`: where this replica listens (0 picks a free port). Default 3000. */
  port: number;
  /** `HOST`: interface to bind. Default `127.0.0.1` (`0.0.0.0` in containers). */
  host: string;
  /** `REPLICA_ID`: this replica's name in responses, job runs and the dashboard. Default `<hostname>:<pid>`. */
  replicaId: string;
  /** `REDIS_URL`: coordination Redis (noeviction). Default `redis://127.0.0.1:6379`. */
  redisUrl: string;
  /** `CACHE_REDIS_URL`: Redis for cached profiles (allkeys-lru); default the coordination Redis. */
  cacheRedisUrl: string | undefined;
  /** `ADMIN_TOKEN`: bearer token of the admin endpoints; unset disables them (401). */
  adminToken: string | undefined;
  /** `COORDIS_PREFIX`: key prefix of everything the demo stores. Default `demo`. */
  prefix: string;
  /** `RATE_LIMIT_BURST` / `RATE_LIMIT_BURST_WINDOW_MS`: the burst rule. Default 10 per 1000 ms. */
  burstLimit: number;
  burstWindowMs: number;
  /** `RATE_LIMIT_DAILY`: the daily rule (per 24 h). Default 1000. */
  dailyLimit: number;
  /**
   * `DASHBOARD_RATE_LIMIT`: requests per minute per client address to the dashboard's data routes, all of them on one
   * budget (a dashboard tab polls about 120 a minute). Default 600.
   */
  dashboardLimit: number;
  /** `SNAPSHOT_EVERY_MS`: period of the "snapshot the top 10" job. Default 10 000. */
  snapshotEveryMs: number;
  /** `ROLLUP_EVERY_MS`: period of the "roll up stats" job. Default 60 000. */
  rollupEveryMs: number;
  /** `BODY_LIMIT`: largest request body in bytes. Default 16 384. */
  bodyLimit: number;
  /** `TRUST_PROXY`: `true` or an address list; set it only behind a proxy you run. Default off. */
  trustProxy: boolean | string;
  /**
   * `API_KEY_SECRET`: the secret API keys are signed with (at least 16 bytes; every replica needs the same). Unset:
   * the first replica creates a random one in Redis and every replica uses it.
   */
  apiKeySecret: string | undefined;
  /** `SSE_MAX_CLIENTS`: open event streams per replica, all addresses together (more: 503). Default 1000. */
  sseMaxClients: number;
  /** `SSE_MAX_PER_ADDRESS`: open event streams per client address (more: 429). Default 8. */
  sseMaxPerAddress: number;
  /**
   * `SSE_MAX_BUFFER_BYTES`: bytes a stream client may have waiting in the replica once its socket buffers are full;
   * a client that falls further behind is disconnected. Default 262 144.
   */
  sseMaxBufferBytes: number;
  /** `LOG_LEVEL`: Fastify (pino) log level. Default `warn`. */
  logLevel: string;
}

/** Every environment variable a replica reads (docker-compose and the launcher set these). */
export const ENV_NAMES = [
  "PORT",
  "HOST",
  "REPLICA_ID",
  "REDIS_URL",
  "CACHE_REDIS_URL",
  "ADMIN_TOKEN",
  "COORDIS_PREFIX",
  "RATE_LIMIT_BURST",
  "RATE_LIMIT_BURST_WINDOW_MS",
  "RATE_LIMIT_DAILY",
  "DASHBOARD_RATE_LIMIT",
  "SNAPSHOT_EVERY_MS",
  "ROLLUP_EVERY_MS",
  "BODY_LIMIT",
  "TRUST_PROXY",
  "API_KEY_SECRET",
  "SSE_MAX_CLIENTS",
  "SSE_MAX_PER_ADDRESS",
  "SSE_MAX_BUFFER_BYTES",
  "LOG_LEVEL",
] as const;

/** The default port of the first replica. */
export const DEFAULT_PORT = 3000;

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** The log levels of Fastify's logger (pino). */
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function logLevelOf(raw: string | undefined): string {
  if (raw === undefined || raw === "") return "warn";
  if (!LOG_LEVELS.includes(raw)) throw new Error(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got "${raw}"`);
  return raw;
}

/** The names Fastify's trustProxy accepts for address ranges, besides addresses and CIDR ranges. */
const PROXY_RANGES = ["loopback", "linklocal", "uniquelocal"];

/** Whether `entry` of a TRUST_PROXY list is a range name, an address, or an address with a prefix length or mask. */
function isProxyEntry(entry: string): boolean {
  if (PROXY_RANGES.includes(entry)) return true;
  const [address = "", range, ...rest] = entry.split("/");
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (range === undefined) return true;
  if (/^\d{1,3}$/.test(range)) return Number(range) <= (family === 4 ? 32 : 128);
  return family === 4 && isIP(range) === 4;
}

function trustProxyOf(raw: string | undefined): boolean | string {
  if (raw === undefined || raw === "" || raw === "false") return false;
  if (raw === "true") return true;
  if (/^\d+$/.test(raw)) {
    // Fastify (5.12) trusts no proxy for a hop count, on purpose: a count cannot tell your proxy from a client that
    // connects directly and writes X-Forwarded-For itself. Said here, rather than every client looking like the proxy.
    throw new Error(
      `TRUST_PROXY=${raw}: a hop count cannot tell your proxy from a client writing X-Forwarded-For itself, and ` +
        "Fastify trusts no proxy for one; give your proxy's address or range instead (uniquelocal for a private " +
        "network such as docker-compose's, loopback for a proxy on the same host)",
    );
  }
  // Checked here, where the variable can be named: Fastify would refuse it only once the replica is being built.
  if (!raw.split(",").every((entry) => isProxyEntry(entry.trim()))) {
    throw new Error(
      `TRUST_PROXY must be true, false or a comma-separated list of addresses, CIDR ranges or ` +
        `${PROXY_RANGES.join(", ")}, got "${raw}"`,
    );
  }
  return raw;
}

/** Printable ASCII, spaces only inside: what an HTTP header value carries back and forth intact. */
const HEADER_TEXT = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/**
 * `ADMIN_TOKEN`, when set: printable ASCII without spaces at either end. A client sends it in a header, whose value
 * loses surrounding whitespace, cannot carry control characters and arrives byte by byte (a UTF-8 token reads as
 * Latin-1): any other token could never be matched, and the admin would get nothing but 401s.
 */
function adminTokenOf(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (!HEADER_TEXT.test(raw)) {
    throw new Error(
      "ADMIN_TOKEN must be printable ASCII (letters, digits, punctuation; spaces only inside): " +
        "a client could never send this token back intact",
    );
  }
  return raw;
}

/**
 * `REPLICA_ID`: every answer carries it in `x-replica-id`, and Node refuses a header value outside Latin-1 (every
 * request would fail), so it is printable ASCII too, at most 100 characters.
 */
function replicaIdOf(raw: string | undefined): string {
  if (raw === undefined || raw === "") return `${hostname()}:${process.pid}`;
  if (raw.length > 100 || !HEADER_TEXT.test(raw)) {
    throw new Error(
      `REPLICA_ID must be 1–100 printable ASCII characters (spaces only inside; it is sent in x-replica-id), got ${JSON.stringify(raw)}`,
    );
  }
  return raw;
}

function secretOf(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (Buffer.byteLength(raw, "utf8") < 16) throw new Error("API_KEY_SECRET must have at least 16 bytes");
  return raw;
}

/**
 * Reads the replica's configuration from the environment (see {@link ENV_NAMES}).
 * @throws Error naming the variable when a value is malformed
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): DemoConfig {
  return {
    port: int(env, "PORT", DEFAULT_PORT, 0, 65_535),
    host: env.HOST || "127.0.0.1",
    replicaId: replicaIdOf(env.REPLICA_ID),
    redisUrl: env.REDIS_URL || "redis://127.0.0.1:6379",
    cacheRedisUrl: env.CACHE_REDIS_URL || undefined,
    adminToken: adminTokenOf(env.ADMIN_TOKEN),
    prefix: env.COORDIS_PREFIX || "demo",
    burstLimit: int(env, "RATE_LIMIT_BURST", 10, 1, 1_000_000),
    burstWindowMs: int(env, "RATE_LIMIT_BURST_WINDOW_MS", 1_000, 1, 86_400_000),
    dailyLimit: int(env, "RATE_LIMIT_DAILY", 1_000, 1, 1_000_000_000),
    dashboardLimit: int(env, "DASHBOARD_RATE_LIMIT", 600, 1, 1_000_000),
    snapshotEveryMs: int(env, "SNAPSHOT_EVERY_MS", 10_000, 100, 86_400_000),
    rollupEveryMs: int(env, "ROLLUP_EVERY_MS", 60_000, 100, 86_400_000),
    bodyLimit: int(env, "BODY_LIMIT", 16_384, 256, 10_485_760),
    trustProxy: trustProxyOf(env.TRUST_PROXY),
    apiKeySecret: secretOf(env.API_KEY_SECRET),
    sseMaxClients: int(env, "SSE_MAX_CLIENTS", 1_000, 1, 1_000_000),
    sseMaxPerAddress: int(env, "SSE_MAX_PER_ADDRESS", 8, 1, 1_000_000),
    sseMaxBufferBytes: int(env, "SSE_MAX_BUFFER_BYTES", 262_144, 4_096, 1_073_741_824),
    logLevel: logLevelOf(env.LOG_LEVEL),
  };
}

/** A random admin token for a local run (the launcher prints it). */
export function randomToken(): string {
  return randomBytes(18).toString("base64url");
}

/**
 * The URL this machine reaches a server listening on `host` (as `HOST` names it) and `port` at: an IPv6 address in
 * brackets (`http://[::1]:3000`), a wildcard address as the loopback one of its family (`0.0.0.0`: `127.0.0.1`, `::`:
 * `[::1]`), a name or IPv4 address as it is.
 */
export function localUrl(host: string, port: number): string {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIPv6(bare)) {
    let address = `[${bare}]`;
    try {
      address = new URL(`http://${address}/`).hostname; // the canonical form: [0:0::0] is [::]
    } catch {
      // a zone id (fe80::1%eth0) is no URL host; keep it bracketed as given
    }
    return `http://${address === "[::]" ? "[::1]" : address}:${port}`;
  }
  if (bare === "0.0.0.0") return `http://127.0.0.1:${port}`;
  return `http://${bare}:${port}`;
}
