import { readFileSync } from "node:fs";
import type { ConnectionOptions as TlsOptions } from "node:tls";
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import type { RedisClient } from "./client.js";
import {
  CLUSTER_SLOTS_REFRESH_MS,
  DEFAULT_COMMAND_TIMEOUT_MS,
  type UnusableSetting,
  unusableSettings,
} from "./client-safety.js";
import { InvalidArgumentError } from "./errors.js";
import { type CoordisObserver, notifyEvent } from "./observer.js";
import { clientState } from "./script-order.js";
import { guardSentinelClient, safeSentinelOptions } from "./sentinel-failover.js";
import { durationMs, observer as validateObserver, options as validateOptions } from "./validate.js";

export { DEFAULT_COMMAND_TIMEOUT_MS };
/** Connect timeout `connect()` sets unless told otherwise. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** The URL `connect()` uses when none is given. */
export const DEFAULT_URL = "redis://127.0.0.1:6379";

/** Options of {@link connect}. URL query parameters override nothing given here explicitly. */
export interface ConnectOptions {
  /**
   * Every command fails with a timeout (→ `RedisUnavailableError`) when Redis has not answered within this many
   * ms, including commands queued while disconnected. Default {@link DEFAULT_COMMAND_TIMEOUT_MS}.
   */
  commandTimeoutMs?: number;
  /** Time allowed to establish a connection, ms. Default {@link DEFAULT_CONNECT_TIMEOUT_MS}. */
  connectTimeoutMs?: number;
  /** TLS options merged over those from the URL (`ca`, `cert`, `key`, `servername`...). Implies TLS. */
  tls?: TlsOptions;
  /**
   * Extra ioredis options for each connection (standalone, sentinel, or every cluster node). A key set to `undefined`
   * counts as not given (as in ioredis): it never removes one of connect()'s settings. The same for `clusterOptions`.
   */
  redisOptions?: RedisOptions;
  /** Extra ioredis Cluster options (`redis+cluster://` only). */
  clusterOptions?: ClusterOptions;
  /** Receives `connection-error` events instead of ioredis printing "Unhandled error event". */
  observer?: CoordisObserver;
}

/** The keys of {@link ConnectOptions}: any other key is rejected, so a misspelt option never goes unnoticed. */
const CONNECT_OPTION_KEYS: readonly (keyof ConnectOptions)[] = [
  "commandTimeoutMs",
  "connectTimeoutMs",
  "tls",
  "redisOptions",
  "clusterOptions",
  "observer",
];

/** A parsed Coordis Redis URL. */
export interface ParsedRedisUrl {
  readonly kind: "standalone" | "cluster" | "sentinel";
  readonly tls: boolean;
  readonly hosts: ReadonlyArray<{ host: string; port: number }>;
  readonly username?: string;
  readonly password?: string;
  readonly db?: number;
  /** Sentinel master name (`redis+sentinel://` only). */
  readonly masterName?: string;
  readonly params: Readonly<Record<string, string>>;
}

const SCHEMES: Record<string, { kind: ParsedRedisUrl["kind"]; tls: boolean }> = {
  redis: { kind: "standalone", tls: false },
  rediss: { kind: "standalone", tls: true },
  "redis+cluster": { kind: "cluster", tls: false },
  "rediss+cluster": { kind: "cluster", tls: true },
  "redis+sentinel": { kind: "sentinel", tls: false },
  "rediss+sentinel": { kind: "sentinel", tls: true },
};

const KNOWN_PARAMS = new Set([
  "tls_ca",
  "tls_cert",
  "tls_key",
  "tls_servername",
  "tls_reject_unauthorized",
  "command_timeout_ms",
  "connect_timeout_ms",
  "client_name",
  "sentinel_username",
  "sentinel_password",
]);

function bad(message: string): never {
  throw new InvalidArgumentError("url", message);
}

/**
 * What an error message may quote of a URL. A password holding a character it should have percent-encoded (`/`, `?`,
 * `#`, `@`) ends the user info early, and the rest of the password is then read as the host, the path or the query:
 * an error quoting that text would put the password in a log. So nothing from before the URL's last `@` is quoted.
 */
class Shown {
  readonly #secret: string;

  constructor(url: string) {
    const start = url.indexOf("://");
    const at = url.lastIndexOf("@");
    this.#secret = start !== -1 && at > start ? url.slice(start + 3, at) : "";
  }

  /** The whole URL, its user info hidden. */
  url(url: string): string {
    return this.#secret === "" ? url : url.replace(`://${this.#secret}@`, "://<credentials hidden>@");
  }

  /** `"text"`, or a placeholder when `text` may hold part of the user info. */
  part(text: string): string {
    if (this.#secret === "" || (!text.includes("@") && !this.#secret.includes(text))) return `"${text}"`;
    return "a part of the URL (not shown: it may hold part of the password; percent-encode / ? # @ in a password)";
  }
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return bad(`the ${what} is not valid percent-encoding`);
  }
}

function parseHost(text: string, defaultPort: number, shown: Shown): { host: string; port: number } {
  // A URL read from a file or an environment variable may keep its line end or a space: the resolver would look up
  // "localhost\n" forever, every call failing as unavailable, instead of one error naming the URL.
  if (/\s|[^ -~\u0080-\uffff]/.test(text)) {
    bad("a host holds whitespace or a control character: remove it (a URL read from a file may end with a line break)");
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(text);
  if (m === null) bad(`${shown.part(text)} is not a host or host:port`);
  const host = (m[1] as string).replace(/^\[|\]$/g, "");
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) bad(`port ${port} in ${shown.part(text)} is out of range 1-65535`);
  return { host, port };
}

/**
 * Parses a Coordis Redis URL without connecting. Accepted forms:
 * - `redis://[user:password@]host[:port][/db][?params]` and `rediss://` (TLS)
 * - `redis+cluster://[user:password@]h1:p1,h2:p2[?params]` and `rediss+cluster://`
 * - `redis+sentinel://[user:password@]s1:p1,s2:p2/<masterName>[/db][?params]` and `rediss+sentinel://`
 *
 * Query parameters: `tls_ca`, `tls_cert`, `tls_key` (PEM file paths), `tls_servername`,
 * `tls_reject_unauthorized` (`true`/`false`), `command_timeout_ms`, `connect_timeout_ms`, `client_name`,
 * `sentinel_username`, `sentinel_password`. Unknown parameters are rejected, not ignored.
 * @throws InvalidArgumentError naming what is wrong with the URL
 */
export function parseRedisUrl(url: string): ParsedRedisUrl {
  if (typeof url !== "string" || url.length === 0) bad("expected a non-empty string such as redis://127.0.0.1:6379");
  const shown = new Shown(url);
  // The user info ends at the last @ before the path (as WHATWG URLs read it): a password holding an unencoded @ is
  // the password, not part of a host name (which would be looked up, and reported, with a piece of the secret).
  const m = /^([a-zA-Z+]+):\/\/(?:([^/?#]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?(#.*)?$/.exec(url);
  if (m === null) bad(`"${shown.url(url)}" is not a URL of the form scheme://host:port`);
  // Schemes are case-insensitive (RFC 3986 §3.1): REDIS:// is redis://.
  m[1] = (m[1] as string).toLowerCase();
  const scheme = SCHEMES[m[1]];
  if (scheme === undefined) {
    bad(`unsupported scheme "${m[1]}:" (use ${Object.keys(SCHEMES).join(", ")})`);
  }
  if (m[6] !== undefined) bad("a URL fragment (#...) is not allowed");
  let username: string | undefined;
  let password: string | undefined;
  if (m[2] !== undefined) {
    const colon = m[2].indexOf(":");
    const user = colon === -1 ? m[2] : m[2].slice(0, colon);
    username = user === "" ? undefined : decode(user, "username");
    password = colon === -1 ? undefined : decode(m[2].slice(colon + 1), "password");
  }
  const hostList = (m[3] as string).split(",");
  if (hostList.some((h) => h === "")) bad("the host list is empty or has an empty entry");
  if (scheme.kind === "standalone" && hostList.length > 1) {
    bad(`${m[1]}:// takes one host; use redis+cluster:// or redis+sentinel:// for several`);
  }
  const defaultPort = scheme.kind === "sentinel" ? 26379 : 6379;
  const hosts = hostList.map((h) => parseHost(h, defaultPort, shown));

  const pathParts = (m[4] ?? "").split("/").filter((p) => p !== "");
  let db: number | undefined;
  let masterName: string | undefined;
  const parseDb = (text: string) => {
    if (!/^\d{1,5}$/.test(text)) bad(`database ${shown.part(text)} is not a number`);
    return Number(text);
  };
  if (scheme.kind === "sentinel") {
    if (pathParts.length === 0) bad("redis+sentinel:// needs the master name as its path, e.g. /mymaster");
    if (pathParts.length > 2) bad("redis+sentinel:// path is /<masterName>[/<db>]");
    masterName = decode(pathParts[0] as string, "master name");
    if (pathParts[1] !== undefined) db = parseDb(pathParts[1]);
  } else if (scheme.kind === "cluster") {
    if (pathParts.length > 0) bad("redis+cluster:// takes no path: Redis Cluster only has database 0");
  } else {
    if (pathParts.length > 1) bad("the path is the database number, e.g. /0");
    if (pathParts[0] !== undefined) db = parseDb(pathParts[0]);
  }

  const params: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(m[5] ?? "")) {
    if (!KNOWN_PARAMS.has(key)) {
      bad(`unknown query parameter ${shown.part(key)} (known: ${[...KNOWN_PARAMS].join(", ")})`);
    }
    // A repeated parameter would be read as its last value, the others dropped without a word.
    if (Object.hasOwn(params, key)) bad(`query parameter ${shown.part(key)} is given twice: give it once`);
    params[key] = value;
  }
  // Redis refuses a connection name outside ! to ~ (a space, a line break, a non-ASCII letter), and ioredis drops that
  // refusal: the connection would go unnamed without a word.
  if (params.client_name !== undefined && !/^[!-~]*$/.test(params.client_name)) {
    bad(
      `client_name ${shown.part(params.client_name)} may only hold the printable ASCII characters ! to ~ ` +
        "(no spaces; a + in the query is a space): Redis refuses any other connection name",
    );
  }
  if (!scheme.tls && Object.keys(params).some((k) => k.startsWith("tls_"))) {
    bad(`tls_* parameters need a TLS scheme (rediss://...), got ${m[1]}://`);
  }
  return {
    kind: scheme.kind,
    tls: scheme.tls,
    hosts,
    params,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    ...(db === undefined ? {} : { db }),
    ...(masterName === undefined ? {} : { masterName }),
  };
}

function readPem(path: string, param: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    return bad(`${param} file "${path}" cannot be read (${(err as Error).message})`);
  }
}

function tlsFromParams(parsed: ParsedRedisUrl, extra: TlsOptions | undefined): TlsOptions | undefined {
  if (!parsed.tls && extra === undefined) return undefined;
  const p = parsed.params;
  const tls: TlsOptions = {};
  if (p.tls_ca !== undefined) tls.ca = readPem(p.tls_ca, "tls_ca");
  if (p.tls_cert !== undefined) tls.cert = readPem(p.tls_cert, "tls_cert");
  if (p.tls_key !== undefined) tls.key = readPem(p.tls_key, "tls_key");
  if (p.tls_servername !== undefined) tls.servername = p.tls_servername;
  if (p.tls_reject_unauthorized !== undefined) {
    if (p.tls_reject_unauthorized !== "true" && p.tls_reject_unauthorized !== "false") {
      bad(`tls_reject_unauthorized must be "true" or "false", got "${p.tls_reject_unauthorized}"`);
    }
    tls.rejectUnauthorized = p.tls_reject_unauthorized === "true";
  }
  return { ...tls, ...defined(extra) };
}

/**
 * `options` without the keys whose value is `undefined`. ioredis reads such a key as not given (its default applies),
 * and so does connect(): spread over Coordis' settings, `{ commandTimeout: config.timeout }` with no timeout
 * configured would remove the command timeout, `{ autoResendUnfulfilledCommands: undefined }` would turn re-sending
 * back on (ioredis' default), `{ retryDelayOnFailover: undefined }` likewise on a Cluster.
 */
function defined<T extends object>(options: T | undefined): Partial<T> {
  const out: Partial<T> = {};
  if (options == null) return out;
  for (const key of Object.keys(options) as (keyof T)[]) {
    if (options[key] !== undefined) out[key] = options[key];
  }
  return out;
}

function msParam(parsed: ParsedRedisUrl, name: string): number | undefined {
  const text = parsed.params[name];
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) bad(`${name} must be a whole number of milliseconds, got "${text}"`);
  const ms = Number(text);
  if (ms < 1 || ms > 600_000) bad(`${name} must be between 1 and 600000 ms, got ${text}`);
  return ms;
}

/** What to do instead, for an option given to `connect()`. */
const CONNECT_FIX: Record<UnusableSetting["key"], string> = {
  keyPrefix: "leave it out and give the primitives their prefix option",
  stringNumbers: "leave it out",
  replyMapping: 'leave it out (default "legacy")',
};

/**
 * Refuses, before anything is opened, the ioredis options of `options` (named `argument`) that give a client every
 * primitive refuses (see `unusableSettings`) or one without a usable command timeout: an error naming the option
 * here rather than at each primitive, or a call that never settles.
 */
function checkClientOptions(argument: string, options: Record<string, unknown>): void {
  const [unusable] = unusableSettings(options);
  if (unusable !== undefined) {
    throw new InvalidArgumentError(`${argument}.${unusable.key}`, `${unusable.why}: ${CONNECT_FIX[unusable.key]}`);
  }
  if (options.commandTimeout !== undefined) {
    // 0 or less takes the timeout away (a call to a dead server never settles), past 2^31 - 1 Node fires it at once.
    durationMs(`${argument}.commandTimeout`, options.commandTimeout, { min: 1, max: 600_000 });
  }
}

/** ioredis reconnect delay: 50 ms doubling up to 1 s, forever (Coordis never gives up reconnecting). */
function retryStrategy(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1_000);
}

/**
 * Opens an ioredis client from a URL (see {@link parseRedisUrl} for the forms). Without a URL it connects to
 * {@link DEFAULT_URL}. The client has a command timeout (default 2 s), so a dead server surfaces as
 * `RedisUnavailableError` from Coordis operations within that time instead of a hang, and it reconnects forever
 * with a backoff capped at 1 s. A command in flight when its connection dies is not re-sent on the next connection
 * (`autoResendUnfulfilledCommands: false`; on a Cluster client {@link safeClusterOptions}, as ioredis' Cluster
 * re-sends a command whose node connection closed, or that was refused with CLUSTERDOWN): it fails as an unknown
 * outcome instead of running later, a second time, behind its caller's back. Commands issued while disconnected are queued as usual.
 *
 * @example
 * const redis = connect(process.env.REDIS_URL);               // redis://:secret@10.0.0.5:6379/0
 * const cluster = connect("redis+cluster://10.0.0.1:7000,10.0.0.2:7000");
 * @throws InvalidArgumentError when the URL or an option is invalid, or an option is unknown (nothing is opened)
 */
export function connect(url: string = DEFAULT_URL, options: ConnectOptions = {}): RedisClient {
  validateOptions<ConnectOptions>("options", options, CONNECT_OPTION_KEYS);
  validateObserver("options.observer", options.observer);
  const parsed = parseRedisUrl(url);
  const commandTimeout =
    options.commandTimeoutMs !== undefined
      ? durationMs("options.commandTimeoutMs", options.commandTimeoutMs, { min: 1, max: 600_000 })
      : (msParam(parsed, "command_timeout_ms") ?? DEFAULT_COMMAND_TIMEOUT_MS);
  const connectTimeout =
    options.connectTimeoutMs !== undefined
      ? durationMs("options.connectTimeoutMs", options.connectTimeoutMs, { min: 1, max: 600_000 })
      : (msParam(parsed, "connect_timeout_ms") ?? DEFAULT_CONNECT_TIMEOUT_MS);
  const tls = tlsFromParams(parsed, options.tls);
  const redisOptions = defined(options.redisOptions);
  checkClientOptions("options.redisOptions", redisOptions);
  checkClientOptions("options.clusterOptions", defined(options.clusterOptions));
  checkClientOptions("options.clusterOptions.redisOptions", defined(options.clusterOptions?.redisOptions));

  const base: RedisOptions = {
    commandTimeout,
    connectTimeout,
    retryStrategy,
    // A command whose connection died before its reply has an unknown outcome, and its caller has been (or will be)
    // told so by the command timeout. ioredis would otherwise write it again on the next connection, where it can
    // run a second time or long after the caller gave up (a lock taken by nobody, a rate-limit slot consumed twice).
    autoResendUnfulfilledCommands: false,
    ...(parsed.username === undefined ? {} : { username: parsed.username }),
    ...(parsed.password === undefined ? {} : { password: parsed.password }),
    ...(parsed.params.client_name === undefined ? {} : { connectionName: parsed.params.client_name }),
    ...(tls === undefined ? {} : { tls }),
    ...redisOptions,
  };

  let client: RedisClient;
  if (parsed.kind === "cluster") {
    client = new Cluster(
      parsed.hosts.map((h) => ({ host: h.host, port: h.port })),
      {
        clusterRetryStrategy: retryStrategy,
        // ioredis' Cluster re-sends a command whose node connection closed before its answer (after this delay, on
        // a new connection), so a command the server did run would run twice, and one refused with CLUSTERDOWN or
        // TRYAGAIN from a queue of its own, also after the caller timed out and undid it: as with
        // autoResendUnfulfilledCommands, such a command fails instead (safeClusterOptions of client-safety.ts, not
        // imported here: that module imports this one).
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
        // The slot map is read again every 2 s: ioredis refreshes it on MOVED / ASK and when a node's connection
        // closes, but a master that froze or was cut off answers nothing and closes nothing, so after the cluster
        // promoted its replica every call to those slots would keep timing out against the old master.
        slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
        ...defined(options.clusterOptions),
        redisOptions: { ...base, ...defined(options.clusterOptions?.redisOptions) },
      },
    );
  } else if (parsed.kind === "sentinel") {
    client = new Redis({
      // A master that froze or was cut off closes no connection: the client hears of its failover from the sentinels.
      ...safeSentinelOptions,
      sentinelCommandTimeout: commandTimeout,
      // rediss+sentinel://: the sentinels too are spoken to over TLS, with the same options (redisOptions.sentinelTLS
      // overrides them); without it the sentinel password and every sentinel reply went in clear.
      ...(tls === undefined ? {} : { sentinelTLS: tls }),
      ...base,
      sentinels: parsed.hosts.map((h) => ({ host: h.host, port: h.port })),
      name: parsed.masterName as string,
      ...(parsed.db === undefined ? {} : { db: parsed.db }),
      ...(parsed.params.sentinel_username === undefined ? {} : { sentinelUsername: parsed.params.sentinel_username }),
      ...(parsed.params.sentinel_password === undefined ? {} : { sentinelPassword: parsed.params.sentinel_password }),
      ...(tls === undefined ? {} : { enableTLSForSentinelMode: true }),
      sentinelRetryStrategy: retryStrategy,
    });
  } else {
    const host = parsed.hosts[0] as { host: string; port: number };
    client = new Redis({
      ...base,
      host: host.host,
      port: host.port,
      ...(parsed.db === undefined ? {} : { db: parsed.db }),
    });
  }
  // ioredis carries on in database 0 when the SELECT of its handshake fails (a database the server does not have, a
  // user not allowed SELECT, a server still loading): every command would then read and write another database than
  // the URL names. Such a connection is dropped before it is ready and opened again (with the usual backoff), so the
  // commands wait for a connection that did select it, or fail by the command timeout.
  // The database is the URL's, or else redisOptions.db.
  const selects = parsed.kind !== "cluster" && (parsed.db ?? redisOptions.db ?? 0) !== 0;
  client.on("error", (error: Error) => {
    notifyEvent(options.observer, { primitive: "connection", type: "connection-error", error });
    if (selects && (error as { command?: { name?: unknown } }).command?.name === "select") client.disconnect(true);
  });
  if (parsed.kind === "sentinel") {
    guardSentinelClient(client, (error) =>
      notifyEvent(options.observer, { primitive: "connection", type: "connection-error", error }),
    );
  }
  // A command that fails while it waits for the connection is not sent once the connection is back.
  clientState(client);
  return client;
}
