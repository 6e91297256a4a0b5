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
import { ConsumerGroup, type ConsumerGroupOptions } from "./consumer-group.js";
import {
  compareIds,
  type Entry,
  entryHash,
  fieldOf,
  GENESIS_HASH,
  idAfter,
  idBefore,
  parseEntry,
  type RawEntry,
  validateStreamId,
} from "./entries.js";
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
  /** Hash-chain every entry for tamper evidence ({@link EventLog.verify}). Default false. */
  chain?: boolean;
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

interface QueuedAppend {
  readonly payload: string;
  readonly idem: string | undefined;
}

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
  readonly ok: boolean;
  /** Id of the first entry where the chain is broken. */
  readonly brokenAt?: string;
  /** What is wrong there. */
  readonly reason?: string;
  /** Entries checked. */
  readonly checked: number;
}

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

/** An entry of the chain, as verify() checked it. */
interface ChainLink {
  readonly id: string;
  readonly hash: string;
  readonly seq: number;
}

/** What {@link checkPage} found. */
interface PageOutcome {
  /** Entries checked before the break (all of them when none). */
  readonly checked: number;
  /** The last entry checked. */
  readonly last: ChainLink | undefined;
  readonly broken?: { readonly id: string; readonly reason: string };
  /**
   * The break is at the page's first entry, in a check against what lies outside the page (the anchor or the entry
   * before it): a retention trim between two reads can cause it, so it is decided again on an atomic read.
   */
  readonly boundary: boolean;
}

/**
 * Checks one page of the chain, following `prev` (the last entry checked before it; none for the oldest page). The
 * page's first entry follows `prev` unless retention trimmed past `prev` (the anchor lies after it): then it must be
 * the anchor, like the oldest entry of the log, which is the genesis entry when no trim happened yet.
 */
function checkPage(page: readonly RawEntry[], anchor: string | null, prev: ChainLink | undefined): PageOutcome {
  let last = prev;
  let fromAnchor = prev === undefined || (anchor !== null && compareIds(anchor, prev.id) > 0);
  for (let i = 0; i < page.length; i++) {
    const [id, fields] = page[i] as RawEntry;
    const stop = (reason: string, boundary = false): PageOutcome => ({
      checked: i,
      last,
      broken: { id, reason },
      boundary: boundary && i === 0,
    });
    const p = fieldOf(fields, "p");
    const h = fieldOf(fields, "h");
    const s = fieldOf(fields, "s");
    const d = fieldOf(fields, "d");
    if (p === undefined || h === undefined || s === undefined || d === undefined) {
      return stop("entry lacks chain fields (inserted by something other than EventLog.append)");
    }
    if (entryHash(p, id, s, d) !== h) return stop("entry content does not match its hash (changed)");
    if (fromAnchor) {
      if (anchor === null && (p !== GENESIS_HASH || s !== "1")) {
        return stop("the first entry is not the genesis entry and no retention trim happened (deleted)", true);
      }
      if (anchor !== null && compareIds(id, anchor) !== 0) {
        return stop(`the oldest entry is not the first entry kept by retention (${anchor}): deleted`, true);
      }
      fromAnchor = false;
    } else if (last !== undefined) {
      if (p !== last.hash) return stop("previous-hash does not match the entry before it (inserted or deleted)", true);
      if (Number(s) !== last.seq + 1) return stop("sequence gap (an entry before it was deleted)", true);
    }
    last = { id, hash: h, seq: Number(s) };
  }
  return { checked: page.length, last, boundary: false };
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
  readonly chain: boolean;
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
    this.chain = opts.chain === undefined ? false : validate.boolean("options.chain", opts.chain);
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
    const started = performance.now();
    try {
      let result: AppendResult;
      if (this.batcher !== undefined) {
        // One group: every key of a log shares its hash tag.
        result = await this.batcher.add(0, { payload, idem });
      } else {
        const { reply, error } = await runScriptDurable(
          this.redis,
          eventlogScripts.append,
          [this.keys.stream, this.keys.meta, idem === undefined ? this.noDedupeKey : this.keys.dedupe(idem)],
          [payload, idem === undefined ? 0 : this.windowMs, this.maxLen, this.maxAgeMs, this.chain ? 1 : 0],
          this.durability,
        );
        // Appended on the primary, not confirmed on the replicas: it may be lost in a failover. An entry cannot be
        // taken back (the chain links it), so the caller is told; a retry with the same key answers duplicate
        // while the entry survives.
        if (error !== undefined) throw error;
        const [id, duplicate] = reply;
        result = { id, duplicate: duplicate === 1 };
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
    // Exclusive cursors become inclusive bounds: nothing lies after the largest id or before 0-0 (Redis would reject
    // an exclusive range from or to those).
    const low = after === undefined ? "-" : idAfter(after);
    const high = before === undefined ? "+" : compareIds(before, "0-0") === 0 ? undefined : idBefore(before);
    const empty = low === undefined || high === undefined || (low !== "-" && high !== "+" && compareIds(low, high) > 0);
    this.flushAppends();
    const started = performance.now();
    let raw: RawEntry[];
    try {
      if (empty) raw = [];
      else
        raw = (
          reverse
            ? await this.redis.xrevrange(this.keys.stream, high, low, "COUNT", limit + 1)
            : await this.redis.xrange(this.keys.stream, low, high, "COUNT", limit + 1)
        ) as RawEntry[];
    } catch (err) {
      throw toCoordisError(err);
    }
    const entries = raw.slice(0, limit).map((r) => parseEntry<T>(r));
    notifyOperation(this.observer, {
      primitive: "eventlog",
      op: "read",
      outcome: "ok",
      durationMs: performance.now() - started,
      name: this.name,
    });
    const last = entries.at(-1);
    return raw.length > limit && last !== undefined ? { entries, next: last.id } : { entries };
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
   * Walks the whole log (pages of 1000, several round trips) and checks the hash chain: each entry's hash matches
   * its content, each entry points at its predecessor's hash, the newest entry is the recorded head, and the oldest
   * entry is either the genesis entry or the first entry kept after the last retention trim (the trim anchor).
   * Entries appended after `verify()` started are not checked.
   *
   * A sound log verifies while appends go on and retention trims it. Each page is one XRANGE (a consistent
   * snapshot of its entries); a check that involves what lies outside the page (the oldest entry against the
   * anchor, a page's first entry against the entry before it, the newest entry against the head) and fails is
   * decided again on a re-read of that page done in one atomic step with the meta hash (one script), so a trim that
   * ran between two reads is never taken for a deletion. When retention trimmed past the walk between two pages, the
   * walk goes on at the new anchor (the trimmed entries are no longer part of the log); when it trimmed past the
   * newest entry the walk started with, nothing is left to check.
   * @returns `{ ok: true }` or the first entry where the chain breaks
   * @throws CoordisError `ERR_EVENTLOG_NOT_CHAINED` for a log without `chain: true`
   */
  async verify(): Promise<VerifyResult> {
    if (!this.chain)
      throw new CoordisError("ERR_EVENTLOG_NOT_CHAINED", `log "${this.name}" was not created with chain: true`);
    this.flushAppends();
    let checked = 0;
    const broken = (id: string, reason: string): VerifyResult => ({ ok: false, brokenAt: id, reason, checked });
    let prev: ChainLink | undefined;

    // The first page, with the newest entry and the head hash the walk checks up to.
    let meta: (string | null)[];
    let page: RawEntry[] = [];
    let length = 0;
    try {
      meta = await this.redis.hmget(this.keys.meta, "last", "head", "anchor");
      if (meta[0] === null || meta[0] === undefined) length = await this.redis.xlen(this.keys.stream);
      else page = (await this.redis.xrange(this.keys.stream, "-", meta[0], "COUNT", PAGE)) as RawEntry[];
    } catch (err) {
      throw toCoordisError(err);
    }
    let [lastId = null, headHash = null, anchor = null] = meta as [string | null, string | null, string | null];
    let outcome = lastId === null ? undefined : checkPage(page, anchor, prev);
    if ((lastId === null && length > 0) || outcome?.boundary === true) {
      // Decided on an atomic read: an append or a trim may have run between the reads above.
      [lastId, headHash, anchor, page, length] = await this.verifyPage("-", "");
      outcome = lastId === null ? undefined : checkPage(page, anchor, prev);
    }
    if (lastId === null || outcome === undefined) {
      if (length > 0) return broken("0-0", "entries exist but the log has no recorded head");
      return { ok: true, checked };
    }

    for (;;) {
      checked += outcome.checked;
      if (outcome.broken !== undefined) return broken(outcome.broken.id, outcome.broken.reason);
      prev = outcome.last ?? prev;
      if (page.length < PAGE || prev === undefined) break;
      const start = `(${prev.id}`;
      try {
        page = (await this.redis.xrange(this.keys.stream, start, lastId, "COUNT", PAGE)) as RawEntry[];
      } catch (err) {
        throw toCoordisError(err);
      }
      outcome = checkPage(page, anchor, prev);
      if (outcome.boundary) {
        [, , anchor, page] = await this.verifyPage(start, lastId);
        outcome = checkPage(page, anchor, prev);
      }
    }
    if (prev !== undefined && prev.id === lastId && prev.hash === headHash) return { ok: true, checked };
    if (prev !== undefined) {
      // The walk ended before the newest entry: retention may have trimmed past it since the first page.
      [, , anchor] = await this.verifyPage(`(${prev.id}`, lastId);
      if (anchor !== null && compareIds(anchor, lastId) > 0) return { ok: true, checked };
    }
    return broken(prev?.id ?? lastId, "the newest entry is not the recorded head (deleted or replaced)");
  }

  /** One page of {@link EventLog.verify} read in one atomic step with the meta hash (see lua/eventlog/verify-page.lua). */
  private async verifyPage(
    start: string,
    upTo: string,
  ): Promise<[string | null, string | null, string | null, RawEntry[], number]> {
    try {
      return await runScript(
        this.redis,
        eventlogScripts.verifyPage,
        [this.keys.stream, this.keys.meta],
        [start, upTo, PAGE],
      );
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
    for (const { payload, idem } of items) {
      if (idem === undefined || this.windowMs === 0) {
        args.push(payload, 0);
      } else {
        keys.push(this.keys.dedupe(idem));
        args.push(payload, this.windowMs);
      }
    }
    const reply = await runScriptDynamic(this.redis, eventlogScripts.appendBatch, keys, args);
    return reply.map(([ok, id, duplicate]): BatchOutcome<AppendResult> => {
      if (ok === 1) return { ok: true, value: { id, duplicate: duplicate === 1 } };
      return { ok: false, error: new ScriptError(eventlogScripts.append.name, id) };
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
