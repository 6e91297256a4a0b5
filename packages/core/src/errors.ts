/**
 * Base class of every error Coordis throws. `code` is a stable string meant for programs
 * (`if (err.code === "ERR_LOCK_BUSY")`); `message` is for people and may change.
 */
export class CoordisError extends Error {
  /** Stable machine-readable error code, e.g. `ERR_INVALID_ARGUMENT`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A public function was called with an argument it cannot accept. Thrown before any Redis command is sent,
 * so nothing was changed. `argument` names the offending parameter (e.g. `"ttlMs"`, `"options.rules[1].limit"`).
 */
export class InvalidArgumentError extends CoordisError {
  /** Name of the argument (or option path) that was rejected. */
  readonly argument: string;

  constructor(argument: string, message: string) {
    super("ERR_INVALID_ARGUMENT", `Invalid argument "${argument}": ${message}`);
    this.argument = argument;
  }
}

/**
 * Redis could not be reached or could not serve the request: connection refused or closed, command timeout,
 * cluster down, server loading. The original error is in `cause`. The operation may or may not have taken
 * effect on the server when the cause is a timeout or a connection that closed before the reply came (ioredis'
 * `AbortError`, e.g. the unanswered rest of a pipeline): treat it as unknown.
 */
export class RedisUnavailableError extends CoordisError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_REDIS_UNAVAILABLE", message, options);
  }
}

/**
 * Redis refused the request for a reason that retrying will not fix: missing ACL permission (NOPERM),
 * wrong credentials, wrong type at a key, or an error raised inside a Lua script. `script` names the
 * script when there is one; the server's reply is in `cause`.
 */
export class ScriptError extends CoordisError {
  /** Name of the script that failed (`"<package>/<operation>"`), when known. */
  readonly script: string | undefined;
  /** The error text Redis replied with. */
  readonly redisMessage: string;

  constructor(script: string | undefined, redisMessage: string, options?: { cause?: unknown }) {
    super(
      "ERR_SCRIPT",
      script === undefined
        ? `Redis rejected the command: ${redisMessage}`
        : `Redis script "${script}" failed: ${redisMessage}`,
      options,
    );
    this.script = script;
    this.redisMessage = redisMessage;
  }
}

/**
 * The object was closed (`close()` was called) and cannot be used any more. `code` is `ERR_CLOSED` unless the
 * primitive keeps an older, more specific code (`ERR_CACHE_CLOSED`, `ERR_PUBSUB_CLOSED`); test `instanceof
 * ClosedError` to cover every one.
 */
export class ClosedError extends CoordisError {
  /** What was closed: `"Cache"`, `"PubSub"`... */
  readonly what: string;

  constructor(what: string, options?: { code?: string }) {
    super(options?.code ?? "ERR_CLOSED", `this ${what} was closed`);
    this.what = what;
  }
}

/**
 * `String(value)` for an error text; never throws: a value without a string form (a null-prototype object, a
 * `toString` that throws) is described by its type. (validate's `thrownMessage` is the public one; errors.ts imports
 * nothing of validate.ts.)
 */
function textOf(value: unknown): string {
  try {
    return String(value);
  } catch {
    return `a thrown ${value === null ? "null" : typeof value} without a string form`;
  }
}

/**
 * `err` when it is an `Error`, otherwise an `Error` whose message is `String(err)` (for events and reports). Never
 * throws (see {@link textOf}).
 */
export function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(textOf(err));
}

/** Client-side texts (ioredis, Node) that mean no answer; looked for anywhere in the error. */
const UNAVAILABLE_PATTERNS = [
  "Connection is closed",
  "Command timed out",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "Stream isn't writeable",
  "Reached the max retries per request limit",
  "None of startup nodes is available",
  "Failed to refresh slots cache",
  "Cluster isn't ready",
  "Coordis deadline",
  // ioredis' "Command aborted due to connection close": the connection closed after part of a pipeline (or of a
  // transaction) was answered, and the unanswered rest is given up. Those commands may have run.
  "Command aborted",
  // ioredis' Cluster gave up following MOVED / ASK / TRYAGAIN replies (a slot being migrated or moving between nodes):
  // the command did not run, and it may once the slot is stable again.
  "Too many Cluster redirections",
];

/**
 * Redis error replies that mean "not serving right now": only as the reply's leading code. Anywhere else they are
 * text of another error (a script's error naming a key or a board that holds "LOADING" is that script's error).
 * `BUSYGROUP` is not `BUSY`. READONLY (a primary demoted by a failover, until the client finds the new one),
 * NOREPLICAS (fewer replicas than min-replicas-to-write) and MISCONF (writes stopped after a failed save) refuse a
 * write without running it: retrying elsewhere or later is safe, as for the others. OOM (a full `noeviction` server) is a
 * refusal the primitives document as a `ScriptError`: an answer, not an outage.
 */
const UNAVAILABLE_REPLY = /^(?:CLUSTERDOWN|LOADING|MASTERDOWN|TRYAGAIN|BUSY|READONLY|NOREPLICAS|MISCONF)(?:\s|$)/;

/**
 * A `MOVED` / `ASK` reply that reached a caller: ioredis' Cluster client follows them itself, so the client is a
 * standalone one talking to a Redis Cluster node (a `redis://` URL naming a cluster node).
 */
const REDIRECTION_REPLY = /^(?:MOVED|ASK) \d+ /;

/**
 * Error classes that mean "no answer" whatever their text: redis-errors' `AbortError` (what ioredis rejects the
 * unanswered rest of a part-answered pipeline with, among others) and its subclass `InterruptError`.
 */
const UNAVAILABLE_NAMES = new Set(["AbortError", "InterruptError"]);

/**
 * True when `err` means "Redis is not reachable or not serving right now" rather than "Redis said no".
 * Used to decide between {@link RedisUnavailableError} and {@link ScriptError}.
 */
export function isUnavailableCause(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const name = fieldOf(err, "name");
  if (UNAVAILABLE_NAMES.has(name)) return true;
  const message = fieldOf(err, "message");
  if (UNAVAILABLE_REPLY.test(message)) return true;
  const text = `${name} ${message} ${fieldOf(err, "code")}`;
  return UNAVAILABLE_PATTERNS.some((p) => text.includes(p));
}

/**
 * `String(err[field])` (`""` when absent); never throws: a getter that throws (or a Proxy's trap) reads as
 * `undefined`.
 */
function readField(err: Error, field: "name" | "message" | "code"): string | undefined {
  try {
    const value = (err as unknown as Record<string, unknown>)[field];
    return value === undefined || value === null ? "" : String(value);
  } catch {
    return undefined;
  }
}

/** {@link readField}, `""` for a field that cannot be read. */
function fieldOf(err: Error, field: "name" | "message" | "code"): string {
  return readField(err, field) ?? "";
}

/** The error's message for a Coordis error's text; never throws (see {@link readField}, {@link textOf}). */
function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return textOf(err);
  return readField(err, "message") ?? "an error whose message cannot be read";
}

/**
 * Turns anything a Redis call rejected with into a {@link CoordisError}: Coordis errors pass through,
 * connectivity problems become {@link RedisUnavailableError}, server replies become {@link ScriptError}.
 */
export function toCoordisError(err: unknown, script?: string): CoordisError {
  if (err instanceof CoordisError) return err;
  if (isUnavailableCause(err)) {
    const what = script === undefined ? "a command" : `script "${script}"`;
    const detail = messageOf(err);
    return new RedisUnavailableError(`Redis is unavailable while running ${what}: ${detail}`, { cause: err });
  }
  const message = messageOf(err);
  const error = new ScriptError(script, message, { cause: err });
  if (REDIRECTION_REPLY.test(message)) {
    error.message +=
      " (the server is a Redis Cluster node and this client is not a Cluster client: connect with redis+cluster://host:port,... or use an ioredis Cluster)";
  }
  return error;
}
