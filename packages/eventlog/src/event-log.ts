import {
  entityKeys,
  InvalidArgumentError,
  instrument,
  type OperationSite,
  type RedisClient,
  validate,
} from "@coordis/core";
import { Appender } from "./append.js";
import { ConsumerGroup } from "./consumer-group.js";
import { type ConsumerGroupOptions, parseGroup } from "./consumer-options.js";
import { type LogContext, site } from "./context.js";
import type { Entry } from "./entries.js";
import {
  type AppendOptions,
  type DeadLetterOptions,
  type EventLogOptions,
  parseAppendOptions,
  parseDeadLetterOptions,
  parseEventLogOptions,
  parseReadOptions,
  parseTailOptions,
  type ReadOptions,
  type TailOptions,
} from "./options.js";
import { deadLetters, head, length, readPage } from "./reads.js";
import { eventlogScripts } from "./scripts.generated.js";
import { tailLog } from "./tail.js";
import type { AppendResult, DeadLetter, EventLogKeys, ReadPage, VerifyResult } from "./types.js";
import { verifyChain } from "./verify.js";

const appendOutcome = (r: AppendResult) => (r.duplicate ? "duplicate" : "appended");

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
  readonly #ctx: LogContext;
  readonly #appender: Appender;
  readonly #appendSite: OperationSite;
  readonly #readSite: OperationSite;

  /**
   * @param name the log's name: 1–512 UTF-8 bytes without `{` or `}`
   * @throws InvalidArgumentError for a bad name, a bad option or an unknown option key
   */
  constructor(redis: RedisClient, name: string, options: EventLogOptions = {}) {
    validate.options("options", options);
    validate.redisClient("redis", redis);
    if (typeof (redis as { duplicate?: unknown }).duplicate !== "function") {
      throw new InvalidArgumentError("redis", "expected an ioredis Redis or Cluster client");
    }
    const settings = parseEventLogOptions(options, redis);
    const e = entityKeys(settings.prefix, "log", name);
    this.name = name;
    this.keys = {
      stream: e.base,
      meta: e.sub("meta"),
      dlq: e.sub("dlq"),
      deadLetterIndex: e.sub("dlq", "claims"),
      dedupe: (key: string) => e.sub("idem", key),
    };
    const mode = settings.chainMode;
    this.chain = mode !== undefined;
    this.chainKeyId = mode?.keyed === true ? mode.keyId : undefined;
    this.#ctx = {
      redis,
      name,
      keys: this.keys,
      observer: settings.observer,
      chainMode: mode,
      unverified: settings.unverified,
      maxEventBytes: settings.maxEventBytes,
    };
    this.#appender = new Appender(this.#ctx, settings);
    this.#appendSite = site(this.#ctx, "append");
    this.#readSite = site(this.#ctx, "read");
  }

  /** Micro-batching settings of append, or `undefined` when append is not batched. */
  get batch(): { readonly maxSize: number; readonly maxDelayMs: number } | undefined {
    return this.#appender.batchSettings;
  }

  /**
   * Appends one event (JSON-encoded) in one round trip. With an idempotency key seen within the window, nothing is
   * appended and the first append's id is returned with `duplicate: true`. Retention (`maxLen`, `maxAgeMs`) is
   * applied by the same script.
   * @throws InvalidArgumentError when the event cannot be encoded as JSON (BigInt, cycles, undefined, functions),
   *   is larger than `maxEventBytes`, the idempotency key is invalid, or an option key is unknown (nothing is sent);
   *   RedisUnavailableError / ScriptError from Redis
   */
  async append(event: T, options: AppendOptions = {}): Promise<AppendResult> {
    validate.options("options", options);
    const payload = this.#appender.encode(event);
    const idem = parseAppendOptions(options);
    return instrument(this.#ctx.observer, this.#appendSite, () => this.#appender.append(payload, idem), {
      outcome: appendOutcome,
      script: eventlogScripts.append.name,
    });
  }

  /**
   * Reads one page of entries between exclusive cursors, oldest first (or newest first with `reverse`).
   * @throws InvalidArgumentError for a cursor that is not a stream id, a limit outside 1–1000 or an unknown option
   *   key (nothing is sent)
   */
  async read(options: ReadOptions = {}): Promise<ReadPage<T>> {
    const opts = parseReadOptions(options, this.#ctx.unverified);
    const settled = this.#appender.settled();
    return instrument(
      this.#ctx.observer,
      this.#readSite,
      async () => {
        await settled;
        return readPage<T>(this.#ctx, opts);
      },
      { script: eventlogScripts.readChained.name },
    );
  }

  /**
   * Follows the log live: an async iterable of entries appended after `from`, read with blocking XREAD on a
   * connection of its own (closed when the loop ends or `signal` aborts). It survives connection drops, resuming
   * after the last id it yielded. When entries it should have yielded were trimmed or deleted first, the iteration
   * throws {@link GapError}. A read that Redis refuses (WRONGTYPE: a key of the log holds another type; NOPERM) ends it
   * with ScriptError: retrying could not get past it.
   * @throws InvalidArgumentError for a bad option or an unknown option key (immediately, nothing is sent)
   */
  tail(options: TailOptions = {}): AsyncIterable<Entry<T>> {
    return tailLog<T>(this.#ctx, parseTailOptions(options, this.#ctx.unverified));
  }

  /**
   * A consumer group of this log (created on first use, starting at the oldest kept entry unless
   * `startAt: "end"`).
   * @throws InvalidArgumentError for a bad group name, option or unknown option key
   */
  group(groupName: string, options: ConsumerGroupOptions): ConsumerGroup<T> {
    return new ConsumerGroup<T>(this.#ctx, parseGroup(groupName, options));
  }

  /** Number of entries currently kept. */
  async length(): Promise<number> {
    await this.#appender.settled();
    return length(this.#ctx);
  }

  /**
   * The latest entry's id and, with `chain: true`, its hash: copy it somewhere else (another system, a signed
   * receipt) to make rewriting the whole chain detectable too.
   */
  async head(): Promise<{ id: string; hash?: string; seq: number } | null> {
    await this.#appender.settled();
    return head(this.#ctx);
  }

  /**
   * Walks the whole stream to its real end (pages of at most 1000 entries and 4 MiB of them, one script call each)
   * and checks the chain: each entry's hash (or MAC, for a keyed chain) matches its content, each entry follows the
   * one before it, the newest chained
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
    if (this.chain) await this.#appender.settled();
    return verifyChain(this.#ctx);
  }

  /**
   * Reads the dead-letter stream (entries consumer groups gave up on), oldest first.
   * @throws InvalidArgumentError for a bad cursor or limit, or an unknown option key
   */
  async deadLetters(options: DeadLetterOptions = {}): Promise<DeadLetter<T>[]> {
    return deadLetters<T>(this.#ctx, parseDeadLetterOptions(options));
  }
}
