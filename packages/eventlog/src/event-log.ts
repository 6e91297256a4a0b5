import {
  Batcher,
  type BatchOptions,
  type BatchOutcome,
  batchSettings,
  CoordisError,
  type CoordisObserver,
  DEFAULT_PREFIX,
  type Durability,
  type DurabilityOptions,
  type EntityKeys,
  entityKeys,
  InvalidArgumentError,
  isCluster,
  notifyOperation,
  parseDurability,
  type RedisClient,
  runScript,
  runScriptDurable,
  runScriptDynamic,
  ScriptError,
  toCoordisError,
  validate,
  validatePrefix,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import {
  afterHead,
  type ChainMode,
  type ChainOption,
  checkOwn,
  entryMac,
  genesisOf,
  KEYED_GENESIS_HASH,
  type Link,
  LinkChecker,
  linkBreak,
  parseChain,
  payloadDigest,
} from "./chain.js";
import { ConsumerGroup, type ConsumerGroupOptions } from "./consumer-group.js";
import {
  compareIds,
  type Entry,
  fieldOf,
  idAfter,
  idBefore,
  parseEntry,
  type RawEntry,
  validateStreamId,
} from "./entries.js";
import { IdempotencyConflictError, UnverifiedEntryError } from "./errors.js";
import { eventlogScripts } from "./scripts.generated.js";
import { type TailOptions, tailLog } from "./tail.js";

/** Default largest encoded event, in bytes (1 MiB). */
export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;
/** Default time an idempotency key is remembered: 24 hours. */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;
/** Largest `limit` of {@link EventLog.read}. */
export const MAX_READ_LIMIT = 1_000;
/** Longest idempotency key, in UTF-8 bytes. */
export const MAX_IDEMPOTENCY_KEY_BYTES = 512;

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

/** What read() and tail() do with an entry that is not a valid link of a chained log. */
export type UnverifiedMode = "reject" | "mark" | "skip";

interface QueuedAppend {
  readonly payload: string;
  readonly idem: string | undefined;
  readonly digest: string;
}

/** The state of a keyed chain an append builds on: as last seen by this instance. */
interface KeyedState {
  last: string | null;
  head: string;
  seq: number;
  /** Server time minus local time, ms (from the last reply: an underestimate, so ids are never in the future). */
  offsetMs: number;
}

/** Attempts of one keyed append before it gives up (others kept appending first). */
const MAX_KEYED_ATTEMPTS = 100;

/** Options of {@link EventLog.append}. */
export interface AppendOptions {
  /**
   * Appends at most once per key within the log's idempotency window: a repeat returns the first append's id with
   * `duplicate: true` and appends nothing. 1–512 UTF-8 bytes.
   */
  idempotencyKey?: string;
}

/** Result of {@link EventLog.append}. */
export interface AppendResult {
  /** The entry's id (the first append's id for a duplicate). */
  readonly id: string;
  /** True when the idempotency key had been used within its window: nothing was appended. */
  readonly duplicate: boolean;
  /** With `idempotencyConflict: "report"`: true when the key had been used with a different payload. */
  readonly conflict?: boolean;
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

/** A page of {@link EventLog.read}. */
export interface ReadPage<T> {
  readonly entries: Entry<T>[];
  /**
   * Present when more entries follow in the reading direction: pass it as `after` (forward) or `before`
   * (`reverse: true`) to read the next page.
   */
  readonly next?: string;
}

/** Result of {@link EventLog.verify}. */
export interface VerifyResult {
  /** True when every entry of the stream is a valid link and the chain ends at the recorded head. */
  readonly ok: boolean;
  /** Id of the first entry where something is wrong (a broken link or an entry not part of the chain). */
  readonly brokenAt?: string;
  /** What is wrong there. */
  readonly reason?: string;
  /** Valid entries of the chain checked. */
  readonly checked: number;
  /**
   * Every entry of the stream that is not part of the chain, oldest first (at most {@link MAX_REPORTED} listed;
   * `unchainedCount` counts them all): added by something other than EventLog.append (missing chain fields, or after
   * the recorded head), changed, or with a hash/MAC that does not verify.
   */
  readonly unchained: ReadonlyArray<{ readonly id: string; readonly reason: string }>;
  readonly unchainedCount: number;
}

const UNVERIFIED_MODES = ["reject", "mark", "skip"] as const;

/** Most entries {@link VerifyResult.unchained} lists. */
export const MAX_REPORTED = 1_000;

/** An entry of the dead-letter stream. */
export interface DeadLetter<T = unknown> {
  /** Id in the dead-letter stream. */
  readonly id: string;
  /** Id of the original entry in the log. */
  readonly entryId: string;
  readonly group: string;
  readonly consumer: string;
  readonly deliveries: number;
  readonly error: string;
  readonly data: T | undefined;
}

/** The keys of one log (all share the hash tag `{name}`). */
export interface EventLogKeys {
  /** The stream, `<prefix>:log:{name}`. */
  readonly stream: string;
  /** Sequence counter, last id, chain head and trim anchor. */
  readonly meta: string;
  /** Dead-letter stream of the log's consumer groups. */
  readonly dlq: string;
  /** Idempotency record of one key. */
  dedupe(idempotencyKey: string): string;
}

const PAGE = 1_000;

/** verify()'s walk: the chain followed so far and what it found. */
interface Walk {
  /** The last valid link. */
  prev: Link | undefined;
  /** The claimed hash and seq of the last entry that failed its own check (an edit): the next may link to it. */
  alt: { hash: string; seq: number } | undefined;
  checked: number;
  broken: { id: string; reason: string } | undefined;
  unchained: Array<{ id: string; reason: string }>;
  unchainedCount: number;
}

/**
 * Checks one page of verify()'s walk (read atomically with the meta hash's `last` and `anchor`), oldest first. An
 * entry after the recorded last id, without chain fields, or whose hash/MAC does not match is not part of the
 * chain: listed, and the walk goes on from the last valid link (or from the claimed hash of a changed entry, so the
 * entry after an edit is not reported too). A valid entry that does not follow the last valid one is a break
 * (deletion, or an insertion before it): reported, and the chain continues from it. The page's first valid entry
 * follows `prev` unless retention trimmed past `prev` (the anchor lies after it): then it must be the anchor, like the
 * oldest entry of the log, which is the genesis entry when no trim happened yet.
 */
function walkPage(mode: ChainMode, walk: Walk, page: readonly RawEntry[], last: string | null, anchor: string | null) {
  const unchained = (id: string, reason: string) => {
    walk.unchainedCount++;
    if (walk.unchained.length < MAX_REPORTED) walk.unchained.push({ id, reason });
  };
  for (const [id, fields] of page) {
    if (afterHead(id, last)) {
      unchained(id, "entry after the recorded head (not appended by EventLog.append)");
      continue;
    }
    const own = checkOwn(mode, id, fields);
    if (!own.ok) {
      unchained(id, own.reason);
      if (own.claimed !== undefined) walk.alt = own.claimed;
      continue;
    }
    const { link } = own;
    let reason: string | undefined;
    const prev = walk.prev;
    if (prev === undefined || (anchor !== null && compareIds(anchor, prev.id) > 0)) {
      if (anchor === null && (link.prevHash !== genesisOf(mode) || link.seq !== 1)) {
        reason = "the first entry is not the genesis entry and no retention trim happened (deleted)";
      } else if (anchor !== null && compareIds(id, anchor) !== 0) {
        reason = `the oldest entry is not the first entry kept by retention (${anchor}): deleted`;
      }
    } else {
      reason = linkBreak(link, prev);
    }
    // It follows a changed entry (already listed): the chain goes on through it.
    if (reason !== undefined && walk.alt !== undefined && linkBreak(link, walk.alt) === undefined) reason = undefined;
    if (reason !== undefined) walk.broken ??= { id, reason };
    walk.prev = link;
    walk.alt = undefined;
    walk.checked++;
  }
}

/** Applies `unverified` to entries of a chained log: valid ones get `verified: true`. */
export function applyVerdicts<T>(
  entries: Entry<T>[],
  verdicts: ReadonlyMap<string, string | undefined>,
  mode: UnverifiedMode,
): Entry<T>[] {
  const out: Entry<T>[] = [];
  for (const e of entries) {
    const reason = verdicts.get(e.id);
    if (reason === undefined) out.push({ ...e, verified: true });
    else if (mode === "reject") throw new UnverifiedEntryError(e.id, reason);
    else if (mode === "mark") out.push({ ...e, verified: false, unverifiedReason: reason });
  }
  return out;
}

function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * An event log on a Redis Stream: idempotent appends (one script, one round trip), retention by length and age,
 * cursor paging, a live tail that notices gaps, consumer groups with at-least-once delivery and dead-lettering,
 * and an optional hash chain that makes changed, inserted and deleted entries detectable.
 *
 * @example
 * const audit = new EventLog(redis, "audit", { chain: true, maxAgeMs: 90 * 24 * 3600_000 });
 * const { id } = await audit.append({ actor: "alice", action: "login" }, { idempotencyKey: requestId });
 * const page = await audit.read({ reverse: true, limit: 50 });
 */
export class EventLog<T = unknown> {
  /** The log's name (its hash tag). */
  readonly name: string;
  /** Its Redis keys. */
  readonly keys: EventLogKeys;
  /** Whether entries are chained (SHA-1 or keyed). */
  readonly chain: boolean;
  /** The key id new entries are signed with, for a keyed chain. */
  readonly chainKeyId: string | undefined;
  /** @internal how entries are chained */
  readonly chainMode: ChainMode | undefined;
  /** @internal default of read()'s and tail()'s `unverified` */
  readonly unverified: UnverifiedMode;
  private readonly conflict: "error" | "report";
  /** Keyed chain: the state the next append builds on, and the tail of the queue that runs appends one at a time. */
  private keyed: KeyedState | undefined;
  private keyedQueue: Promise<unknown> = Promise.resolve();
  /** @internal */
  readonly redis: RedisClient;
  /** @internal */
  readonly observer: CoordisObserver | undefined;
  private readonly entity: EntityKeys;
  /** The dedupe key passed (unused) when an append has no idempotency key: `keys.dedupe("")`. */
  private readonly noDedupeKey: string;
  private readonly maxLen: number;
  private readonly maxAgeMs: number;
  private readonly maxEventBytes: number;
  private readonly windowMs: number;
  private readonly batcher: Batcher<QueuedAppend, AppendResult> | undefined;
  private readonly durability: Durability | undefined;

  /**
   * @param name the log's name: 1–512 UTF-8 bytes without `{` or `}`
   * @throws InvalidArgumentError for a bad name or option
   */
  constructor(redis: RedisClient, name: string, options: EventLogOptions = {}) {
    const opts = validate.options<EventLogOptions>("options", options);
    validate.redisClient("redis", redis);
    if (typeof (redis as Redis).duplicate !== "function") {
      throw new InvalidArgumentError("redis", "expected an ioredis Redis or Cluster client");
    }
    this.redis = redis;
    const prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
    this.entity = entityKeys(prefix, "log", name);
    this.name = name;
    this.maxLen = opts.maxLen === undefined ? 0 : validate.positiveInteger("options.maxLen", opts.maxLen);
    this.maxAgeMs = opts.maxAgeMs === undefined ? 0 : validate.durationMs("options.maxAgeMs", opts.maxAgeMs);
    this.chainMode = parseChain(opts.chain);
    this.chain = this.chainMode !== undefined;
    this.chainKeyId = this.chainMode?.keyed === true ? this.chainMode.keyId : undefined;
    this.unverified =
      opts.unverified === undefined
        ? "reject"
        : validate.oneOf("options.unverified", opts.unverified, UNVERIFIED_MODES);
    this.conflict =
      opts.idempotencyConflict === undefined
        ? "error"
        : validate.oneOf("options.idempotencyConflict", opts.idempotencyConflict, ["error", "report"]);
    this.observer = validate.observer("options.observer", opts.observer);
    this.maxEventBytes =
      opts.maxEventBytes === undefined
        ? DEFAULT_MAX_EVENT_BYTES
        : validate.positiveInteger("options.maxEventBytes", opts.maxEventBytes, 64 * 1024 * 1024);
    this.windowMs =
      opts.idempotencyWindowMs === undefined
        ? DEFAULT_IDEMPOTENCY_WINDOW_MS
        : validate.durationMs("options.idempotencyWindowMs", opts.idempotencyWindowMs);
    const e = this.entity;
    this.noDedupeKey = e.sub("idem", "");
    this.keys = {
      stream: e.base,
      meta: e.sub("meta"),
      dlq: e.sub("dlq"),
      dedupe: (key: string) => e.sub("idem", key),
    };
    const batch = batchSettings("options.batch", opts.batch);
    this.durability = parseDurability("options.durability", opts.durability, [redis]);
    if (this.durability !== undefined && batch !== undefined) {
      throw new InvalidArgumentError("options.durability", "cannot be combined with options.batch");
    }
    if (this.chainMode?.keyed === true && batch !== undefined) {
      throw new InvalidArgumentError("options.batch", "cannot be combined with a keyed chain");
    }
    if (batch !== undefined) this.batcher = new Batcher(batch, (items) => this.sendBatch(items));
  }

  /** Micro-batching settings of append, or `undefined` when append is not batched. */
  get batch(): { readonly maxSize: number; readonly maxDelayMs: number } | undefined {
    return this.batcher?.settings;
  }

  /**
   * Appends one event (JSON-encoded) in one round trip. With an idempotency key seen within the window, nothing is
   * appended and the first append's id is returned with `duplicate: true`. Retention (`maxLen`, `maxAgeMs`) is
   * applied by the same script.
   * @throws InvalidArgumentError when the event cannot be encoded as JSON (BigInt, cycles, undefined, functions),
   *   is larger than `maxEventBytes`, or the idempotency key is invalid (nothing is sent);
   *   RedisUnavailableError / ScriptError from Redis
   */
  async append(event: T, options: AppendOptions = {}): Promise<AppendResult> {
    const opts = validate.options<AppendOptions>("options", options);
    const payload = this.encode(event);
    const idem =
      opts.idempotencyKey === undefined
        ? undefined
        : validate.string("options.idempotencyKey", opts.idempotencyKey, { maxBytes: MAX_IDEMPOTENCY_KEY_BYTES });
    // The payload's digest is stored with the idempotency key, so a reuse with another payload is told apart.
    const digest = idem === undefined ? "" : payloadDigest(payload);
    const started = performance.now();
    try {
      let result: AppendResult;
      if (this.batcher !== undefined) {
        // One group: every key of a log shares its hash tag.
        result = await this.batcher.add(0, { payload, idem, digest });
      } else if (this.chainMode?.keyed === true) {
        const mode = this.chainMode;
        // One keyed append at a time per instance: each builds on the head the previous one left.
        const run = this.keyedQueue.then(() => this.appendKeyed(mode, payload, idem, digest));
        this.keyedQueue = run.catch(() => {});
        result = await run;
      } else {
        const { reply, error } = await runScriptDurable(
          this.redis,
          eventlogScripts.append,
          [this.keys.stream, this.keys.meta, idem === undefined ? this.noDedupeKey : this.keys.dedupe(idem)],
          [payload, idem === undefined ? 0 : this.windowMs, this.maxLen, this.maxAgeMs, this.chain ? 1 : 0, digest],
          this.durability,
        );
        // Appended on the primary, not confirmed on the replicas: it may be lost in a failover. An entry cannot be
        // taken back (the chain links it), so the caller is told; a retry with the same key answers duplicate
        // while the entry survives.
        if (error !== undefined) throw error;
        const [id, duplicate] = reply;
        result = this.outcome(id, duplicate, idem);
      }
      if (this.observer?.onOperation === undefined) return result;
      notifyOperation(this.observer, {
        primitive: "eventlog",
        op: "append",
        outcome: result.duplicate ? "duplicate" : "appended",
        durationMs: performance.now() - started,
        name: this.name,
      });
      return result;
    } catch (err) {
      const error = toCoordisError(err, eventlogScripts.append.name);
      notifyOperation(this.observer, {
        primitive: "eventlog",
        op: "append",
        outcome: "error",
        durationMs: performance.now() - started,
        name: this.name,
        error,
      });
      throw error;
    }
  }

  /** An append's result from the script's duplicate flag (0 appended, 1 duplicate, 2 idempotency conflict). */
  private outcome(id: string, duplicate: number, idem: string | undefined): AppendResult {
    if (duplicate !== 2) return { id, duplicate: duplicate === 1 };
    if (this.conflict === "report") return { id, duplicate: true, conflict: true };
    throw new IdempotencyConflictError(idem ?? "", id);
  }

  /**
   * One append to a keyed chain: the MAC is computed here (the key never reaches Redis) over the head, sequence
   * number and id this instance last saw; the script appends only when they are still current, and otherwise answers
   * the current state, on which the next attempt builds (optimistic: another process appended meanwhile). The first
   * append of an instance learns the state that way (two round trips).
   */
  private async appendKeyed(
    mode: Extract<ChainMode, { keyed: true }>,
    payload: string,
    idem: string | undefined,
    digest: string,
  ): Promise<AppendResult> {
    const dedupe = idem === undefined ? this.noDedupeKey : this.keys.dedupe(idem);
    for (let attempt = 0; attempt < MAX_KEYED_ATTEMPTS; attempt++) {
      const state = this.keyed;
      let id = "0-0";
      let prev = "";
      let seq = 0;
      let mac = "";
      if (state !== undefined) {
        const nowMs = Date.now() + state.offsetMs;
        const [lastMs, lastSeq] = state.last === null ? [-1, 0] : state.last.split("-").map(Number);
        id = nowMs > (lastMs as number) ? `${nowMs}-0` : `${lastMs}-${(lastSeq as number) + 1}`;
        prev = state.head;
        seq = state.seq + 1;
        mac = entryMac(mode.key, prev, id, seq, mode.keyId, payload);
      }
      const { reply, error } = await runScriptDurable(
        this.redis,
        eventlogScripts.appendKeyed,
        [this.keys.stream, this.keys.meta, dedupe],
        [
          payload,
          idem === undefined ? 0 : this.windowMs,
          this.maxLen,
          this.maxAgeMs,
          digest,
          prev,
          seq,
          id,
          mode.keyId,
          mac,
        ],
        this.durability,
      );
      const [replyId, status, now, last, head, lastSeqNo] = reply;
      const offsetMs = Number(now) - Date.now();
      if (status === 3) {
        this.keyed = {
          last: last === undefined || last === "" || last === null ? null : last,
          head: head === undefined || head === "" || head === null ? KEYED_GENESIS_HASH : head,
          seq: Number(lastSeqNo ?? 0),
          offsetMs,
        };
        continue;
      }
      // Each reply underestimates the offset by its transit time (and a durable append's WAIT): keep the best one.
      if (status === 0)
        this.keyed = { last: id, head: mac, seq, offsetMs: Math.max(offsetMs, state?.offsetMs ?? offsetMs) };
      if (error !== undefined) throw error;
      return this.outcome(replyId, status, idem);
    }
    throw new CoordisError(
      "ERR_EVENTLOG_CONTENDED",
      `log "${this.name}": ${MAX_KEYED_ATTEMPTS} keyed append attempts were overtaken by other appenders`,
    );
  }

  /**
   * Reads one page of entries between exclusive cursors, oldest first (or newest first with `reverse`).
   * @throws InvalidArgumentError for a cursor that is not a stream id or a limit outside 1–1000 (nothing is sent)
   */
  async read(options: ReadOptions = {}): Promise<ReadPage<T>> {
    const opts = validate.options<ReadOptions>("options", options);
    const after = opts.after === undefined ? undefined : validateStreamId("options.after", opts.after);
    const before = opts.before === undefined ? undefined : validateStreamId("options.before", opts.before);
    const limit =
      opts.limit === undefined ? 100 : validate.positiveInteger("options.limit", opts.limit, MAX_READ_LIMIT);
    const reverse = opts.reverse === undefined ? false : validate.boolean("options.reverse", opts.reverse);
    const unverified =
      opts.unverified === undefined
        ? this.unverified
        : validate.oneOf("options.unverified", opts.unverified, UNVERIFIED_MODES);
    // Exclusive cursors become inclusive bounds: nothing lies after the largest id or before 0-0 (Redis would reject
    // an exclusive range from or to those).
    const low = after === undefined ? "-" : idAfter(after);
    const high = before === undefined ? "+" : compareIds(before, "0-0") === 0 ? undefined : idBefore(before);
    const empty = low === undefined || high === undefined || (low !== "-" && high !== "+" && compareIds(low, high) > 0);
    this.flushAppends();
    const started = performance.now();
    let raw: RawEntry[];
    let verdicts: Map<string, string | undefined> | undefined;
    try {
      if (empty) raw = [];
      else if (this.chainMode !== undefined) {
        const [last, anchor, page, before] = await runScript(
          this.redis,
          eventlogScripts.readChained,
          [this.keys.stream, this.keys.meta],
          [reverse ? 1 : 0, low, high, limit + 1],
        );
        raw = page;
        verdicts = this.checkLinks(reverse ? [...page].reverse() : page, before, last, anchor);
      } else
        raw = (
          reverse
            ? await this.redis.xrevrange(this.keys.stream, high, low, "COUNT", limit + 1)
            : await this.redis.xrange(this.keys.stream, low, high, "COUNT", limit + 1)
        ) as RawEntry[];
    } catch (err) {
      throw toCoordisError(err, eventlogScripts.readChained.name);
    }
    let entries = raw.slice(0, limit).map((r) => parseEntry<T>(r));
    const cursor = entries.at(-1)?.id;
    if (verdicts !== undefined) entries = applyVerdicts(entries, verdicts, unverified);
    notifyOperation(this.observer, {
      primitive: "eventlog",
      op: "read",
      outcome: "ok",
      durationMs: performance.now() - started,
      name: this.name,
    });
    return raw.length > limit && cursor !== undefined ? { entries, next: cursor } : { entries };
  }

  /**
   * Checks a page's links, oldest first, starting from the nearest valid entry among those before it (`before`,
   * newest first); returns each entry's verdict (undefined = a valid link).
   * @internal
   */
  checkLinks(
    page: readonly RawEntry[],
    before: readonly RawEntry[],
    last: string | null,
    anchor: string | null,
  ): Map<string, string | undefined> {
    const mode = this.chainMode as ChainMode;
    let start: { hash: string; seq: number } | undefined;
    for (const [id, fields] of before) {
      if (afterHead(id, last)) continue;
      const own = checkOwn(mode, id, fields);
      if (own.ok) {
        start = { hash: own.link.hash, seq: own.link.seq };
        break;
      }
    }
    const checker = new LinkChecker(mode, start);
    const verdicts = new Map<string, string | undefined>();
    for (const [id, fields] of page) verdicts.set(id, checker.check(id, fields, last, anchor)?.reason);
    return verdicts;
  }

  /**
   * Follows the log live: an async iterable of entries appended after `from`, read with blocking XREAD on a
   * connection of its own (closed when the loop ends or `signal` aborts). It survives connection drops, resuming
   * after the last id it yielded. When entries it should have yielded were trimmed or deleted first, the iteration
   * throws {@link GapError}.
   * @throws InvalidArgumentError for a bad option (immediately, nothing is sent)
   */
  tail(options: TailOptions = {}): AsyncIterable<Entry<T>> {
    return tailLog<T>(this, options);
  }

  /**
   * A consumer group of this log (created on first use, starting at the oldest kept entry unless
   * `startAt: "end"`).
   * @throws InvalidArgumentError for a bad group name or option
   */
  group(groupName: string, options: ConsumerGroupOptions): ConsumerGroup<T> {
    return new ConsumerGroup<T>(this, groupName, options);
  }

  /** Number of entries currently kept. */
  async length(): Promise<number> {
    this.flushAppends();
    try {
      return await this.redis.xlen(this.keys.stream);
    } catch (err) {
      throw toCoordisError(err);
    }
  }

  /**
   * The latest entry's id and, with `chain: true`, its hash: copy it somewhere else (another system, a signed
   * receipt) to make rewriting the whole chain detectable too.
   */
  async head(): Promise<{ id: string; hash?: string; seq: number } | null> {
    this.flushAppends();
    try {
      const [last, hash, seq] = await this.redis.hmget(this.keys.meta, "last", "head", "seq");
      if (last === null || last === undefined) return null;
      return { id: last, seq: Number(seq ?? 0), ...(hash ? { hash } : {}) };
    } catch (err) {
      throw toCoordisError(err);
    }
  }

  /**
   * Walks the whole stream to its real end (pages of 1000, one script call each) and checks the chain: each entry's
   * hash (or MAC, for a keyed chain) matches its content, each entry follows the one before it, the newest chained
   * entry is the recorded head, and the oldest is either the genesis entry or the first entry kept after the last
   * retention trim (the trim anchor). Every entry that is not part of the chain is listed in `unchained`: one added by
   * anything other than `EventLog.append` (without chain fields, or after the recorded head — every append records its
   * id in the same script, so an entry past it in the same atomic read was not appended by it), changed, or whose
   * hash/MAC does not verify. The walk goes on after a problem, so one report names all of them.
   *
   * A sound log verifies while appends go on and retention trims it: each page is read in one atomic step with the
   * meta hash (lua/eventlog/verify-page.lua), so the anchor and the recorded head it is checked against are those of
   * the same moment; a walk overtaken by retention continues at the new anchor. Entries appended while it runs are
   * checked too, up to the end of the stream when the last page was read.
   * @returns `{ ok: true }`, or the first problem (`brokenAt`, `reason`) and every entry not part of the chain
   * @throws CoordisError `ERR_EVENTLOG_NOT_CHAINED` for a log without `chain`
   */
  async verify(): Promise<VerifyResult> {
    const mode = this.chainMode;
    if (mode === undefined)
      throw new CoordisError("ERR_EVENTLOG_NOT_CHAINED", `log "${this.name}" was not created with chain: true`);
    this.flushAppends();
    const walk: Walk = {
      prev: undefined,
      alt: undefined,
      checked: 0,
      broken: undefined,
      unchained: [],
      unchainedCount: 0,
    };
    let start = "-";
    let last: string | null;
    let head: string | null;
    for (;;) {
      let anchor: string | null;
      let page: RawEntry[];
      [last, head, anchor, page] = await this.verifyPage(start);
      walkPage(mode, walk, page, last, anchor);
      const final = page.at(-1);
      if (page.length < PAGE || final === undefined) break;
      start = `(${final[0]}`;
    }
    // The last page was read with the meta hash: the newest chained entry must be the recorded head.
    const prev = walk.prev;
    if (last !== null && (prev === undefined || prev.id !== last || prev.hash !== head)) {
      walk.broken ??= {
        id: prev?.id ?? last,
        reason: "the newest entry is not the recorded head (deleted or replaced)",
      };
    }
    const firstUnchained = walk.unchained[0];
    let problem = walk.broken;
    if (firstUnchained !== undefined && (problem === undefined || compareIds(firstUnchained.id, problem.id) < 0)) {
      problem = firstUnchained;
    }
    return {
      ok: problem === undefined,
      ...(problem === undefined ? {} : { brokenAt: problem.id, reason: problem.reason }),
      checked: walk.checked,
      unchained: walk.unchained,
      unchainedCount: walk.unchainedCount,
    };
  }

  /** One page of {@link EventLog.verify} read in one atomic step with the meta hash (see lua/eventlog/verify-page.lua). */
  private async verifyPage(start: string): Promise<[string | null, string | null, string | null, RawEntry[]]> {
    try {
      return await runScript(this.redis, eventlogScripts.verifyPage, [this.keys.stream, this.keys.meta], [start, PAGE]);
    } catch (err) {
      throw toCoordisError(err, eventlogScripts.verifyPage.name);
    }
  }

  /**
   * Reads the dead-letter stream (entries consumer groups gave up on), oldest first.
   * @throws InvalidArgumentError for a bad cursor or limit
   */
  async deadLetters(options: { after?: string; limit?: number } = {}): Promise<DeadLetter<T>[]> {
    const opts = validate.options<{ after?: string; limit?: number }>("options", options);
    const after = opts.after === undefined ? undefined : validateStreamId("options.after", opts.after);
    const limit =
      opts.limit === undefined ? 100 : validate.positiveInteger("options.limit", opts.limit, MAX_READ_LIMIT);
    // Nothing lies after the largest id (Redis would reject an exclusive range from it).
    const low = after === undefined ? "-" : idAfter(after);
    let raw: RawEntry[] = [];
    try {
      if (low !== undefined) raw = (await this.redis.xrange(this.keys.dlq, low, "+", "COUNT", limit)) as RawEntry[];
    } catch (err) {
      throw toCoordisError(err);
    }
    return raw.map(([id, fields]) => {
      const d = fieldOf(fields, "d");
      let data: unknown;
      try {
        data = d === undefined || d === "" ? undefined : JSON.parse(d);
      } catch {
        data = d;
      }
      return {
        id,
        entryId: fieldOf(fields, "id") ?? "",
        group: fieldOf(fields, "group") ?? "",
        consumer: fieldOf(fields, "consumer") ?? "",
        deliveries: Number(fieldOf(fields, "deliveries") ?? 0),
        error: fieldOf(fields, "error") ?? "",
        data: data as T | undefined,
      };
    });
  }

  /** @internal A connection of its own for blocking reads, with a command timeout above `blockMs`. */
  blockingConnection(blockMs: number): Redis | Cluster {
    const commandTimeout = blockMs + 5_000;
    if (isCluster(this.redis)) return this.redis.duplicate([], { redisOptions: { commandTimeout } });
    return this.redis.duplicate({ commandTimeout });
  }

  /** Sends one micro-batch of appends as one append-batch script call; each call succeeds or fails on its own. */
  private async sendBatch(items: readonly QueuedAppend[]): Promise<BatchOutcome<AppendResult>[]> {
    // Only calls with an idempotency key send a dedupe key (in call order); see lua/eventlog/append-batch.lua.
    const keys: string[] = [this.keys.stream, this.keys.meta];
    const args: (string | number)[] = [this.maxLen, this.maxAgeMs, this.chain ? 1 : 0, items.length];
    for (const { payload, idem, digest } of items) {
      if (idem === undefined || this.windowMs === 0) {
        args.push(payload, 0, "");
      } else {
        keys.push(this.keys.dedupe(idem));
        args.push(payload, this.windowMs, digest);
      }
    }
    const reply = await runScriptDynamic(this.redis, eventlogScripts.appendBatch, keys, args);
    return reply.map(([ok, id, duplicate], i): BatchOutcome<AppendResult> => {
      if (ok !== 1) return { ok: false, error: new ScriptError(eventlogScripts.append.name, id) };
      try {
        return { ok: true, value: this.outcome(id, duplicate ?? 0, items[i]?.idem) };
      } catch (err) {
        return { ok: false, error: errorOf(err) };
      }
    });
  }

  /** Sends the appends this log has queued (micro-batching) before a read, so a read sees every earlier append. */
  private flushAppends(): void {
    this.batcher?.flush();
  }

  private encode(event: unknown): string {
    let text: string | undefined;
    try {
      text = JSON.stringify(event);
    } catch (err) {
      throw new InvalidArgumentError("event", `cannot be encoded as JSON: ${errorOf(err).message}`);
    }
    if (text === undefined) throw new InvalidArgumentError("event", `a ${typeof event} cannot be encoded as JSON`);
    // UTF-8 takes at most three bytes per UTF-16 code unit: short texts need no byte count.
    if (text.length * 3 <= this.maxEventBytes) return text;
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > this.maxEventBytes) {
      throw new InvalidArgumentError(
        "event",
        `encodes to ${bytes} bytes, more than maxEventBytes ${this.maxEventBytes}`,
      );
    }
    return text;
  }
}
