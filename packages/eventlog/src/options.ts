/**
 * Options of the log itself and of its calls ({@link EventLog}, `append`, `read`, `deadLetters`, `tail`): the public
 * option types, their limits and defaults, and their parsing (each options object checked as a whole, unknown keys
 * rejected). The consumer-group options are in `consumer-options.ts`.
 */
import {
  type BatchOptions,
  type BatchSettings,
  batchSettings,
  type CoordisObserver,
  DEFAULT_PREFIX,
  type Durability,
  type DurabilityOptions,
  InvalidArgumentError,
  parseDurability,
  type RedisClient,
  validate,
  validatePrefix,
} from "@coordis/core";
import { type ChainMode, type ChainOption, parseChain } from "./chain.js";
import { validateStreamId } from "./entries.js";

/** Default largest encoded event, in bytes (1 MiB). */
export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;
/** Default time an idempotency key is remembered: 24 hours. */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;
/** Largest `limit` of {@link EventLog.read}. */
export const MAX_READ_LIMIT = 1_000;
/** Longest idempotency key, in UTF-8 bytes. */
export const MAX_IDEMPOTENCY_KEY_BYTES = 512;

/** What read() and tail() do with an entry that is not a valid link of a chained log. */
export type UnverifiedMode = "reject" | "mark" | "skip";

/** Options of {@link EventLog}. */
export interface EventLogOptions {
  /** Keep about this many entries (XTRIM MAXLEN ~: at least this many, trimmed in whole stream nodes). */
  maxLen?: number;
  /** Trim entries older than this many ms (server time; XTRIM MINID ~, approximate like `maxLen`). */
  maxAgeMs?: number;
  /**
   * Chain every entry for tamper evidence ({@link EventLog.verify}): `true` = SHA-1 chain computed inside Redis
   * (detects naive tampering; anyone with write access to Redis can rewrite it consistently), or
   * `{ key, keyId, previousKeys? }` = HMAC-SHA256 chain under a key only the application holds (write access to
   * Redis is not enough to forge it). Default false. See the README's threat model.
   */
  chain?: ChainOption;
  /**
   * What `read()` and `tail()` of a chained log do with an entry that is not a valid link of the chain: `"reject"`
   * (default: throw {@link UnverifiedEntryError}), `"mark"` (return it with `verified: false` and
   * `unverifiedReason`), `"skip"` (leave it out). Valid entries carry `verified: true`.
   */
  unverified?: UnverifiedMode;
  /**
   * An idempotency key used again with a different payload: `"error"` (default) rejects the append with
   * {@link IdempotencyConflictError}; `"report"` resolves `{ id, duplicate: true, conflict: true }`. Nothing is
   * appended either way.
   */
  idempotencyConflict?: "error" | "report";
  /** Key prefix; default `"coordis"`. The stream is `<prefix>:log:{<name>}`. */
  prefix?: string;
  /** Receives `append` / `read` operations and consumer events. */
  observer?: CoordisObserver;
  /** Largest JSON-encoded event in bytes (1 B – 64 MiB); default {@link DEFAULT_MAX_EVENT_BYTES}. */
  maxEventBytes?: number;
  /** How long an idempotency key is remembered, ms; default {@link DEFAULT_IDEMPOTENCY_WINDOW_MS}. */
  idempotencyWindowMs?: number;
  /**
   * Micro-batching of {@link EventLog.append} (off by default): appends issued in the same event-loop turn (or
   * within `maxDelayMs`) go to Redis as one script call, applied in call order, each exactly as an unbatched append
   * (idempotency, sequence, chain, retention), each caller with its own result or error. `true` =
   * `{ maxSize: 32, maxDelayMs: 0 }`. See the README's "Micro-batching".
   */
  batch?: boolean | BatchOptions;
  /**
   * Opt-in: an append resolves only once `replicas` replicas acknowledged it (`WAIT`, sent behind the append script
   * in the same round trip) and, with `aof`, once it was fsynced (`WAITAOF`, Redis ≥ 7.2), within `timeoutMs`;
   * otherwise it rejects with `DurabilityError` (the entry may still be in the log: retry with the same idempotency
   * key). Not combinable with `batch`. Default: none (asynchronous replication).
   */
  durability?: DurabilityOptions;
}

/** Options of {@link EventLog.append}. */
export interface AppendOptions {
  /**
   * Appends at most once per key within the log's idempotency window: a repeat returns the first append's id with
   * `duplicate: true` and appends nothing. 1–512 UTF-8 bytes.
   */
  idempotencyKey?: string;
}

/** Options of {@link EventLog.read}. Cursors are exclusive stream ids. */
export interface ReadOptions {
  /** Only entries after this id. */
  after?: string;
  /** Only entries before this id. */
  before?: string;
  /** Page size, 1–1000; default 100. */
  limit?: number;
  /** Newest first. */
  reverse?: boolean;
  /** Chained logs: what to do with an entry that is not a valid link; default the log's `unverified` option. */
  unverified?: UnverifiedMode;
}

/** Options of {@link EventLog.deadLetters}. */
export interface DeadLetterOptions {
  /** Only dead letters after this id (exclusive). */
  after?: string;
  /** Most dead letters returned, 1–1000; default 100. */
  limit?: number;
}

/** Options of {@link EventLog.tail}. */
export interface TailOptions {
  /**
   * Where to start: `"end"` (default: only entries appended from now on), `"start"` (the oldest kept entry), or an
   * entry id (entries after it; a {@link GapError} is thrown when some of them were already trimmed or deleted, or
   * when the log was lost and started over after it: its entry is gone and the log now begins after it).
   */
  from?: string;
  /**
   * Ends the iteration (without an error) when aborted: the pending `next()` resolves `{ done: true }` at once, without
   * waiting for Redis (also when the client is stuck reconnecting). Ending the loop (`break`, `return()`) does the same.
   */
  signal?: AbortSignal;
  /** How long one blocking XREAD waits, ms (10–60,000); default 1000. */
  blockMs?: number;
  /** Entries fetched per XREAD (1–1000); default 100. */
  batch?: number;
  /** Chained logs: what to do with an entry that is not a valid link; default the log's `unverified` option. */
  unverified?: UnverifiedMode;
}

const UNVERIFIED_MODES = ["reject", "mark", "skip"] as const;

const OPTION_KEYS: readonly (keyof EventLogOptions)[] = [
  "maxLen",
  "maxAgeMs",
  "chain",
  "unverified",
  "idempotencyConflict",
  "prefix",
  "observer",
  "maxEventBytes",
  "idempotencyWindowMs",
  "batch",
  "durability",
];
const BATCH_KEYS: readonly (keyof BatchOptions)[] = ["maxSize", "maxDelayMs"];
const APPEND_KEYS: readonly (keyof AppendOptions)[] = ["idempotencyKey"];
const READ_KEYS: readonly (keyof ReadOptions)[] = ["after", "before", "limit", "reverse", "unverified"];
const DEAD_LETTER_KEYS: readonly (keyof DeadLetterOptions)[] = ["after", "limit"];
const TAIL_KEYS: readonly (keyof TailOptions)[] = ["from", "signal", "blockMs", "batch", "unverified"];

/** {@link EventLogOptions} after validation, defaults filled in. */
export interface EventLogSettings {
  readonly prefix: string;
  readonly maxLen: number;
  readonly maxAgeMs: number;
  readonly chainMode: ChainMode | undefined;
  readonly unverified: UnverifiedMode;
  readonly conflict: "error" | "report";
  readonly observer: CoordisObserver | undefined;
  readonly maxEventBytes: number;
  readonly windowMs: number;
  readonly batch: BatchSettings | undefined;
  readonly durability: Durability | undefined;
}

function unverifiedMode(argument: string, value: unknown, fallback: UnverifiedMode): UnverifiedMode {
  return value === undefined ? fallback : validate.oneOf(argument, value, UNVERIFIED_MODES);
}

/**
 * Validates the options of `new EventLog(redis, name, options)` as a whole: unknown keys (also inside `chain`,
 * `batch` and `durability`) are rejected too.
 * @throws InvalidArgumentError naming the option
 */
export function parseEventLogOptions(raw: unknown, redis: RedisClient): EventLogSettings {
  const o = validate.options<EventLogOptions>("options", raw, OPTION_KEYS);
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(o.prefix, "options.prefix");
  const maxLen = o.maxLen === undefined ? 0 : validate.positiveInteger("options.maxLen", o.maxLen);
  const maxAgeMs = o.maxAgeMs === undefined ? 0 : validate.durationMs("options.maxAgeMs", o.maxAgeMs);
  const chainMode = parseChain(o.chain);
  const unverified = unverifiedMode("options.unverified", o.unverified, "reject");
  const conflict =
    o.idempotencyConflict === undefined
      ? "error"
      : validate.oneOf("options.idempotencyConflict", o.idempotencyConflict, ["error", "report"] as const);
  const observer = validate.observer("options.observer", o.observer);
  const maxEventBytes =
    o.maxEventBytes === undefined
      ? DEFAULT_MAX_EVENT_BYTES
      : validate.positiveInteger("options.maxEventBytes", o.maxEventBytes, 64 * 1024 * 1024);
  const windowMs =
    o.idempotencyWindowMs === undefined
      ? DEFAULT_IDEMPOTENCY_WINDOW_MS
      : validate.durationMs("options.idempotencyWindowMs", o.idempotencyWindowMs);
  if (o.batch !== null && typeof o.batch === "object" && !Array.isArray(o.batch)) {
    validate.options("options.batch", o.batch, BATCH_KEYS);
  }
  const batch = batchSettings("options.batch", o.batch);
  const durability = parseDurability("options.durability", o.durability, [redis]);
  if (durability !== undefined && batch !== undefined) {
    throw new InvalidArgumentError("options.durability", "cannot be combined with options.batch");
  }
  if (chainMode?.keyed === true && batch !== undefined) {
    throw new InvalidArgumentError("options.batch", "cannot be combined with a keyed chain");
  }
  return Object.freeze({
    prefix,
    maxLen,
    maxAgeMs,
    chainMode,
    unverified,
    conflict,
    observer,
    maxEventBytes,
    windowMs,
    batch,
    durability,
  });
}

/**
 * Validates append()'s options as a whole.
 * @returns the idempotency key, if any
 */
export function parseAppendOptions(raw: unknown): string | undefined {
  const o = validate.options<AppendOptions>("options", raw, APPEND_KEYS);
  return o.idempotencyKey === undefined
    ? undefined
    : validate.string("options.idempotencyKey", o.idempotencyKey, { maxBytes: MAX_IDEMPOTENCY_KEY_BYTES });
}

/** {@link ReadOptions} after validation. */
export interface ReadSettings {
  readonly after: string | undefined;
  readonly before: string | undefined;
  readonly limit: number;
  readonly reverse: boolean;
  readonly unverified: UnverifiedMode;
}

/** Validates read()'s options as a whole; `unverified` defaults to the log's. */
export function parseReadOptions(raw: unknown, unverified: UnverifiedMode): ReadSettings {
  const o = validate.options<ReadOptions>("options", raw, READ_KEYS);
  return {
    after: o.after === undefined ? undefined : validateStreamId("options.after", o.after),
    before: o.before === undefined ? undefined : validateStreamId("options.before", o.before),
    limit: o.limit === undefined ? 100 : validate.positiveInteger("options.limit", o.limit, MAX_READ_LIMIT),
    reverse: o.reverse === undefined ? false : validate.boolean("options.reverse", o.reverse),
    unverified: unverifiedMode("options.unverified", o.unverified, unverified),
  };
}

/** Validates deadLetters()'s options as a whole. */
export function parseDeadLetterOptions(raw: unknown): { readonly after: string | undefined; readonly limit: number } {
  const o = validate.options<DeadLetterOptions>("options", raw, DEAD_LETTER_KEYS);
  return {
    after: o.after === undefined ? undefined : validateStreamId("options.after", o.after),
    limit: o.limit === undefined ? 100 : validate.positiveInteger("options.limit", o.limit, MAX_READ_LIMIT),
  };
}

/** {@link TailOptions} after validation. */
export interface TailSettings {
  /** `"end"`, `"start"` or a stream id. */
  readonly from: string;
  readonly signal: AbortSignal | undefined;
  readonly blockMs: number;
  readonly batch: number;
  readonly unverified: UnverifiedMode;
}

/** Validates tail()'s options as a whole; `unverified` defaults to the log's. */
export function parseTailOptions(raw: unknown, unverified: UnverifiedMode): TailSettings {
  const o = validate.options<TailOptions>("options", raw, TAIL_KEYS);
  return {
    from:
      o.from === undefined || o.from === "end" || o.from === "start"
        ? (o.from ?? "end")
        : validateStreamId("options.from", o.from),
    signal: validate.abortSignal("options.signal", o.signal),
    blockMs:
      o.blockMs === undefined ? 1_000 : validate.durationMs("options.blockMs", o.blockMs, { min: 10, max: 60_000 }),
    batch: o.batch === undefined ? 100 : validate.positiveInteger("options.batch", o.batch, 1_000),
    unverified: unverifiedMode("options.unverified", o.unverified, unverified),
  };
}
